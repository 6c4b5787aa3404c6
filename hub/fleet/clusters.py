"""Clusters known to Git (``clusters/NAME/cluster.yaml``) and the label set a render uses.

A cluster's labels come from two places: what it registered with at the hub and
what ``clusters/NAME/cluster.yaml`` declares. :func:`merge_labels` combines them,
Git winning on conflict (the repository is the source of truth, and the merged
set is what is shown). ``vars`` only come from Git.

A broken ``cluster.yaml`` does not stop anything else: :func:`declared_clusters`
returns it as a :class:`ClusterDecl` with ``error`` set, and rendering that
cluster reports the error while every other cluster renders.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from hub.fleet import model
from hub.tree import errors, repofs
from hub.tree.loading import load_yaml_documents
from protos import selectors

__all__ = [
    "CLUSTERS_DIR",
    "RESERVED_VARS",
    "ClusterConfigError",
    "ClusterDecl",
    "ClusterInfo",
    "all_clusters",
    "cluster_info",
    "declared_clusters",
    "merge_labels",
]

CLUSTERS_DIR = "clusters"
CLUSTER_FILE = "cluster.yaml"
KIND = "Cluster"
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Variables Convoy defines itself; cluster.yaml cannot redefine them.
RESERVED_VARS = ("cluster_name",)
RESERVED_VAR_PREFIX = "label_"


class ClusterConfigError(errors.RenderError):
    """A cluster.yaml (or a label given on the command line) is invalid."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterDecl:
    """What Git says about one cluster."""

    name: str
    labels: Mapping[str, str]
    vars: Mapping[str, str]
    file: str
    error: ClusterConfigError | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterInfo:
    """Everything a render of one cluster depends on besides the repository."""

    name: str
    labels: Mapping[str, str]
    vars: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The cluster's cluster.yaml is broken: rendering reports this instead of a bundle.
    config_error: errors.RenderError | None = None


def merge_labels(registered: Mapping[str, str], declared: Mapping[str, str]) -> dict[str, str]:
    """Registered labels overlaid with the declared ones: Git wins on conflict."""
    return {**registered, **declared}


def cluster_info(name: str, *, registered_labels: Mapping[str, str] | None = None,
                 decl: ClusterDecl | None = None) -> ClusterInfo:
    """The ClusterInfo of a cluster from its registration and/or its declaration in Git."""
    if decl is None:
        return ClusterInfo(name=name, labels=dict(registered_labels or {}), vars={})
    return ClusterInfo(name=name, labels=merge_labels(registered_labels or {}, decl.labels),
                       vars=dict(decl.vars), config_error=decl.error)


def _string_map(data: Any, *, file: str, field: str, check_key: Any) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ClusterConfigError(f"{field}: must be a mapping", file=file)
    result: dict[str, str] = {}
    for key, value in data.items():
        check_key(key)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ClusterConfigError(f"{field}.{key}: must be a string, not {value!r}"
                                     + (' (quote it: "true")' if isinstance(value, bool) else ""), file=file)
        result[str(key)] = str(value)
    return result


def parse_cluster(name: str, data: Any, *, file: str) -> ClusterDecl:
    """Validate one parsed cluster.yaml."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ClusterConfigError("must be a mapping", file=file)
    unknown = sorted(set(data) - {"apiVersion", "kind", "labels", "vars"}, key=str)  # keys: any YAML scalar
    if unknown:
        raise ClusterConfigError(f"{unknown[0]}: unknown field (allowed: apiVersion, kind, labels, "
                                 "vars)", file=file)
    if data.get("kind") not in (None, KIND):
        raise ClusterConfigError(f"kind: must be {KIND!r}, not {data.get('kind')!r}", file=file)

    def check_label(key: object) -> None:
        try:
            selectors.from_mapping({"matchLabels": {key: "x"}}, where="labels")
        except selectors.SelectorError:
            raise ClusterConfigError(f"labels: {key!r} is not a valid label key", file=file) from None

    def check_var(key: object) -> None:
        if not isinstance(key, str) or not _VAR_RE.fullmatch(key):
            raise ClusterConfigError(f"vars: {key!r} is not a valid variable name "
                                     "(letters, digits, '_')", file=file)
        if key in RESERVED_VARS or key.startswith(RESERVED_VAR_PREFIX):
            raise ClusterConfigError(f"vars: {key!r} is reserved (Convoy defines cluster_name and "
                                     "label_*)", file=file)

    labels = _string_map(data.get("labels"), file=file, field="labels", check_key=check_label)
    for key, value in labels.items():
        try:
            selectors.from_mapping({"matchLabels": {key: value}}, where="labels")
        except selectors.SelectorError:
            raise ClusterConfigError(f"labels.{key}: {value!r} is not a valid label value",
                                     file=file) from None
    variables = _string_map(data.get("vars"), file=file, field="vars", check_key=check_var)
    return ClusterDecl(name=name, labels=labels, vars=variables, file=file)


def declared_clusters(fs: repofs.RepoFS, *, max_bytes: int | None = None) -> dict[str, ClusterDecl]:
    """Every ``clusters/NAME/cluster.yaml``, by name; invalid ones carry their error.

    An entry that cannot be read (a symlink out of the repository, a file over ``max_bytes``) is
    that cluster's error, never the whole fleet's. Only ``clusters/`` itself being unreadable raises.
    """
    if not fs.is_dir(CLUSTERS_DIR):
        return {}
    found: dict[str, ClusterDecl] = {}
    for name in fs.list_dir(CLUSTERS_DIR):
        file = f"{CLUSTERS_DIR}/{name}/{CLUSTER_FILE}"
        try:
            if not fs.is_file(file):
                continue  # a directory holding only per-cluster layers of an unregistered cluster
            # Parsed declarations are reused by content id: after a commit, 1,000 unchanged
            # cluster.yaml files cost a lookup each instead of a read and a YAML parse.
            key = (name, fs.tree_id(file), max_bytes)
        except errors.RenderError as exc:
            found[name] = ClusterDecl(name=name, labels={}, vars={}, file=file,
                                      error=ClusterConfigError(exc.message, file=exc.file or file))
            continue
        cached = _PARSED.get(key)
        if cached is None:
            cached = _read_decl(fs, name, file, max_bytes)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[key] = cached
        found[name] = cached
    return found


_PARSED: dict[tuple[str, str, int | None], ClusterDecl] = {}
_PARSED_MAX = 20_000


def _read_decl(fs: repofs.RepoFS, name: str, file: str, max_bytes: int | None) -> ClusterDecl:
    try:
        if not model.NAME_RE.fullmatch(name):
            raise ClusterConfigError(f"{name!r} is not a valid cluster name (lowercase letters, "
                                     "digits, '-', at most 63 characters)", file=file)
        documents = load_yaml_documents(fs.read_bytes(file, max_bytes=max_bytes), file=file)
        if len(documents) > 1:
            raise ClusterConfigError(f"must hold one YAML document, found {len(documents)}",
                                     file=file)
        return parse_cluster(name, documents[0] if documents else None, file=file)
    except ClusterConfigError as exc:
        return ClusterDecl(name=name, labels={}, vars={}, file=file, error=exc)
    except errors.RenderError as exc:
        return ClusterDecl(name=name, labels={}, vars={}, file=file,
                           error=ClusterConfigError(exc.message, file=file))


def all_clusters(declared: Mapping[str, ClusterDecl],
                 registered: Mapping[str, Mapping[str, str]] | None = None) -> list[ClusterInfo]:
    """Every cluster declared in Git or registered at the hub, sorted by name, labels merged (Git wins)."""
    registered = registered or {}
    return [cluster_info(name, registered_labels=registered.get(name), decl=declared.get(name))
            for name in sorted({*declared, *registered})]
