"""kustomize's built-in transformers over a list of resources, in kustomize's semantics.

Each function mirrors one kustomize plugin (``NamespaceTransformer``,
``PrefixTransformer``, ``LabelTransformer``, ...) and its filter; the field
specs come from a :class:`~hub.render.kustomize.configurations.TransformerConfig`
(kustomize's defaults in :mod:`~hub.render.kustomize.tables`, plus ``configurations`` files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from hub.render.kustomize import configurations
from hub.render.kustomize.resources import FieldSpec, Resource, SharedEntry, apply_field_spec
from hub.tree.errors import KustomizeError

__all__ = [
    "add_annotations",
    "add_labels",
    "add_name_prefix",
    "add_name_suffix",
    "set_images",
    "set_namespace",
    "set_replicas",
]

_PREFIX_SKIP = (("", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"), ("", "Namespace"))


def _str_node() -> str:
    return ""


def _map_node() -> dict[str, Any]:
    return {}


# -- namespace ------------------------------------------------------------------------------------

def set_namespace(resources: list[Resource], namespace: str, *, file: str,
                  config: configurations.TransformerConfig = configurations.DEFAULT) -> None:
    """``namespace:``: set metadata.namespace of namespaced objects, rename v1 Namespaces, fix subjects."""
    specs = [spec for spec in config.namespace if spec.path != ("metadata", "namespace")]

    def setter(parent: dict[str, Any], key: str) -> None:
        parent[key] = namespace

    for res in resources:
        if not res.obj:
            continue
        res.store_previous_id()
        obj = res.obj
        if not res.cluster_scoped:
            res.metadata["namespace"] = namespace
        kind = res.kind
        if kind in {"RoleBinding", "ClusterRoleBinding"}:
            # kustomize's default `setRoleBindingSubjects: defaultOnly`: subjects named "default".
            for subject in obj.get("subjects") or []:
                if isinstance(subject, dict) and subject.get("name") == "default":
                    subject["namespace"] = namespace
        for spec in specs:
            if spec.path == ("metadata", "name") and res.api_version != "v1":
                continue
            if kind in {"RoleBinding", "ClusterRoleBinding"} and spec.kind in {"RoleBinding", "ClusterRoleBinding"} \
                    and spec.path == ("subjects", "namespace"):
                continue  # kustomize's subjects rule above overrides field specs for them
            apply_field_spec(obj, spec, setter, leaf_create=_str_node)
    ids: dict[tuple[str, str, str, str], Resource] = {}
    for res in resources:
        key = (res.api_version, *res.cur_id())
        if key in ids:
            raise KustomizeError(
                f"namespace transformation produces an id conflict: two objects are now {res.describe()}",
                file=file)
        ids[key] = res


# -- name prefix / suffix -------------------------------------------------------------------------

def _skips_prefix(res: Resource) -> bool:
    kind = res.org_id()[0]
    return any(kind == skip_kind and (not group or res.group == group) for group, skip_kind in _PREFIX_SKIP)


def _add_to_names(resources: list[Resource], affix: str, specs: tuple[FieldSpec, ...], *, suffix: bool) -> None:
    # kustomize's Prefix/SuffixTransformer: metadata/name renames the object (and records it for name
    # references); any other field spec (from configurations) gets the same prefix or suffix.
    def setter(parent: dict[str, Any], key: str) -> None:
        value = parent.get(key)
        text = "" if value is None else str(value)
        parent[key] = text + affix if suffix else affix + text

    for res in resources:
        if _skips_prefix(res):
            continue
        org_kind = res.org_id()[0]
        for spec in specs:
            if not spec.selects(res.group, res.version, org_kind):
                continue
            if spec.path == ("metadata", "name"):
                (res.suffixes if suffix else res.prefixes).append(affix)
                res.store_previous_id()
            apply_field_spec(res.obj, spec, setter, leaf_create=_str_node)


def add_name_prefix(resources: list[Resource], prefix: str,
                    specs: tuple[FieldSpec, ...] = configurations.DEFAULT.name_prefix) -> None:
    _add_to_names(resources, prefix, specs, suffix=False)


def add_name_suffix(resources: list[Resource], suffix: str,
                    specs: tuple[FieldSpec, ...] = configurations.DEFAULT.name_suffix) -> None:
    _add_to_names(resources, suffix, specs, suffix=True)


# -- labels and annotations -----------------------------------------------------------------------

def _map_setter(values: dict[str, str], what: str, res: Resource, created: dict[str, list[dict[str, Any]]]) -> Any:
    """Sets ``values`` in the mapping at ``parent[key]``; records in ``created`` where each key was new."""
    def setter(parent: dict[str, Any], key: str) -> None:
        target = parent.get(key)
        if target is None:
            target = {}
            parent[key] = target
        if not isinstance(target, dict):
            raise KustomizeError(f"cannot add {what}: {key} is not a mapping", obj=res.describe(), file=res.source)
        for name, value in values.items():
            if name in target:
                _set_shared(res, target, name, value)
            else:
                created.setdefault(name, []).append(target)
        target.update(values)
    return setter


def _set_shared(res: Resource, target: dict[str, Any], name: str, value: str) -> None:
    """Overwrite ``name`` wherever it shares its node with ``target[name]``, as kustomize's in-place set does."""
    for entry in res.shared:
        if entry.key != name or entry.value != target[name] or not any(m is target for m in entry.maps):
            continue
        for other in entry.maps:
            if other.get(name, value) == entry.value:
                other[name] = value
        entry.value = value


def _set_map_entries(resources: list[Resource], values: dict[str, str], specs: Iterable[FieldSpec],
                     what: str) -> None:
    for res in resources:
        created: dict[str, list[dict[str, Any]]] = {}
        setter = _map_setter(values, what, res, created)
        for spec in specs:
            apply_field_spec(res.obj, spec, setter, leaf_create=_map_node)
        res.shared.extend(SharedEntry(name, values[name], maps) for name, maps in created.items() if len(maps) > 1)


def label_field_specs(*, include_selectors: bool, include_templates: bool, extra: list[dict[str, Any]],
                      config: configurations.TransformerConfig = configurations.DEFAULT,
                      file: str | None = None) -> list[FieldSpec]:
    """The field specs of one ``labels`` entry, as kustomize's configurator merges them."""
    merge = configurations.merge_field_specs
    specs = merge([FieldSpec.parse(raw) for raw in extra], config.labels, file=file, what="labels")
    if include_selectors:
        return list(merge(specs, config.common_labels, file=file, what="labels"))
    if include_templates:
        specs = merge(specs, config.template_labels, file=file, what="labels")
    return list(merge(specs, [FieldSpec(path=("metadata", "labels"), create=True)], file=file, what="labels"))


def add_labels(resources: list[Resource], labels: dict[str, str], specs: list[FieldSpec]) -> None:
    if labels:
        _set_map_entries(resources, labels, specs, "labels")


def add_annotations(resources: list[Resource], annotations: dict[str, str],
                    specs: tuple[FieldSpec, ...] = configurations.DEFAULT.common_annotations) -> None:
    if annotations:
        _set_map_entries(resources, annotations, specs, "annotations")


# -- images ---------------------------------------------------------------------------------------

def split_image(image: str) -> tuple[str, str, str]:
    """(name, tag, digest) as kustomize's ``image.Split``."""
    slash = image.find("/")
    search = image[slash:] if slash > 0 else image
    offset = slash if slash > 0 else 0
    at = search.find("@")
    colon = search.find(":")
    if colon < 0 and at < 0:
        return image, "", ""
    if at >= 0 and (at < colon or colon < 0):
        at += offset
        return image[:at], "", image[at + 1:]
    if at >= 0 and colon >= 0:
        at += offset
        colon += offset
        return image[:colon], image[colon + 1:at], image[at + 1:]
    colon += offset
    return image[:colon], image[colon + 1:], ""


def _image_updater(spec: dict[str, str]) -> Any:
    # kustomize builds this regex from the configured name without escaping it; so do we.
    try:
        pattern = re.compile(spec["name"] + r"(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?")
    except re.error:
        pattern = re.compile(re.escape(spec["name"]) + r"(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?")
    new_name, new_tag, digest = spec.get("newName", ""), spec.get("newTag", ""), spec.get("digest", "")
    tag_suffix = spec.get("tagSuffix", "")

    def update(value: Any) -> Any:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return value
        name, tag, old_digest = split_image(value)
        if new_name:
            name = new_name
        if new_tag and digest:
            tag, old_digest = new_tag, digest
        elif new_tag:
            tag, old_digest = new_tag, ""
        elif digest:
            tag, old_digest = "", digest
        elif tag_suffix:
            # As kustomize v5.5: appended to the current tag (and, since the image is visited once through
            # the containers walk and once through its field spec, twice on workloads: kubectl does too).
            tag, old_digest = tag + tag_suffix, ""
        if tag:
            name += ":" + tag
        if old_digest:
            name += "@" + old_digest
        return name

    return update


def _walk_containers(node: Any, update: Any) -> None:
    # kustomize's LegacyFilter: every `containers`/`initContainers` list anywhere in the object.
    if isinstance(node, dict):
        for key, value in node.items():
            _walk_containers(value, update)
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    if isinstance(container, dict) and "image" in container:
                        container["image"] = update(container["image"])
    elif isinstance(node, list):
        for item in node:
            _walk_containers(item, update)


def set_images(resources: list[Resource], images: list[dict[str, str]],
               specs: tuple[FieldSpec, ...] = configurations.DEFAULT.images) -> None:
    for image in images:
        update = _image_updater(image)

        def setter(parent: dict[str, Any], key: str, update: Any = update) -> None:
            parent[key] = update(parent[key])

        for res in resources:
            if res.kind == "CustomResourceDefinition":
                continue
            _walk_containers(res.obj, update)
            for spec in specs:
                apply_field_spec(res.obj, spec, setter)


# -- replicas -------------------------------------------------------------------------------------

def _kinds(specs: tuple[FieldSpec, ...]) -> str:
    # The kinds replicas applies to: the built-in ones, plus those of configurations files.
    kinds = list(dict.fromkeys(spec.kind or "object" for spec in specs))
    return " or ".join([", ".join(kinds[:-1]), kinds[-1]]) if len(kinds) > 1 else (kinds[0] if kinds else "object")


def set_replicas(resources: list[Resource], replicas: list[dict[str, Any]], *, file: str,
                 specs: tuple[FieldSpec, ...] = configurations.DEFAULT.replicas) -> None:
    for replica in replicas:
        name, count = replica["name"], replica["count"]
        found = False
        for spec in specs:
            for res in resources:
                if not spec.selects(res.group, res.version, res.kind):
                    continue
                if not any(ident[1] == name and spec.selects(res.group, res.version, ident[0])
                           for ident in res.any_ids()):
                    continue
                found = True

                def setter(parent: dict[str, Any], key: str, count: int = count) -> None:
                    parent[key] = count

                apply_field_spec(res.obj, spec, setter, leaf_create=_str_node)
        if not found:
            raise KustomizeError(
                f"replicas: no {_kinds(specs)} named {name!r}",
                file=file)
