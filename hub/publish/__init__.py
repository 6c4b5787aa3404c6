"""Publishing bundles outside the hub: pushing them as OCI artifacts to an external registry."""
