"""Checks on the sealed secrets in rendered bundles: the hub passes their ciphertext through unopened.

The hub cannot open a sealed secret (it has no cluster's private key) but it can tell, from the SOPS
metadata, whether the cluster it renders for is among the recipients. A bundle that carries a secret
its cluster cannot open would only be refused by the spoke, so it is a render error here instead:
that cluster keeps its last good bundle, the others move on. And a plaintext Secret in the fleet
repository is named, so ``convoy validate`` can warn (or refuse, under ``secrets.policy: sealedOnly``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from hub.tree import errors, loading, repofs
from protos import bundle as bundles
from protos import sops
from protos.objects import ObjectRef

__all__ = ["plaintext_secrets", "recipient_problems", "sealed_digests", "source_of", "with_sources"]


def _objects(bundle: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [o for o in (bundle or {}).get("objects") or [] if isinstance(o, Mapping)]


def _app(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(bundles.LABEL_APP, ""))


def source_of(obj: Mapping[str, Any]) -> str:
    """`` (file PATH)`` for a sealed object whose file the hub found (:func:`with_sources`), else ``""``."""
    source = ((obj.get("metadata") or {}).get("annotations") or {}).get(bundles.ANNOTATION_SEALED_SOURCE)
    return f" (file {source})" if source else ""


def with_sources(objects: list[dict[str, Any]], fs: repofs.RepoFS, paths: Iterable[str]) -> list[dict[str, Any]]:
    """``objects`` with each sealed one annotated with the repository file it was sealed in and its MAC walk.

    kustomize output keeps no source path, but a sealed object's ciphertext digest leaves out its
    metadata (what kustomize's transformers change), so it is found among the files the build read
    (``paths``). An object found in no file (made by a patch or an external build) is left as it is.

    The MAC walk (:func:`protos.sops.mac_walk`) is taken from the file as written: its key order (which
    a bundle, sorted JSON, loses) and, when its MAC covers every value, the unencrypted values before
    kustomize changed them, so the spoke verifies the MAC of exactly the file that was sealed.
    """
    if not any(sops.is_sealed(o) for o in objects):
        return objects
    found: dict[str, str] = {}
    walks: dict[str, list[Any]] = {}
    for path in sorted(set(paths)):
        if not path.endswith((".yaml", ".yml", ".json")) or not fs.is_file(path):
            continue
        try:
            documents = loading.load_yaml_documents(fs.read_bytes(path), file=path)
        except errors.RenderError:
            continue  # the build read it without this error or did not need it; nothing to name
        for document in documents:
            if sops.is_sealed(document):
                digest = sops.ciphertext_digest(document)
                if digest not in found:
                    found[digest] = path
                    walks[digest] = sops.mac_walk(document)
    out = []
    for obj in objects:
        digest = sops.ciphertext_digest(obj) if sops.is_sealed(obj) else ""
        source = found.get(digest)
        if source is not None:
            metadata = dict(obj.get("metadata") or {})
            walk = json.dumps(walks[digest], separators=(",", ":"), default=str)
            metadata["annotations"] = {**(metadata.get("annotations") or {}),
                                       bundles.ANNOTATION_SEALED_SOURCE: source,
                                       bundles.ANNOTATION_SEALED_MAC_WALK: walk}
            obj = {**obj, "metadata": metadata}
        out.append(obj)
    return out


def recipient_problems(bundle: Mapping[str, Any] | None, *, cluster: str,
                       recipient: str | None, previous: str | None = None) -> list[tuple[str, str]]:
    """``(app, message)`` for each sealed object ``cluster`` (whose age key is ``recipient``) cannot open.

    After a key rotation the spoke keeps its ``previous`` key, so a file sealed for that one still opens.
    """
    problems = []
    for obj in _objects(bundle):
        if not sops.is_sealed(obj):
            continue
        ref = ObjectRef.of(obj)
        if not recipient:
            problems.append((_app(obj), f"{ref}: sealed secret, but cluster {cluster} has no age key at the hub "
                                        f"yet{source_of(obj)}; it arrives when the cluster's spoke registers"))
        elif recipient not in sops.recipients(obj) and not (previous and previous in sops.recipients(obj)):
            problems.append((_app(obj), f"{ref}: sealed secret is not sealed for cluster {cluster} (its key "
                                        f"{recipient[:16]}... is not among the {len(sops.recipients(obj))} "
                                        f"recipients){source_of(obj)}; re-seal it: convoy seal --refresh FILE"))
    return problems


def plaintext_secrets(bundle: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(app, "Secret/ns/name")`` for each Secret that carries values and is not sealed."""
    return [(_app(o), str(ObjectRef.of(o))) for o in _objects(bundle)
            if o.get("kind") == "Secret" and o.get("apiVersion") == "v1" and not sops.is_sealed(o)
            and (o.get("data") or o.get("stringData"))]


def sealed_digests(bundle: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"Secret/ns/name": ciphertext digest}``: which sealed secret versions a bundle carries, no values."""
    return {str(ObjectRef.of(o)): sops.ciphertext_digest(o) for o in _objects(bundle) if sops.is_sealed(o)}
