"""Checks on the sealed secrets in rendered bundles: the hub passes their ciphertext through unopened.

The hub cannot open a sealed secret (it has no cluster's private key) but it can tell, from the SOPS
metadata, whether the cluster it renders for is among the recipients. A bundle that carries a secret
its cluster cannot open would only be refused by the spoke, so it is a render error here instead:
that cluster keeps its last good bundle, the others move on. And a plaintext Secret in the fleet
repository is named, so ``convoy validate`` can warn (or refuse, under ``secrets.policy: sealedOnly``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protos import bundle as bundles
from protos import sops
from protos.objects import ObjectRef

__all__ = ["plaintext_secrets", "recipient_problems", "sealed_digests"]


def _objects(bundle: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [o for o in (bundle or {}).get("objects") or [] if isinstance(o, Mapping)]


def _app(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(bundles.LABEL_APP, ""))


def recipient_problems(bundle: Mapping[str, Any] | None, *, cluster: str,
                       recipient: str | None) -> list[tuple[str, str]]:
    """``(app, message)`` for each sealed object ``cluster`` (whose age key is ``recipient``) cannot open."""
    problems = []
    for obj in _objects(bundle):
        if not sops.is_sealed(obj):
            continue
        ref = ObjectRef.of(obj)
        if not recipient:
            problems.append((_app(obj), f"{ref}: sealed secret, but cluster {cluster} has no age key at the hub "
                                        "yet; it arrives when the cluster's spoke registers"))
        elif recipient not in sops.recipients(obj):
            problems.append((_app(obj), f"{ref}: sealed secret is not sealed for cluster {cluster} (its key "
                                        f"{recipient[:16]}... is not among the {len(sops.recipients(obj))} "
                                        "recipients); re-seal it: convoy seal --refresh FILE"))
    return problems


def plaintext_secrets(bundle: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(app, "Secret/ns/name")`` for each Secret that carries values and is not sealed."""
    return [(_app(o), str(ObjectRef.of(o))) for o in _objects(bundle)
            if o.get("kind") == "Secret" and o.get("apiVersion") == "v1" and not sops.is_sealed(o)
            and (o.get("data") or o.get("stringData"))]


def sealed_digests(bundle: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"Secret/ns/name": ciphertext digest}``: which sealed secret versions a bundle carries, no values."""
    return {str(ObjectRef.of(o)): sops.ciphertext_digest(o) for o in _objects(bundle) if sops.is_sealed(o)}
