"""Applying a bundle to the cluster.

Map: ``ordering`` (pure: the stage of each object, kind order inside a stage, and
:func:`ordering.plan` turning a bundle into app steps in ``dependsOn`` order, CRDs and Namespaces
of the whole bundle first); ``changeset`` (pure: what happened to each object, as values);
``applying`` (server-side apply of one object or many in parallel); ``pruning`` (deletes what the
inventory owns and the bundle no longer wants); ``waiting`` (reads live state and waits for CRDs,
namespaces and health); ``engine`` (the staged apply of a whole bundle, composing them).
"""
