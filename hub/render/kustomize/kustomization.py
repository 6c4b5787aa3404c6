"""The kustomization file: find it, parse it, check it, and say whether it is inside the native subset.

A field outside the subset raises :class:`NeedsExternal` (internal: the build
either hands the tree to an external ``kustomize`` or turns it into an
:class:`~hub.tree.errors.UnsupportedFeatureError`). An unknown field or a
field of the wrong shape is a :class:`~hub.tree.errors.KustomizeError`, as
it is for kustomize.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from hub.render.kustomize import variables
from hub.tree import repofs
from hub.tree.errors import KustomizeError

__all__ = [
    "KUSTOMIZATION_FILENAMES",
    "SUPPORTED_FIELDS",
    "UNSUPPORTED_FIELDS",
    "Kustomization",
    "NeedsExternal",
    "check_sort_options",
    "find_kustomization_file",
    "parse_kustomization",
]

#: kustomize's recognised file names, in its order.
KUSTOMIZATION_FILENAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

#: Fields kustomize accepts that the native engine leaves to the external tool.
UNSUPPORTED_FIELDS = (
    "helmCharts", "helmChartInflationGenerator", "helmGlobals", "openapi", "crds",
    "generators", "transformers", "validators", "buildMetadata",
)

#: Fields the native engine builds.
SUPPORTED_FIELDS = frozenset({
    "apiVersion", "kind", "metadata", "resources", "bases", "components", "namespace", "namePrefix",
    "nameSuffix", "commonLabels", "labels", "commonAnnotations", "images", "imageTags", "replicas",
    "patches", "patchesStrategicMerge", "patchesJson6902", "configMapGenerator", "secretGenerator",
    "generatorOptions", "replacements", "sortOptions", "vars", "configurations",
})


#: kustomize's EnforceFields: the apiVersion each kind must have when one is given.
_API_VERSIONS = {"Kustomization": "kustomize.config.k8s.io/v1beta1", "Component": "kustomize.config.k8s.io/v1alpha1"}


class NeedsExternal(Exception):
    """A kustomization uses ``feature``, which only the external tool builds."""

    def __init__(self, feature: str, file: str) -> None:
        self.feature = feature
        self.file = file
        super().__init__(f"{feature} in {file}")


@dataclass(slots=True)
class Kustomization:
    """The parsed fields the native engine uses (shapes checked; paths still relative to ``directory``)."""

    directory: str
    file: str
    kind: str = "Kustomization"
    resources: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    namespace: str = ""
    name_prefix: str = ""
    name_suffix: str = ""
    common_labels: dict[str, str] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    common_annotations: dict[str, str] = field(default_factory=dict)
    images: list[dict[str, str]] = field(default_factory=list)
    replicas: list[dict[str, Any]] = field(default_factory=list)
    patches: list[dict[str, Any]] = field(default_factory=list)
    patches_strategic_merge: list[str] = field(default_factory=list)
    patches_json6902: list[dict[str, Any]] = field(default_factory=list)
    config_map_generator: list[dict[str, Any]] = field(default_factory=list)
    secret_generator: list[dict[str, Any]] = field(default_factory=list)
    generator_options: dict[str, Any] = field(default_factory=dict)
    #: As written (inline replacements and ``path:`` entries); checked and loaded by ``replacing``.
    replacements: list[dict[str, Any]] = field(default_factory=list)
    #: ``sortOptions`` as written (None when absent). kustomize reads, and checks, only the top
    #: kustomization's: see :func:`check_sort_options`.
    sort_options: Any = None
    vars: list[variables.Var] = field(default_factory=list)
    #: Transformer configuration files (``configurations``), relative to ``directory``.
    configurations: list[str] = field(default_factory=list)


def find_kustomization_file(fs: repofs.RepoFS, directory: str, *, referrer: str | None = None) -> str:
    """The kustomization file of ``directory``; a clear error when there is none or several."""
    if not fs.is_dir(directory):
        what = "directory" if not fs.is_file(directory) else "file (a kustomization directory was expected)"
        raise KustomizeError(f"{directory or '.'!r}: no such {what}", file=referrer)
    found = [name for name in KUSTOMIZATION_FILENAMES if fs.is_file(posixpath.join(directory, name))]
    if not found:
        raise KustomizeError(
            f"{directory or '.'!r} has no kustomization file (one of {', '.join(KUSTOMIZATION_FILENAMES)})",
            file=referrer)
    if len(found) > 1:
        raise KustomizeError(f"{directory or '.'!r} has several kustomization files: {', '.join(found)}",
                             file=referrer)
    return posixpath.join(directory, found[0])


def _strings(raw: dict[str, Any], key: str, file: str) -> list[str]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise KustomizeError(f"{key} must be a list of strings", file=file)
    return list(value)


def _string(raw: dict[str, Any], key: str, file: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise KustomizeError(f"{key} must be a string, not {type(value).__name__}", file=file)
    return value


def _string_map(value: Any, key: str, file: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KustomizeError(f"{key} must be a mapping of strings", file=file)
    result: dict[str, str] = {}
    for map_key, map_value in value.items():
        if map_value is None:
            map_value = ""  # kustomize decodes through JSON: a null string is the empty string
        if not isinstance(map_value, str):
            # kustomize reads these as map[string]string: an unquoted true or 3 is an error there too.
            raise KustomizeError(f"{key}.{map_key} must be a string (quote it), not {map_value!r}", file=file)
        result[str(map_key)] = map_value
    return result


def _mappings(raw: dict[str, Any], key: str, file: str) -> list[dict[str, Any]]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise KustomizeError(f"{key} must be a list of mappings", file=file)
    return list(value)


def parse_kustomization(raw: dict[str, Any], *, directory: str, file: str) -> Kustomization:
    """Check ``raw`` (the loaded file) and return the fields the engine uses."""
    for key in raw:
        if key in UNSUPPORTED_FIELDS:
            raise NeedsExternal(key, file)
        if key not in SUPPORTED_FIELDS:
            raise KustomizeError(f"invalid kustomization: unknown field {key!r}", file=file)
    # kustomize refuses a kustomization with nothing but apiVersion and kind ("is empty"); Convoy
    # accepts it as a layer that changes nothing, so a placeholder overlay does not break a fleet.
    kind = _string(raw, "kind", file) or "Kustomization"
    if kind not in {"Kustomization", "Component"}:
        raise KustomizeError(f"kind must be Kustomization or Component, not {kind!r}", file=file)
    api_version = _string(raw, "apiVersion", file)
    required = _API_VERSIONS[kind]
    if api_version and api_version != required:
        raise KustomizeError(f"apiVersion for {kind} should be {required}, not {api_version!r}", file=file)
    k = Kustomization(directory=directory, file=file, kind=kind)
    k.resources = _strings(raw, "resources", file) + _strings(raw, "bases", file)
    k.components = _strings(raw, "components", file)
    k.namespace = _string(raw, "namespace", file)
    k.name_prefix = _string(raw, "namePrefix", file)
    k.name_suffix = _string(raw, "nameSuffix", file)
    k.common_labels = _string_map(raw.get("commonLabels"), "commonLabels", file)
    k.common_annotations = _string_map(raw.get("commonAnnotations"), "commonAnnotations", file)
    for label in _mappings(raw, "labels", file):
        unknown = set(label) - {"pairs", "includeSelectors", "includeTemplates", "fields"}
        if unknown:
            raise KustomizeError(f"labels: unknown field {sorted(unknown)[0]!r}", file=file)
        fields = label.get("fields") or []
        if not isinstance(fields, list) or not all(isinstance(spec, dict) and isinstance(spec.get("path"), str)
                                                   for spec in fields):
            raise KustomizeError("labels: fields must be a list of field specs, each with a path", file=file)
        k.labels.append({
            "pairs": _string_map(label.get("pairs"), "labels.pairs", file),
            "includeSelectors": bool(label.get("includeSelectors", False)),
            "includeTemplates": bool(label.get("includeTemplates", False)),
            "fields": list(label.get("fields") or []),
        })
    for image in _mappings(raw, "images", file) + _mappings(raw, "imageTags", file):
        unknown = set(image) - {"name", "newName", "newTag", "digest", "tagSuffix"}
        if unknown:
            raise KustomizeError(f"images: unknown field {sorted(unknown)[0]!r}", file=file)
        if not isinstance(image.get("name"), str) or not image["name"]:
            raise KustomizeError("images: every entry needs a name", file=file)
        for key, value in image.items():
            if value is not None and not isinstance(value, str):
                # As kustomize: `newTag: 1.20` is the number 1.2, not the tag "1.20".
                raise KustomizeError(f"images: {key} of {image['name']} must be a string (quote it), "
                                     f"not {value!r}", file=file)
        k.images.append({key: value for key, value in image.items() if value is not None})
    for replica in _mappings(raw, "replicas", file):
        if not isinstance(replica.get("name"), str) or not isinstance(replica.get("count"), int):
            raise KustomizeError("replicas: every entry needs a name and an integer count", file=file)
        k.replicas.append(replica)
    for patch in _mappings(raw, "patches", file):
        unknown = set(patch) - {"path", "patch", "target", "options"}
        if unknown:
            raise KustomizeError(f"patches: unknown field {sorted(unknown)[0]!r}", file=file)
        if patch.get("path") is not None and not isinstance(patch["path"], str):
            raise KustomizeError("patches: path must be a string", file=file)
        if patch.get("patch") is not None and not isinstance(patch["patch"], str):
            raise KustomizeError("patches: patch must be a string (use a block scalar: patch: |-)", file=file)
        if patch.get("target") is not None and not isinstance(patch["target"], dict):
            raise KustomizeError("patches: target must be a mapping", file=file)
        options = patch.get("options") or {}
        if not isinstance(options, dict):
            raise KustomizeError("patches: options must be a mapping", file=file)
        # kustomize reads options as a map of booleans: other keys are ignored, other values refused.
        if not all(isinstance(value, bool) for value in options.values()):
            raise KustomizeError("patches: options must be true or false (allowNameChange, allowKindChange)",
                                 file=file)
        k.patches.append(patch)
    k.patches_strategic_merge = _strings(raw, "patchesStrategicMerge", file)
    for patch in _mappings(raw, "patchesJson6902", file):
        unknown = set(patch) - {"path", "patch", "target"}
        if unknown:
            raise KustomizeError(f"patchesJson6902: unknown field {sorted(unknown)[0]!r}", file=file)
        if not isinstance(patch.get("target"), dict):
            raise KustomizeError("patchesJson6902: every entry needs a target mapping", file=file)
        k.patches_json6902.append(patch)
    k.config_map_generator = [_generator(args, "configMapGenerator", file)
                              for args in _mappings(raw, "configMapGenerator", file)]
    k.secret_generator = [_generator(args, "secretGenerator", file)
                          for args in _mappings(raw, "secretGenerator", file)]
    k.generator_options = _generator_options(raw.get("generatorOptions"), "generatorOptions", file)
    k.replacements = _mappings(raw, "replacements", file)
    k.sort_options = raw.get("sortOptions")
    k.vars = variables.parse_vars(raw.get("vars"), file=file)
    k.configurations = _strings(raw, "configurations", file)
    return k


def check_sort_options(value: Any, file: str) -> dict[str, Any]:
    """The top kustomization's ``sortOptions`` checked as kustomize's SortOrderTransformer does (its messages).

    {"order": "legacy"|"fifo"}, with "orderFirst" and "orderLast" when ``legacySortOptions`` gives them.
    """
    if not isinstance(value, dict):
        raise KustomizeError("sortOptions must be a mapping", file=file)
    unknown = set(value) - {"order", "legacySortOptions"}
    if unknown:
        raise KustomizeError(f"sortOptions: unknown field {sorted(unknown)[0]!r}", file=file)
    order = value.get("order")
    if order not in {"legacy", "fifo"}:
        raise KustomizeError("the field 'sortOptions.order' must be one of [fifo, legacy]", file=file)
    legacy = value.get("legacySortOptions")
    if legacy is None:
        return {"order": order}
    if order == "fifo":
        raise KustomizeError("the field 'sortOptions.legacySortOptions' is set but the selected sort order is "
                             "'fifo', not 'legacy'", file=file)
    if not isinstance(legacy, dict) or set(legacy) - {"orderFirst", "orderLast"}:
        raise KustomizeError("sortOptions.legacySortOptions takes orderFirst and orderLast only", file=file)
    return {"order": order, "orderFirst": _strings(legacy, "orderFirst", file),
            "orderLast": _strings(legacy, "orderLast", file)}


_GENERATOR_FIELDS = frozenset({"name", "namespace", "behavior", "literals", "files", "envs", "env", "options",
                               "type", "kvSources"})


def _generator_options(value: Any, where: str, file: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KustomizeError(f"{where} must be a mapping", file=file)
    unknown = set(value) - {"labels", "annotations", "disableNameSuffixHash", "immutable"}
    if unknown:
        raise KustomizeError(f"{where}: unknown field {sorted(unknown)[0]!r}", file=file)
    return {"labels": _string_map(value.get("labels"), f"{where}.labels", file),
            "annotations": _string_map(value.get("annotations"), f"{where}.annotations", file),
            "disableNameSuffixHash": bool(value.get("disableNameSuffixHash", False)),
            "immutable": bool(value.get("immutable", False))}


def _generator(args: dict[str, Any], where: str, file: str) -> dict[str, Any]:
    unknown = set(args) - _GENERATOR_FIELDS
    if unknown:
        raise KustomizeError(f"{where}: unknown field {sorted(unknown)[0]!r}", file=file)
    if "kvSources" in args:
        raise NeedsExternal(f"{where} kvSources (generator plugins)", file)
    checked = dict(args)
    for key in ("name", "namespace", "behavior", "type", "env"):
        if checked.get(key) is not None and not isinstance(checked[key], str):
            raise KustomizeError(f"{where}: {key} must be a string", file=file)
    for key in ("literals", "files", "envs"):
        checked[key] = _strings(args, key, file)
    checked["options"] = _generator_options(args.get("options"), f"{where}.options", file)
    return checked
