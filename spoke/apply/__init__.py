"""Applying a bundle to the cluster.

Map: ``ordering`` (pure: the stage of each object, kind order inside a stage,
and :func:`ordering.plan` turning a bundle into app steps in ``dependsOn``
order, CRDs and Namespaces of the whole bundle first). The server-side-apply
engine, its change set and the staged waits live beside it in their own
modules (one per verb), and consume the plan.
"""
