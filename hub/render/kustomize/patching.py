"""``patches``, ``patchesStrategicMerge`` and ``patchesJson6902``, with kustomize's target selection.

Strategic merge is kustomize's own walk (:mod:`~hub.render.kustomize.merging`)
with the built-in kinds' schema from :mod:`protos.k8s_schema`; kinds without one
(custom resources) merge maps and replace lists, as in kustomize. JSON 6902 uses
the ``jsonpatch`` library.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from typing import Any

import jsonpatch

from hub.render import budgets
from hub.render.kustomize import merging
from hub.render.kustomize.kustomization import Kustomization
from hub.render.kustomize.resources import Resource, clone, effective_namespace_of
from hub.tree import repofs
from hub.tree.errors import KustomizeError
from hub.tree.loading import load_yaml_any, load_yaml_documents
from protos import selectors

__all__ = ["apply_patches", "parse_label_selector"]


# -- selectors ------------------------------------------------------------------------------------

def parse_label_selector(text: str, *, file: str, field: str = "labelSelector") -> selectors.Selector:
    """A patch target's ``labelSelector`` / ``annotationSelector`` (``app=web,tier in (a,b),!legacy``).

    The grammar is the one the fleet uses (:mod:`protos.selectors`): kustomize parses both fields with
    the API server's label selector parser.
    """
    try:
        return selectors.parse(text, where=f"patch target {field}")
    except selectors.SelectorError as exc:
        raise KustomizeError(f"invalid label selector ({exc})", file=file) from None


def matches(selector: selectors.Selector, values: dict[str, Any]) -> bool:
    """Whether labels or annotations ``values`` satisfy a target's ``selector``."""
    # Label values are text; a `version: 1` written in YAML is compared as "1".
    return selector.matches({str(key): str(value) for key, value in values.items()})


def _anchored(pattern: str, *, file: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(f"(?:{pattern})")
    except re.error as exc:
        raise KustomizeError(f"invalid regular expression {pattern!r} in a patch target: {exc}", file=file) from exc


def select(resources: list[Resource], target: dict[str, Any], *, file: str) -> list[Resource]:
    """kustomize's ``ResMap.Select``: regex name/namespace (original or current), exact GVK, selectors."""
    unknown = set(target) - {"group", "version", "kind", "name", "namespace", "labelSelector",
                             "annotationSelector"}
    if unknown:
        raise KustomizeError(f"patch target: unknown field {sorted(unknown)[0]!r}", file=file)
    name_re = _anchored(str(target.get("name") or ""), file=file)
    ns_re = _anchored(str(target.get("namespace") or ""), file=file)
    group, version, kind = (str(target.get(key) or "") for key in ("group", "version", "kind"))
    labels = parse_label_selector(str(target["labelSelector"]), file=file) if target.get("labelSelector") else None
    annotations = (parse_label_selector(str(target["annotationSelector"]), file=file, field="annotationSelector")
                   if target.get("annotationSelector") else None)
    selected = []
    for res in resources:
        _, org_name, org_ns = res.org_id()
        cur_ns = res.effective_namespace()
        if ns_re is not None and not (ns_re.fullmatch(org_ns) or ns_re.fullmatch(cur_ns)):
            continue
        if name_re is not None and not (name_re.fullmatch(org_name) or name_re.fullmatch(res.name)):
            continue
        if (group and res.group != group) or (version and res.version != version) or (kind and res.kind != kind):
            continue
        if labels is not None and not matches(labels, res.labels()):
            continue
        if annotations is not None and not matches(annotations, res.annotations()):
            continue
        selected.append(res)
    return selected


# -- merging --------------------------------------------------------------------------------------

def strategic_merge(res: Resource, patch: dict[str, Any]) -> dict[str, Any] | None:
    """``res.obj`` with ``patch`` merged (in place); None when the patch deletes the object."""
    try:
        merged = merging.merge(res.obj, patch, merging.schema_for(res.group, res.kind), empty=res.empty_nulls)
    except merging.MergeError as exc:
        raise KustomizeError(f"strategic merge patch failed: {exc}", obj=res.describe(), file=res.source) from exc
    res.sync_shared()
    return merged


def _apply_smp(res: Resource, patch: dict[str, Any], options: dict[str, Any] | None = None) -> bool:
    """Merge ``patch`` into ``res`` keeping its namespace, and its kind and name unless ``options`` allow
    changing them (``allowKindChange``, ``allowNameChange``); False when the patch deletes ``res``."""
    name, namespace, kind = res.name, res.namespace, res.kind
    allow_name = bool((options or {}).get("allowNameChange"))
    allow_kind = bool((options or {}).get("allowKindChange"))
    if allow_name or allow_kind:
        res.store_previous_id()  # so references to the old name or kind follow the object (kustomize's)
    # One patch may go to several targets; both merges copy what they take, so no target shares a value.
    patch = dict(patch)
    patch["apiVersion"] = res.api_version
    merged = strategic_merge(res, patch)
    if merged is None or not merged:
        return False
    res.obj = merged
    if not allow_kind:
        res.obj["kind"] = kind
    meta = res.metadata
    if not allow_name:
        meta["name"] = name
    if namespace:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    return True


# -- loading patches ------------------------------------------------------------------------------

def _patch_text(fs: repofs.RepoFS, k: Kustomization, entry: dict[str, Any], *, restrict: bool) -> tuple[str, str]:
    """(text, where) of a ``patches`` entry: inline ``patch`` or the file at ``path``."""
    inline, path = entry.get("patch"), entry.get("path")
    if inline and path:
        raise KustomizeError("a patch cannot have both patch and path", file=k.file)
    if inline:  # kustomize trims an inline patch (a block scalar ending it loses its final newline)...
        return str(inline).strip(), k.file
    if not path:
        raise KustomizeError("a patch needs patch or path", file=k.file)
    full = repofs.normalize(str(path), base=k.directory, file=k.file)
    if restrict and k.directory and not full.startswith(k.directory + "/"):
        raise KustomizeError(f"patch {path!r} is outside the kustomization directory (load restrictor RootOnly)",
                             file=k.file)
    if not fs.is_file(full):
        raise KustomizeError(f"patch file {path!r} does not exist", file=k.file)
    # ...but not a patch file: stripping it would drop the final newline of a `|` block ending the file.
    return fs.read_bytes(full).decode("utf-8", "replace"), full


#: Blank lines, comments, directives and document starts before the first content line of a patch.
_LEADING_NOISE = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\n|%[^\n]*\n|---[ \t]*(?:#[^\n]*)?\n)*")


@functools.lru_cache(maxsize=1024)
def _parsed_list(text: str) -> Any:
    documents = load_yaml_any(text.encode("utf-8"), file="patch")
    return documents[0] if len(documents) == 1 else None


def _as_json_patch(text: str, where: str) -> list[dict[str, Any]] | None:
    """The operations if ``text`` is a JSON 6902 patch (JSON or YAML list), else None."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        # As kustomize: text that starts with "[" is JSON or nothing (a YAML flow list there is refused).
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return None
        return decoded if isinstance(decoded, list) else None
    if not _LEADING_NOISE.sub("", text).startswith(("-", "[")):
        # A YAML list of operations starts with "-" or "[" after comments, directives and "---"; anything
        # else is a strategic merge patch, and is not parsed twice.
        return None
    try:
        loaded = _parsed_list(text)
    except KustomizeError:
        return None
    if isinstance(loaded, list) and all(isinstance(op, dict) and "op" in op for op in loaded):
        ops: list[dict[str, Any]] = clone(loaded)  # jsonpatch inserts its values as they are: never share them
        return ops
    return None


def _apply_json6902(resources: list[Resource], ops: list[dict[str, Any]], target: dict[str, Any] | None,
                    *, where: str, file: str) -> None:
    if target is None:
        raise KustomizeError(f"JSON patch {where} needs a target", file=file)
    try:
        patch = jsonpatch.JsonPatch(ops)
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError) as exc:  # a path without '/'
        raise KustomizeError(f"invalid JSON patch{'' if where == file else ' ' + where}: {exc}",
                             file=file) from exc
    for res in select(resources, target, file=file):
        res.store_previous_id()
        try:
            res.obj = patch.apply(res.obj, in_place=False)
            # kustomize rewrites the annotations after a JSON patch; an empty map is dropped on the way.
            meta = res.obj.get("metadata")
            if isinstance(meta, dict) and "annotations" in meta and not meta["annotations"]:
                del meta["annotations"]
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise KustomizeError(f"JSON patch {where} failed on {res.describe()}: {exc}", file=file) from exc


def _apply_sm_patches(resources: list[Resource], patches: list[dict[str, Any]], target: dict[str, Any] | None,
                      *, where: str, file: str, options: dict[str, Any] | None = None) -> list[Resource]:
    if target is not None:
        if len(patches) > 1:
            raise KustomizeError(f"several strategic merge patches in one entry with a target: {where}", file=file)
        chosen = {id(res) for res in select(resources, target, file=file)}
        return [res for res in resources if id(res) not in chosen or _apply_smp(res, patches[0], options)]
    for patch in patches:
        meta = patch.get("metadata") or {}
        if not isinstance(meta, dict):
            raise KustomizeError(f"strategic merge patch {where}: metadata is a {type(meta).__name__}, "
                                 "not a mapping", file=file)
        api_version, kind = str(patch.get("apiVersion") or ""), str(patch.get("kind") or "")
        name = str(meta.get("name") or "")
        ns = effective_namespace_of(api_version, kind, str(meta.get("namespace") or ""))
        matches = [res for res in resources if res.matches_id(api_version, kind, name, ns)]
        patch_id = f"{kind}/{name}" + (f" in namespace {meta['namespace']}" if meta.get("namespace") else "")
        if not matches:
            raise KustomizeError(f"no resource matches strategic merge patch {patch_id} ({where})", file=file)
        if len(matches) > 1:
            raise KustomizeError(f"several resources match strategic merge patch {patch_id} ({where})", file=file)
        if not _apply_smp(matches[0], patch, options):
            resources = [res for res in resources if res is not matches[0]]
    return resources


def _apply_entry(k: Kustomization, resources: list[Resource], text: str, where: str,
                 target: dict[str, Any] | None, options: dict[str, Any] | None = None) -> list[Resource]:
    ops = _as_json_patch(text, where)
    if ops is not None:
        _apply_json6902(resources, ops, target, where=where, file=k.file)
        return resources
    patches = load_yaml_documents(text.encode("utf-8"), file=where)
    if not patches:
        raise KustomizeError(f"patch {where} is empty", file=k.file)
    return _apply_sm_patches(resources, patches, target, where=where, file=k.file, options=options)


def apply_patches(fs: repofs.RepoFS, k: Kustomization, resources: list[Resource], *, restrict: bool,
                  json6902: bool) -> list[Resource]:
    """``patchesStrategicMerge`` then ``patches`` (``json6902=False``), or ``patchesJson6902`` (True).

    kustomize runs these two groups at different points of its transformer order.
    """
    if json6902:
        for entry in k.patches_json6902:
            budgets.check(file=k.file)
            text, where = _patch_text(fs, k, entry, restrict=restrict)
            ops = _as_json_patch(text, where)
            if ops is None:
                raise KustomizeError(f"patchesJson6902 {where} is not a JSON patch", file=k.file)
            _apply_json6902(resources, ops, entry.get("target"), where=where, file=k.file)
        return resources
    for item in k.patches_strategic_merge:
        budgets.check(file=k.file)
        candidate = posixpath.normpath(posixpath.join(k.directory, item)) if "\n" not in item else ""
        if candidate and not candidate.startswith("../") and fs.is_file(candidate):
            text, where = _patch_text(fs, k, {"path": item}, restrict=restrict)
        else:
            text, where = item.strip(), k.file
        patches = load_yaml_documents(text.encode("utf-8"), file=where)
        resources = _apply_sm_patches(resources, patches, None, where=where, file=k.file)
    for entry in k.patches:
        budgets.check(file=k.file)
        text, where = _patch_text(fs, k, entry, restrict=restrict)
        resources = _apply_entry(k, resources, text, where, entry.get("target"), entry.get("options"))
    return resources
