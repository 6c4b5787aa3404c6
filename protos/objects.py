"""One identity type for Kubernetes objects, and one way to print it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["ObjectRef", "group_of"]


def group_of(api_version: str) -> str:
    """The API group of an apiVersion: ``apps/v1`` -> ``apps``, ``v1`` -> ``""``."""
    return api_version.rpartition("/")[0]


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class ObjectRef:
    """Group, kind, namespace and name of an object.

    No version: the same object is reachable under several versions of its
    group, and an identity must not change when a manifest moves from
    ``v1beta1`` to ``v1``. ``namespace`` is ``""`` for cluster-scoped objects.
    """

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The identity of a manifest or live object (a plain dict)."""
        metadata = obj.get("metadata") or {}
        return cls(
            group=group_of(str(obj.get("apiVersion", ""))),
            kind=str(obj.get("kind", "")),
            namespace=str(metadata.get("namespace") or ""),
            name=str(metadata.get("name") or ""),
        )

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        # `Deployment.apps/shop/web`, `Namespace/shop`: every message and report uses this.
        if self.namespace:
            return f"{self.group_kind}/{self.namespace}/{self.name}"
        return f"{self.group_kind}/{self.name}"
