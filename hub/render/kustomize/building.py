"""The native build: kustomize's accumulate → generate → components → transform, then hash, refs, order.

Mirrors ``api/internal/target/kusttarget.go`` (v5.5.0): a kustomization first
accumulates its resources (files, and directories built recursively as their
own targets), runs its generators, then its components (which act on
everything accumulated so far), then its own transformers. At the top: hash
suffixes, name-reference fixing, local-config removal, legacy order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from hub.render import budgets
from hub.render.kustomize import (
    configurations,
    generating,
    namerefs,
    ordering,
    patching,
    replacing,
    transforming,
    variables,
)
from hub.render.kustomize.kustomization import (
    Kustomization,
    check_sort_options,
    find_kustomization_file,
    parse_kustomization,
)
from hub.render.kustomize.resources import Resource, clone, empty_values
from hub.tree import repofs
from hub.tree.errors import KustomizeError, LimitError, RepoPathError
from hub.tree.loading import load_yaml_mapping, load_yaml_resources

__all__ = ["Builder"]

_LOCAL_CONFIG = "config.kubernetes.io/local-config"


class _ParseCache:
    """Parsed YAML by Git object id: the same blob is parsed once however many builds read it.

    Bounded by entries and by the bytes of the files behind them: files of up to ``max_file_bytes``
    each, kept by the thousand, would otherwise hold gigabytes.
    """

    def __init__(self, size: int, *, max_bytes: int) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[tuple[str, str], tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[int, Any] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: tuple[int, Any]) -> None:
        """``value``: (bytes of the file, parsed content)."""
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += value[0] - (old[0] if old is not None else 0)
            self._items[key] = value
            while len(self._items) > self._size or (self._bytes > self._max_bytes and len(self._items) > 1):
                _, (size, _) = self._items.popitem(last=False)
                self._bytes -= size


_CACHE = _ParseCache(8192, max_bytes=256 * 1024 * 1024)


def _annotation_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # A null's spelling (``~``, ``null`` or nothing) and a float's (``1.50``) are lost in parsing: the
    # common empty spelling and Python's float text stand in for them.
    return "" if value is None else value if isinstance(value, str) else str(value)


def _rewrite_annotations(obj: dict[str, Any]) -> None:
    """kustomize rewrites every object's annotations (a Go map[string]string) as it strips its build ones.

    So an empty or null map is dropped, and a number, boolean or null value becomes its text (labels and
    other empty fields stay as written).
    """
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "annotations" not in meta:
        return
    annotations = meta["annotations"]
    if not annotations:
        del meta["annotations"]
    elif isinstance(annotations, dict):
        meta["annotations"] = {key: _annotation_text(value) for key, value in annotations.items()}


@dataclass(slots=True)
class _Scope:
    """What an accumulation carries beside its objects (kustomize's ResAccumulator): field specs and vars.

    A kustomization directory gets its own; a component shares its parent's. A base's scope merges
    into its parent's when its objects do, so its ``configurations`` and ``vars`` reach the overlays.
    """

    config: configurations.TransformerConfig = configurations.EMPTY
    vars: dict[str, variables.Var] = field(default_factory=dict)


class Builder:
    """One native build over one :class:`~hub.tree.repofs.RepoFS` (not thread-safe; make one per build)."""

    def __init__(self, fs: repofs.RepoFS, *, restrict: bool, max_yaml_bytes: int,
                 max_objects: int | None = None, max_read_bytes: int | None = None) -> None:
        # Every read of the build (resources, patches, generator sources) is bounded before it happens,
        # one by one and in all.
        self._bounded = repofs.BoundedFS(fs, max_bytes=max_yaml_bytes, max_total_bytes=max_read_bytes)
        self.fs: repofs.RepoFS = self._bounded
        self.restrict = restrict
        self.max_yaml_bytes = max_yaml_bytes
        self.max_objects = max_objects
        self._stack: list[str] = []
        #: What kustomize builds but a cluster will refuse (e.g. an invalid ConfigMap key), in build order.
        self.warnings: list[str] = []
        self._scope = _Scope()
        # DirectoryFS content may change between builds and its ids cost a read: cache Git objects only.
        self._cacheable = not isinstance(fs, repofs.DirectoryFS)

    # -- reading --------------------------------------------------------------------------------
    def _read(self, path: str, referrer: str | None) -> bytes:
        return self.fs.read_bytes(path, max_bytes=self.max_yaml_bytes)

    def _parsed(self, kind: str, path: str, referrer: str | None) -> Any:
        key = (kind, self.fs.tree_id(path)) if self._cacheable else None
        if key is not None:
            cached = _CACHE.get(key)
            if cached is not None:
                size, value = cached
                if size > self.max_yaml_bytes:  # the limit is per build; the cache is shared
                    raise LimitError(f"is {size} bytes, over the {self.max_yaml_bytes}-byte limit",
                                     setting="max_file_bytes", file=path)
                self._bounded.charge(path, size)
                return value
        data = self._read(path, referrer)
        value = load_yaml_resources(data, file=path) if kind == "docs" else load_yaml_mapping(data, file=path)
        if key is not None:
            _CACHE.put(key, (len(data), value))
        return value

    def load_kustomization(self, directory: str, *, referrer: str | None) -> Kustomization:
        file = find_kustomization_file(self.fs, directory, referrer=referrer)
        raw = self._parsed("kust", file, referrer)
        return parse_kustomization(raw, directory=directory, file=file)

    def _resources_from_file(self, path: str, k: Kustomization) -> list[Resource]:
        result = []
        for doc, empty_paths in self._parsed("docs", path, k.file):
            obj = clone(doc)
            meta = obj.get("metadata")
            if not obj.get("kind"):
                raise KustomizeError("an object has no kind", file=path)
            if not isinstance(meta, dict) or not meta.get("name"):
                raise KustomizeError(f"a {obj.get('kind')} has no metadata.name", file=path)
            result.append(Resource(obj=obj, source=path, empty_nulls=empty_values(obj, empty_paths)))
        return result

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    # -- accumulation ---------------------------------------------------------------------------
    def _append_all(self, ra: list[Resource], more: list[Resource]) -> None:
        # Checked as objects accumulate, so a tree that doubles at every level stops at the bound,
        # not after building 2^N objects.
        if self.max_objects is not None and len(ra) + len(more) > self.max_objects:
            raise LimitError(f"the build makes more than {self.max_objects} objects", setting="max_bundle_objects",
                             file=more[0].source if more else None)
        budgets.check(file=more[0].source if more else None)
        ids = {(res.api_version, *res.cur_id()): res for res in ra}
        for res in more:
            key = (res.api_version, *res.cur_id())
            first = ids.get(key)
            if first is not None:
                raise KustomizeError(f"{res.describe()} is defined twice (first in {first.source})",
                                     file=res.source)
            ids[key] = res
            ra.append(res)

    def _within_root(self, k: Kustomization, full: str) -> bool:
        return not k.directory or full.startswith(k.directory + "/")

    def _accumulate_resource(self, ra: list[Resource], k: Kustomization, path: str) -> list[Resource]:
        full = repofs.normalize(path, base=k.directory, file=k.file)
        if self.fs.is_file(full):
            if self.restrict and not self._within_root(k, full):
                raise RepoPathError(
                    f"resource file {path!r} is outside the kustomization directory (load restrictor RootOnly)",
                    file=k.file)
            self._append_all(ra, self._resources_from_file(full, k))
            return ra
        if self.fs.is_dir(full):
            return self._accumulate_directory(ra, k, full, component=False)
        raise KustomizeError(f"resource {path!r} does not exist (no such file or directory)", file=k.file)

    def _accumulate_directory(self, ra: list[Resource], k: Kustomization, full: str, *,
                              component: bool) -> list[Resource]:
        if full in self._stack:
            chain = " -> ".join([*self._stack[self._stack.index(full):], full])
            raise KustomizeError(f"cycle of kustomizations: {chain}", file=k.file)
        what = "component" if component else "resource"
        if not self.fs.is_dir(full):
            raise KustomizeError(f"{what} {full!r} does not exist", file=k.file)
        sub = self.load_kustomization(full, referrer=k.file)
        if sub.sort_options is not None:
            # kustomize reads sortOptions from the kustomization it was asked to build, nowhere else.
            self._warn(f"{sub.file}: sortOptions is ignored: kustomize applies only the top kustomization's "
                       "(for a fleet app, the order is kustomize's legacy order)")
        if component and sub.kind != "Component":
            raise KustomizeError(f"{full!r} is listed in components but its kind is {sub.kind}, not Component",
                                 file=k.file)
        if not component and sub.kind == "Component":
            raise KustomizeError(f"{full!r} is a Component; list it under components, not resources", file=k.file)
        self._stack.append(full)
        try:
            if component:
                ra = self.accumulate_target(ra, sub)
                # kustomize moves a component's result into a fresh accumulation: its config merges
                # into an empty one again, which drops specs that the sorted list now makes redundant.
                self._scope.config = configurations.EMPTY.merge(self._scope.config, file=sub.file)
                return ra
            outer, self._scope = self._scope, _Scope()
            try:
                built = self.accumulate_target([], sub)
                inner = self._scope
            finally:
                self._scope = outer
            self._append_all(ra, built)
            self._absorb_scope(inner, k)
            return ra
        finally:
            self._stack.pop()

    def _absorb_scope(self, inner: _Scope, k: Kustomization) -> None:
        self._scope.config = self._scope.config.merge(inner.config, file=k.file)
        variables.absorb(self._scope.vars, inner.vars.values(), file=k.file)

    def _merge_configurations(self, k: Kustomization) -> None:
        parsed = []
        for path in k.configurations:
            full = repofs.normalize(path, base=k.directory, file=k.file)
            if self.restrict and not self._within_root(k, full):
                raise RepoPathError(f"configurations file {path!r} is outside the kustomization directory "
                                    "(load restrictor RootOnly)", file=k.file)
            if not self.fs.is_file(full):
                raise KustomizeError(f"configurations file {path!r} does not exist", file=k.file)
            parsed.append((full, configurations.parse_configuration(self._parsed("kust", full, k.file), file=full)))
        own = configurations.own_config(parsed, file=k.file)
        self._scope.config = self._scope.config.merge(own, file=k.file)

    def _absorb_generated(self, ra: list[Resource], res: Resource, k: Kustomization) -> None:
        api_version, kind, name, ns = res.api_version, *res.cur_id()
        matches = [old for old in ra if old.matches_id(api_version, kind, name, ns)]
        if not matches:
            if res.behavior in {"merge", "replace"}:
                raise KustomizeError(
                    f"{res.describe()} does not exist; behavior {res.behavior} needs it in a base", file=k.file)
            self._append_all(ra, [res])
            return
        if len(matches) > 1:
            raise KustomizeError(f"several objects could take the merge of {res.describe()}", file=k.file)
        old = matches[0]
        if res.behavior == "create":
            raise KustomizeError(f"{res.describe()} already exists; use behavior merge or replace", file=k.file)
        meta, old_meta = res.metadata, old.metadata

        def mapping(obj: Resource, where: dict[str, Any], field: str) -> dict[str, Any]:
            # The base's object is any YAML the commit wrote: `data: text` is an error, not a crash.
            value = where.get(field) or {}
            if not isinstance(value, dict):
                raise KustomizeError(f"cannot merge {res.describe()} into {obj.describe()}: its {field} is a "
                                     f"{type(value).__name__}, not a mapping", file=k.file)
            return value

        labels = {**mapping(old, old_meta, "labels"), **mapping(res, meta, "labels")}
        annotations = {**mapping(old, old_meta, "annotations"), **mapping(res, meta, "annotations")}
        for key, value in (("labels", labels), ("annotations", annotations)):
            if value:
                meta[key] = value
            else:
                meta.pop(key, None)
        meta["name"] = old.name
        if old.namespace:
            meta["namespace"] = old.namespace
        else:
            meta.pop("namespace", None)
        if res.behavior == "merge":
            for field in ("data", "binaryData"):
                merged = {**mapping(old, old.obj, field), **mapping(res, res.obj, field)}
                if merged:
                    res.obj[field] = merged
        res.prev, res.prefixes, res.suffixes = list(old.prev), list(old.prefixes), list(old.suffixes)
        # Build annotations come from the old object, and the new one can only turn the hash off.
        res.needs_hash = old.needs_hash and res.needs_hash
        res.source = old.source
        res.var_names = list(old.var_names)
        ra[ra.index(old)] = res

    def accumulate_target(self, ra: list[Resource], k: Kustomization) -> list[Resource]:
        for path in k.resources:
            budgets.check(file=k.file)
            ra = self._accumulate_resource(ra, k, path)
        self._merge_configurations(k)  # the built-in field specs, and those of its configurations files
        for res in generating.generate(self.fs, k, restrict=self.restrict, warn=self._warn):
            budgets.check(file=k.file)
            self._absorb_generated(ra, res, k)
        for path in k.components:
            budgets.check(file=k.file)
            full = repofs.normalize(path, base=k.directory, file=k.file)
            ra = self._accumulate_directory(ra, k, full, component=True)
        budgets.check(file=k.file)
        ra = self._transform(ra, k)
        if k.vars:
            variables.declare(self._scope.vars, k.vars, ra, file=k.file)
        return ra

    # -- transformers (kustomize's order) --------------------------------------------------------
    def _transform(self, ra: list[Resource], k: Kustomization) -> list[Resource]:
        config = self._scope.config
        ra = patching.apply_patches(self.fs, k, ra, restrict=self.restrict, json6902=False)
        if k.namespace:
            transforming.set_namespace(ra, k.namespace, file=k.file, config=config)
        if k.name_prefix:
            transforming.add_name_prefix(ra, k.name_prefix, config.name_prefix)
        if k.name_suffix:
            transforming.add_name_suffix(ra, k.name_suffix, config.name_suffix)
        for label in k.labels:
            specs = transforming.label_field_specs(include_selectors=label["includeSelectors"],
                                                   include_templates=label["includeTemplates"],
                                                   extra=label["fields"], config=config, file=k.file)
            transforming.add_labels(ra, label["pairs"], specs)
        if k.common_labels:
            transforming.add_labels(ra, k.common_labels, list(config.common_labels))
        transforming.add_annotations(ra, k.common_annotations, config.common_annotations)
        ra = patching.apply_patches(self.fs, k, ra, restrict=self.restrict, json6902=True)
        budgets.check(file=k.file)
        if k.replicas:
            transforming.set_replicas(ra, k.replicas, file=k.file, specs=config.replicas)
        if k.images:
            transforming.set_images(ra, k.images, config.images)
        if k.replacements:
            replacing.apply_replacements(ra, replacing.load_replacements(self.fs, k, restrict=self.restrict),
                                         file=k.file)
        return ra

    # -- the top ---------------------------------------------------------------------------------
    def finish(self, ra: list[Resource], sort_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        for res in ra:
            if res.needs_hash:
                suffix = generating.kustomize_hash(res.obj)
                res.store_previous_id()
                res.name = f"{res.name}-{suffix}"
        budgets.check()
        namerefs.fix_name_references(ra, self._scope.config.name_reference)
        # After names are final: a var's value carries every prefix, suffix and hash (kustomize's order).
        # A var may be read thousands of times: what it adds counts against the build's byte bound.
        variables.resolve(ra, self._scope.vars, self._scope.config.var_reference,
                          max_growth=self._bounded.max_total_bytes)
        kept = [res for res in ra if res.annotations().get(_LOCAL_CONFIG) != "true"]
        for res in kept:
            _rewrite_annotations(res.obj)
        if sort_options is not None and sort_options["order"] == "fifo":
            return [res.obj for res in kept]
        if sort_options is not None and "orderFirst" in sort_options:
            kept = ordering.legacy_sorted(kept, order_first=tuple(sort_options["orderFirst"]),
                                          order_last=tuple(sort_options["orderLast"]))
            return [res.obj for res in kept]
        return [res.obj for res in ordering.legacy_sorted(kept)]

    def build_directory(self, directory: str) -> list[dict[str, Any]]:
        k = self.load_kustomization(directory, referrer=None)
        self._stack.append(directory)
        sort_options = check_sort_options(k.sort_options, k.file) if k.sort_options is not None else None
        return self.finish(self.accumulate_target([], k), sort_options)

    def build_kustomization(self, k: Kustomization) -> list[dict[str, Any]]:
        return self.finish(self.accumulate_target([], k))
