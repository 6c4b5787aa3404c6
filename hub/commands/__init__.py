"""Click commands of the ``convoy`` CLI, one module per area, imported lazily by hub.cli."""
