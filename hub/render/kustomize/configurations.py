"""Transformer configurations: where each built-in transformer acts, kustomize's defaults plus ``configurations`` files.

Mirrors ``api/internal/plugins/builtinconfig`` (v5.5.0). Every kustomization's
config is the default one merged with its ``configurations`` files; an
accumulation merges the configs of everything it took in (bases, components),
so a base's custom field specs also apply to its overlays' transformers, and
the name-reference fix at the top uses the whole tree's. Merging follows
kustomize's ``FsSlice.MergeOne``: a field spec "already there" (same path, and
the existing one selected by the new one's group/version/kind) is dropped, and
one that differs only in ``create`` is an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

import yaml

from hub.render.kustomize import ordering, tables
from hub.render.kustomize.resources import FieldSpec, field_specs
from hub.tree.errors import KustomizeError

__all__ = ["BUILTIN", "DEFAULT", "EMPTY", "NameBackReference", "TransformerConfig", "merge_field_specs", "own_config",
           "parse_configuration"]


@dataclass(frozen=True, slots=True)
class NameBackReference:
    """Objects of (group, version, kind) may be named by the fields ``referrers``
    (kustomize's ``NameBackReferences``).
    """

    group: str
    version: str
    kind: str
    referrers: tuple[FieldSpec, ...]

    @property
    def gvk(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.kind)


def _effectively_equal(existing: FieldSpec, incoming: FieldSpec) -> bool:
    # kustomize's effectivelyEquals: same path, and the existing spec is selected by the incoming one's gvk.
    return existing.path == incoming.path and incoming.selects(existing.group, existing.version, existing.kind)


def merge_field_specs(base: Iterable[FieldSpec], *more: Iterable[FieldSpec], file: str | None = None,
                      what: str = "field specs") -> tuple[FieldSpec, ...]:
    """``base`` (kept as it is) plus each spec of ``more`` not already there (kustomize's ``FsSlice.MergeAll``).

    A spec already there with a different ``create`` is kustomize's "conflicting fieldspecs" error.
    """
    result = list(base)
    for group in more:
        for spec in group:
            found = next((old for old in result if _effectively_equal(old, spec)), None)
            if found is None:
                result.append(spec)
            elif found.create != spec.create:
                raise KustomizeError(
                    f"conflicting fieldspecs in {what}: {'/'.join(spec.path)} of {spec.kind or 'any kind'} "
                    f"with create {str(spec.create).lower()} and {str(found.create).lower()}", file=file)
    return tuple(result)


def _gvk_less_key(gvk: tuple[str, str, str]) -> tuple[int, str]:
    # kustomize's Gvk.IsLessThan: its kind order first, then "group_version_kind" with ~G/~V/~K for blanks.
    group, version, kind = gvk
    return (ordering.kind_rank(kind), "_".join((group or "~G", version or "~V", kind or "~K")))


def _merge_name_references(base: Iterable[NameBackReference], incoming: Iterable[NameBackReference], *,
                           file: str | None) -> tuple[NameBackReference, ...]:
    result = list(base)
    for entry in incoming:
        for index, old in enumerate(result):
            if old.gvk == entry.gvk:
                merged = merge_field_specs(old.referrers, entry.referrers, file=file,
                                           what=f"nameReference of {entry.kind}")
                result[index] = replace(old, referrers=merged)
                break
        else:
            result.append(entry)
    return tuple(result)


def _spec_key(spec: FieldSpec) -> tuple[int, str]:
    return _gvk_less_key((spec.group, spec.version, spec.kind))


#: DEFAULT once it exists (merge's shortcut needs it before the module has finished loading).
_COMPUTED: dict[str, TransformerConfig] = {}


@dataclass(frozen=True, slots=True)
class TransformerConfig:
    """The field specs of every built-in transformer (kustomize's ``TransformerConfig``)."""

    name_prefix: tuple[FieldSpec, ...] = ()
    name_suffix: tuple[FieldSpec, ...] = ()
    namespace: tuple[FieldSpec, ...] = ()
    common_labels: tuple[FieldSpec, ...] = ()
    labels: tuple[FieldSpec, ...] = ()
    template_labels: tuple[FieldSpec, ...] = ()
    common_annotations: tuple[FieldSpec, ...] = ()
    name_reference: tuple[NameBackReference, ...] = ()
    var_reference: tuple[FieldSpec, ...] = ()
    images: tuple[FieldSpec, ...] = ()
    replicas: tuple[FieldSpec, ...] = ()

    def merge(self, other: TransformerConfig, *, file: str | None = None) -> TransformerConfig:
        """This config with ``other``'s field specs added, sorted (kustomize's ``TransformerConfig.Merge``).

        The order matters: "already there" is asymmetric (a spec for one kind makes a later spec for
        any kind at the same path redundant), and kustomize merges lists sorted by kind.
        """
        if other is self:
            return self
        default = _COMPUTED.get("default")
        if default is not None and (other is BUILTIN or other is default) and (self is EMPTY or self is default):
            return default  # the merge every kustomization makes: computed once
        values: dict[str, Any] = {}
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if item.name == "name_reference":
                values[item.name] = _merge_name_references(mine, theirs, file=file)
            else:
                values[item.name] = merge_field_specs(mine, theirs, file=file, what=_KEYS_BY_FIELD[item.name])
        return TransformerConfig(**values).sorted()

    def sorted(self) -> TransformerConfig:
        """Every list sorted by group/version/kind as kustomize's ``sortFields`` (stably: ties keep their order).

        Go's sort is not stable, but specs that tie have the same group/version/kind, and their order
        changes nothing a transformer does; the back references' kinds are all distinct.
        """
        values: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "name_reference":
                values[item.name] = tuple(sorted(value, key=lambda entry: _gvk_less_key(entry.gvk)))
            else:
                values[item.name] = tuple(sorted(value, key=_spec_key))
        return TransformerConfig(**values)


#: The YAML keys of a configurations file, by field of :class:`TransformerConfig`.
_KEYS_BY_FIELD = {
    "name_prefix": "namePrefix", "name_suffix": "nameSuffix", "namespace": "namespace",
    "common_labels": "commonLabels", "labels": "labels", "template_labels": "templateLabels",
    "common_annotations": "commonAnnotations", "name_reference": "nameReference", "var_reference": "varReference",
    "images": "images", "replicas": "replicas",
}
_FIELDS_BY_KEY = {key.lower(): name for name, key in _KEYS_BY_FIELD.items()}


def _folded(raw: dict[str, Any], known: Iterable[str], *, where: str, file: str) -> dict[str, Any]:
    """``raw`` with its keys matched to ``known`` case-insensitively, as Go's JSON decoding does;
    unknown keys refused.
    """
    by_lower = {key.lower(): key for key in known}
    result: dict[str, Any] = {}
    for key, value in raw.items():
        name = by_lower.get(str(key).lower())
        if name is None:
            raise KustomizeError(f"{where}: unknown field {str(key)!r}", file=file)
        result[name] = value
    return result


def parse_field_spec(raw: Any, *, where: str, file: str) -> FieldSpec:
    """One field spec as kustomize decodes it: group, version, kind, path, create."""
    if not isinstance(raw, dict):
        raise KustomizeError(f"{where}: every field spec must be a mapping", file=file)
    spec = _folded(raw, ("group", "version", "kind", "path", "create"), where=where, file=file)
    for key in ("group", "version", "kind", "path"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise KustomizeError(f"{where}: {key} must be a string, not {spec[key]!r}", file=file)
    if spec.get("create") is not None and not isinstance(spec["create"], bool):
        raise KustomizeError(f"{where}: create must be true or false, not {spec['create']!r}", file=file)
    return FieldSpec.parse(spec)


def _field_spec_list(raw: Any, *, where: str, file: str) -> tuple[FieldSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise KustomizeError(f"{where} must be a list of field specs", file=file)
    return tuple(parse_field_spec(item, where=where, file=file) for item in raw)


def _name_references(raw: Any, *, file: str) -> tuple[NameBackReference, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise KustomizeError("nameReference must be a list", file=file)
    result = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise KustomizeError("nameReference: every entry must be a mapping", file=file)
        folded = _folded(entry, ("group", "version", "kind", "fieldSpecs"), where="nameReference", file=file)
        for key in ("group", "version", "kind"):
            if folded.get(key) is not None and not isinstance(folded[key], str):
                raise KustomizeError(f"nameReference: {key} must be a string", file=file)
        result.append(NameBackReference(
            group=folded.get("group") or "", version=folded.get("version") or "", kind=folded.get("kind") or "",
            referrers=_field_spec_list(folded.get("fieldSpecs"), where="nameReference fieldSpecs", file=file)))
    return tuple(result)


def parse_configuration(raw: Any, *, file: str) -> TransformerConfig:
    """One ``configurations`` file (already loaded), checked as strictly as kustomize reads it."""
    if raw is None:
        return TransformerConfig()
    if not isinstance(raw, dict):
        raise KustomizeError("a transformer configuration must be a mapping", file=file)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = _FIELDS_BY_KEY.get(str(key).lower())
        if name is None:
            raise KustomizeError(f"unknown field {str(key)!r} in a transformer configuration (known: "
                                 f"{', '.join(_KEYS_BY_FIELD.values())})", file=file)
        if name == "name_reference":
            values[name] = _name_references(value, file=file)
        else:
            values[name] = _field_spec_list(value, where=_KEYS_BY_FIELD[name], file=file)
    return TransformerConfig(**values).sorted()


def _builtin() -> TransformerConfig:
    references = tuple(
        NameBackReference(group=str(entry.get("group") or ""), version=str(entry.get("version") or ""),
                          kind=str(entry.get("kind") or ""),
                          referrers=tuple(FieldSpec.parse(spec) for spec in entry.get("fieldSpecs") or []))
        for entry in yaml.safe_load(tables.NAME_REFERENCE))
    return TransformerConfig(
        name_prefix=field_specs(tables.NAME_PREFIX), name_suffix=field_specs(tables.NAME_SUFFIX),
        namespace=field_specs(tables.NAMESPACE), common_labels=field_specs(tables.COMMON_LABELS),
        template_labels=field_specs(tables.TEMPLATE_LABELS),
        common_annotations=field_specs(tables.COMMON_ANNOTATIONS), name_reference=references,
        var_reference=field_specs(tables.VAR_REFERENCE), images=field_specs(tables.IMAGES),
        replicas=field_specs(tables.REPLICAS)).sorted()


#: An accumulation's config before anything merged into it.
EMPTY = TransformerConfig()
#: kustomize's built-in configuration as it loads it (sorted, not yet merged): what a kustomization's own
#: config starts from before its ``configurations`` files join.
BUILTIN = _builtin()
#: What the transformers of a tree without ``configurations`` use: ``BUILTIN`` merged into an empty
#: accumulation (which drops the specs already covered by another, as kustomize does).
DEFAULT = EMPTY.merge(BUILTIN)
_COMPUTED["default"] = DEFAULT


def own_config(parsed: list[tuple[str, TransformerConfig]], *, file: str) -> TransformerConfig:
    """A kustomization's config: the built-in one merged with its ``configurations`` files, in order.

    ``parsed``: (file, config) of each file. As kustomize's ``MakeTransformerConfig``: the files merge
    into an empty config first, then that merges into the built-in one.
    """
    if not parsed:
        return BUILTIN
    custom = EMPTY
    for path, config in parsed:
        custom = custom.merge(config, file=path)
    return BUILTIN.merge(custom, file=parsed[0][0] if len(parsed) == 1 else file)
