"""Opening the sealed secrets of a bundle with the cluster's own age key, just before apply.

The hub only ever holds and sends ciphertext (SOPS documents, :mod:`protos.sops`). The spoke opens
each sealed object with the identity kept in its state Secret; one object that does not open refuses
the whole bundle (the last applied one stays in force) with an error naming the object, its app and
the file the hub found it in (annotation ``convoy.dev/sealed-source``), never a value.
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
    metadata = obj.get("metadata") or {}
    app = (metadata.get("labels") or {}).get(bundles.LABEL_APP)
    source = (metadata.get("annotations") or {}).get(bundles.ANNOTATION_SEALED_SOURCE)
    where = ", ".join(part for part in (f"app {app}" if app else "", f"file {source}" if source else "") if part)
    return f"{ref}" + (f" ({where})" if where else "")


def _no_file(obj: Mapping[str, Any]) -> str:
    # kustomize output records no source path; the hub adds one when it finds this ciphertext in a file
    # of the app's tree. When it did not (a bundle from an older hub, or an object a patch or an external
    # kustomize made), say so rather than leave the reader looking for a file name.
    if ((obj.get("metadata") or {}).get("annotations") or {}).get(bundles.ANNOTATION_SEALED_SOURCE):
        return ""
    return ("; the bundle does not name the file it came from (the hub found no sealed file in the app's "
            "tree with this ciphertext): look for the object's name in the app's kustomize tree")


def open_bundle(bundle: Mapping[str, Any], identity: str, previous: str = "") -> dict[str, Any]:
    """The bundle with every sealed object decrypted; the input is not changed.

    ``previous``: the key a rotation replaced, tried too, for files not yet re-sealed for ``identity``.
    """
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
            raise SealedSecretError(f"{_where(obj)}: sealed, but this cluster has no age key yet{_no_file(obj)}")
        try:
            opened.append(sops.open_document(obj, [identity, previous] if previous else [identity]))
        except sops.SopsError as exc:
            raise SealedSecretError(f"{_where(obj)}: cannot open the sealed secret: {exc}{_no_file(obj)}") from None
    out["objects"] = opened
    return out

