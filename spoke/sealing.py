"""Opening the sealed secrets of a bundle with the cluster's own age key, just before apply.

The hub only ever holds and sends ciphertext (SOPS documents, :mod:`protos.sops`). The spoke opens
each sealed object with the identity kept in its state Secret; one object that does not open refuses
the whole bundle (the last applied one stays in force) with an error naming the object and its app,
never a value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from protos import bundle as bundles
from protos import sops
from protos.objects import ObjectRef

__all__ = ["SealedSecretError", "open_bundle"]


class SealedSecretError(bundles.BundleError):
    """A sealed object in the bundle that this cluster cannot open (the message names it, no value)."""


def _where(obj: Mapping[str, Any]) -> str:
    ref = ObjectRef.of(obj)
    app = ((obj.get("metadata") or {}).get("labels") or {}).get(bundles.LABEL_APP)
    return f"{ref}" + (f" (app {app})" if app else "")


def open_bundle(bundle: Mapping[str, Any], identity: str) -> dict[str, Any]:
    """The bundle with every sealed object decrypted; the input is not changed."""
    objects = bundle.get("objects") or []
    if not any(isinstance(o, Mapping) and sops.is_sealed(o) for o in objects):
        return dict(bundle)
    out = copy.copy(dict(bundle))
    opened: list[Any] = []
    for obj in objects:
        if not (isinstance(obj, Mapping) and sops.is_sealed(obj)):
            opened.append(obj)
            continue
        if not identity:
            raise SealedSecretError(f"{_where(obj)}: sealed, but this cluster has no age key yet")
        try:
            opened.append(sops.open_document(obj, [identity]))
        except sops.SopsError as exc:
            raise SealedSecretError(f"{_where(obj)}: cannot open the sealed secret: {exc}") from None
    out["objects"] = opened
    return out

