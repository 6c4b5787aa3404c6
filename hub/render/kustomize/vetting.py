"""Vetting: may this kustomization tree be handed to an external kustomize?

The native engine refuses remote resources, absolute paths, ``..`` and symlinks out
of the repository, and oversized files, but it stops at the first field outside its
subset. An external build must not be the way around those checks, so before one
runs, *every* kustomization it can reach is checked here, with every path it names:

* each path is inside the repository (no URL, no ``git@host:``, no absolute path,
  no ``..`` out of the root, no symlink out of it, nothing under ``.git``), and a
  file a kustomization reads is inside that kustomization's directory (kustomize's
  ``LoadRestrictionsRootOnly``);
* no field makes the build run a program chosen by the commit — ``helmCharts``,
  ``helmChartInflationGenerator``, ``helmGlobals`` (helm), generator/transformer/
  validator configs that are not kustomize built-ins (exec and Go plugins, KRM
  functions: ``config.kubernetes.io/function``), generator ``kvSources`` — unless
  the hub's operator enabled helm or plugins (:class:`Policy`);
* every file is within the size limit, and the tree within a file-count and
  total-size budget.

The result, :class:`VettedTree`, holds the content of exactly the files the build
may read, so the external tool runs on a copy of those and nothing else.

Pure core: :func:`vet_kustomization` (one parsed kustomization -> what it references)
and :func:`vet_plugin_config` (one generator/transformer/validator config). The walk,
:func:`vet_tree`, reads through a :class:`~hub.tree.repofs.RepoFS` only.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from typing import Any

import yaml

from hub.render.kustomize.kustomization import (
    SUPPORTED_FIELDS,
    UNSUPPORTED_FIELDS,
    find_kustomization_file,
)
from hub.tree import repofs
from hub.tree.errors import KustomizeError, RepoPathError, UnsupportedFeatureError
from hub.tree.loading import load_yaml_any, load_yaml_mapping

__all__ = [
    "FUNCTION_ANNOTATIONS",
    "Policy",
    "References",
    "VettedTree",
    "vet_kustomization",
    "vet_plugin_config",
    "vet_tree",
]

#: Annotations that make a generator/transformer config a KRM function (a container or an executable).
FUNCTION_ANNOTATIONS = ("config.kubernetes.io/function", "config.k8s.io/function")

_HELM_FIELDS = ("helmCharts", "helmChartInflationGenerator", "helmGlobals")
_PLUGIN_FIELDS = ("generators", "transformers", "validators")
_BUILTIN_API_VERSION = "builtin"
#: kustomize v5's built-in plugins (api/internal/plugins/builtinhelpers): configs of these kinds run
#: in-process; any other config names an external plugin.
_BUILTIN_KINDS = frozenset({
    "AnnotationsTransformer", "ConfigMapGenerator", "HashTransformer", "HelmChartInflationGenerator",
    "IAMPolicyGenerator", "ImageTagTransformer", "LabelTransformer", "LegacyOrderTransformer",
    "NamespaceTransformer", "PatchJson6902Transformer", "PatchStrategicMergeTransformer", "PatchTransformer",
    "PrefixSuffixTransformer", "PrefixTransformer", "ReplacementTransformer", "ReplicaCountTransformer",
    "SecretGenerator", "SortOrderTransformer", "SuffixTransformer", "ValueAddTransformer",
})
_HELM_HINT = "running helm is disabled on this hub (an operator can enable it: hub setting allow_helm, --allow-helm)"
_PLUGIN_HINT = ("running plugins and KRM functions is disabled on this hub (an operator can enable it: "
                "hub setting allow_plugins, --allow-plugins)")


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """What an external build may do. ``allow_helm``/``allow_plugins`` come from the hub's own settings."""

    allow_helm: bool = False             #: helmCharts & co. (helm still gets no network: vendor charts)
    allow_plugins: bool = False          #: non-builtin generators/transformers/validators, kvSources
    restrict: bool = True                #: files inside their kustomization's directory (RootOnly)
    max_file_bytes: int = 8 * 1024 * 1024       #: largest file the build may read
    max_total_bytes: int = 64 * 1024 * 1024     #: all files of one build together
    max_files: int = 10_000                     #: files of one build
    max_kustomizations: int = 500               #: kustomization directories of one build
    max_depth: int = 64                         #: nesting of kustomizations


@dataclasses.dataclass(frozen=True, slots=True)
class References:
    """What one kustomization makes a build read, every path normalised and repository-relative."""

    resources: tuple[str, ...] = ()       #: resources/bases: a file or a kustomization directory
    components: tuple[str, ...] = ()      #: component directories
    files: tuple[str, ...] = ()           #: files read (patches, generator sources, crds, ...)
    plugin_paths: tuple[tuple[str, str], ...] = ()        #: (field, path) of generator/transformer configs
    plugin_configs: tuple[tuple[str, dict[str, Any]], ...] = ()  #: (field, config) written inline
    chart_homes: tuple[str, ...] = ()     #: directories helm reads whole (only when helm is allowed)
    helm: bool = False                    #: the build needs --enable-helm
    plugins: bool = False                 #: the build needs --enable-alpha-plugins


@dataclasses.dataclass(frozen=True, slots=True)
class VettedTree:
    """Every file an external build may read (path -> content) and what it must be allowed to run."""

    files: dict[str, bytes]
    helm: bool
    plugins: bool


# -- the pure core ------------------------------------------------------------------------------------

class _Refs:
    """A mutable :class:`References` while one kustomization is read."""

    def __init__(self, directory: str, file: str, policy: Policy) -> None:
        self.directory = directory
        self.file = file
        self.policy = policy
        self.resources: list[str] = []
        self.components: list[str] = []
        self.files: list[str] = []
        self.plugin_paths: list[tuple[str, str]] = []
        self.plugin_configs: list[tuple[str, dict[str, Any]]] = []
        self.chart_homes: list[str] = []
        self.helm = False
        self.plugins = False

    def path(self, value: Any, field: str) -> str:
        """``value`` (written in ``field``) as a repository path; refuses URLs, absolute paths, escapes."""
        if not isinstance(value, str) or not value:
            raise KustomizeError(f"{field} must be a non-empty path, not {value!r}", file=self.file)
        try:
            full = repofs.normalize(value, base=self.directory, file=self.file)
        except RepoPathError as exc:
            raise RepoPathError(f"{field}: {exc.message}", file=self.file) from exc
        if ".git" in full.split("/"):
            raise RepoPathError(f"{field}: {value!r} is inside .git, which a build never reads", file=self.file)
        return full

    def file_path(self, value: Any, field: str) -> str:
        full = self.path(value, field)
        if self.policy.restrict and self.directory and not full.startswith(self.directory + "/"):
            raise RepoPathError(f"{field}: {value!r} is outside the kustomization directory "
                                "(load restrictor RootOnly)", file=self.file)
        self.files.append(full)
        return full

    def done(self) -> References:
        return References(resources=tuple(self.resources), components=tuple(self.components),
                          files=tuple(self.files), plugin_paths=tuple(self.plugin_paths),
                          plugin_configs=tuple(self.plugin_configs), chart_homes=tuple(self.chart_homes),
                          helm=self.helm, plugins=self.plugins)


def _strings(value: Any, field: str, file: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise KustomizeError(f"{field} must be a list of strings", file=file)
    return list(value)


def _mappings(value: Any, field: str, file: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise KustomizeError(f"{field} must be a list of mappings", file=file)
    return list(value)


def _generator_sources(refs: _Refs, args: Mapping[str, Any], field: str) -> None:
    for source in _strings(args.get("files"), f"{field}.files", refs.file):
        # "[key=]path", as kustomize and the native generator read it.
        refs.file_path(source.split("=", 1)[1] if "=" in source else source, f"{field}.files")
    envs = _strings(args.get("envs"), f"{field}.envs", refs.file)
    if args.get("env") is not None:
        envs.append(args["env"])
    for env in envs:
        refs.file_path(env, f"{field}.envs")


def _helm(refs: _Refs, field: str, value: Any, *, feature: str | None = None) -> None:
    if not refs.policy.allow_helm:
        raise UnsupportedFeatureError(f"{field}: {_HELM_HINT}", feature=feature or field, file=refs.file)
    refs.helm = True
    for chart in _mappings(value, field, refs.file):
        for key in ("valuesFile", "additionalValuesFiles"):
            for path in ([chart[key]] if isinstance(chart.get(key), str) else
                         _strings(chart.get(key), f"{field}.{key}", refs.file)):
                refs.file_path(path, f"{field}.{key}")
        for key in ("chartHome", "configHome"):
            if chart.get(key) is not None:
                refs.chart_homes.append(refs.path(chart[key], f"{field}.{key}"))


def _is_inline(entry: str) -> bool:
    """An entry written as YAML in place (a patch, a plugin config), not a path."""
    if "\n" in entry:
        return True
    try:
        return isinstance(yaml.safe_load(entry), Mapping)
    except yaml.YAMLError:
        return False


def vet_kustomization(raw: Mapping[str, Any], *, directory: str, file: str,
                      policy: Policy = Policy()) -> References:
    """Check one parsed kustomization and say what it makes a build read.

    Raises :class:`~hub.tree.errors.RepoPathError` for a path that leaves the repository (or its
    kustomization's directory, for files), :class:`~hub.tree.errors.UnsupportedFeatureError`
    (``feature`` = the field) for helm or plugins the policy does not allow, and
    :class:`~hub.tree.errors.KustomizeError` for an unknown field or a field of the wrong shape.
    Reads nothing.
    """
    refs = _Refs(directory, file, policy)
    known = SUPPORTED_FIELDS | set(UNSUPPORTED_FIELDS)
    for key in raw:
        if key not in known:
            raise KustomizeError(f"invalid kustomization: unknown field {key!r}", file=file)
    for key in ("resources", "bases"):
        refs.resources += [refs.path(entry, key) for entry in _strings(raw.get(key), key, file)]
    refs.components = [refs.path(entry, "components") for entry in _strings(raw.get("components"), "components",
                                                                               file)]
    for patch in _strings(raw.get("patchesStrategicMerge"), "patchesStrategicMerge", file):
        if not _is_inline(patch):
            refs.file_path(patch, "patchesStrategicMerge")
    for key in ("patches", "patchesJson6902", "replacements"):
        for entry in _mappings(raw.get(key), key, file):
            if entry.get("path") is not None:
                refs.file_path(entry["path"], f"{key}.path")
    for key in ("configMapGenerator", "secretGenerator"):
        for args in _mappings(raw.get(key), key, file):
            if args.get("kvSources") is not None:
                if not policy.allow_plugins:
                    raise UnsupportedFeatureError(f"{key}.kvSources: {_PLUGIN_HINT}", feature=f"{key}.kvSources",
                                                  file=file)
                refs.plugins = True
            _generator_sources(refs, args, key)
    for key in ("crds", "configurations"):
        for path in _strings(raw.get(key), key, file):
            refs.file_path(path, key)
    openapi = raw.get("openapi")
    if openapi is not None:
        if not isinstance(openapi, Mapping):
            raise KustomizeError("openapi must be a mapping", file=file)
        if openapi.get("path") is not None:
            refs.file_path(openapi["path"], "openapi.path")
    for key in _HELM_FIELDS:
        if raw.get(key) is not None:
            _helm(refs, key, raw[key])
    if refs.helm and not refs.chart_homes:
        # kustomize's default chart home: "charts" beside the kustomization.
        refs.chart_homes.append(posixpath.join(directory, "charts") if directory else "charts")
    for key in _PLUGIN_FIELDS:
        for item in _strings(raw.get(key), key, file):
            if _is_inline(item):
                for config in load_yaml_any(item.encode("utf-8"), file=file):
                    refs.plugin_configs.append((key, config))
            else:
                refs.plugin_paths.append((key, refs.path(item, key)))
    for key, config in refs.plugin_configs:
        _merge_plugin(refs, vet_plugin_config(config, field=key, directory=directory, file=file, policy=policy))
    return refs.done()


def _merge_plugin(refs: _Refs, plugin: References) -> None:
    refs.files += plugin.files
    refs.chart_homes += plugin.chart_homes
    refs.helm = refs.helm or plugin.helm
    refs.plugins = refs.plugins or plugin.plugins


def vet_plugin_config(config: Any, *, field: str, directory: str, file: str,
                      policy: Policy = Policy()) -> References:
    """Check one generator/transformer/validator config (from ``file``, for the kustomization in ``directory``).

    A kustomize built-in (``apiVersion: builtin``) runs in-process: its paths are checked like the
    kustomization's own. Anything else names a program — an exec or Go plugin, or a KRM function
    (``config.kubernetes.io/function``) — and is refused unless plugins are allowed; the built-in
    HelmChartInflationGenerator runs helm and is refused unless helm is allowed.
    """
    if not isinstance(config, Mapping):
        raise KustomizeError(f"{field}: a plugin config must be a mapping, not {type(config).__name__}", file=file)
    refs = _Refs(directory, file, policy)
    kind = config.get("kind")
    metadata = config.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    what = f"{config.get('apiVersion')}/{kind} {name!r}"
    function = next((key for key in FUNCTION_ANNOTATIONS
                     if isinstance(annotations, Mapping) and key in annotations), None)
    if function is not None:
        if not policy.allow_plugins:
            raise UnsupportedFeatureError(f"{field}: {what} is a KRM function ({function}); {_PLUGIN_HINT}",
                                          feature=field, file=file)
        refs.plugins = True
        return refs.done()
    if config.get("apiVersion") != _BUILTIN_API_VERSION or kind not in _BUILTIN_KINDS:
        if not policy.allow_plugins:
            raise UnsupportedFeatureError(f"{field}: {what} is not a kustomize built-in but an external plugin; "
                                          f"{_PLUGIN_HINT}", feature=field, file=file)
        refs.plugins = True
        return refs.done()
    if kind == "HelmChartInflationGenerator":
        _helm(refs, f"{field} HelmChartInflationGenerator", config, feature=field)
    elif kind in {"ConfigMapGenerator", "SecretGenerator"}:
        _generator_sources(refs, config, f"{field} {kind}")
    elif kind in {"PatchTransformer", "PatchJson6902Transformer"}:
        if config.get("path") is not None:
            refs.file_path(config["path"], f"{field} {kind}.path")
    elif kind == "PatchStrategicMergeTransformer":
        for path in _strings(config.get("paths"), f"{field} {kind}.paths", file):
            refs.file_path(path, f"{field} {kind}.paths")
    elif kind == "ReplacementTransformer":
        for entry in _mappings(config.get("replacements"), f"{field} {kind}.replacements", file):
            if entry.get("path") is not None:
                refs.file_path(entry["path"], f"{field} {kind}.replacements.path")
    return refs.done()


# -- the walk -----------------------------------------------------------------------------------------

class _Walk:
    def __init__(self, fs: repofs.RepoFS, policy: Policy) -> None:
        self.fs = fs
        self.policy = policy
        self.files: dict[str, bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.total = 0
        self.kustomizations: set[str] = set()
        self.helm = False
        self.plugins = False

    def read(self, path: str, referrer: str) -> bytes:
        if path in self.files:
            return self.files[path]
        if not self.fs.is_file(path):  # raises RepoPathError for a symlink out of the repository
            raise KustomizeError(f"{path!r} does not exist or is not a file", file=referrer)
        # The same blob reached by several paths (symlinks, identical files) is read from Git once.
        blob = None if isinstance(self.fs, repofs.DirectoryFS) else self.fs.tree_id(path)
        data = self.blobs.get(blob) if blob is not None else None
        if data is None:
            data = self.fs.read_bytes(path)
            if blob is not None:
                self.blobs[blob] = data
        if len(data) > self.policy.max_file_bytes:
            raise KustomizeError(f"{path} is {len(data)} bytes, over the {self.policy.max_file_bytes}-byte limit",
                                 file=referrer)
        self.total += len(data)
        if self.total > self.policy.max_total_bytes or len(self.files) >= self.policy.max_files:
            raise KustomizeError(f"the build reads more than {self.policy.max_files} files or "
                                 f"{self.policy.max_total_bytes} bytes; refused", file=referrer)
        self.files[path] = data
        return data

    def directory(self, directory: str, *, referrer: str, depth: int) -> None:
        if directory in self.kustomizations:
            return
        if depth > self.policy.max_depth:
            raise KustomizeError(f"kustomizations nest more than {self.policy.max_depth} deep at {directory!r} "
                                 "(a cycle through a symlink?)", file=referrer)
        if len(self.kustomizations) >= self.policy.max_kustomizations:
            raise KustomizeError(f"the build reaches more than {self.policy.max_kustomizations} kustomizations; "
                                 "refused", file=referrer)
        self.kustomizations.add(directory)
        file = find_kustomization_file(self.fs, directory, referrer=referrer)
        raw = load_yaml_mapping(self.read(file, referrer), file=file)
        self.kustomization(raw, directory=directory, file=file, depth=depth)

    def kustomization(self, raw: Mapping[str, Any], *, directory: str, file: str, depth: int) -> None:
        refs = vet_kustomization(raw, directory=directory, file=file, policy=self.policy)
        self.helm = self.helm or refs.helm
        self.plugins = self.plugins or refs.plugins
        for path in refs.resources:
            if self.fs.is_dir(path):
                self.directory(path, referrer=file, depth=depth + 1)
            elif self.fs.is_file(path):
                if self.policy.restrict and directory and not path.startswith(directory + "/"):
                    raise RepoPathError(f"resources: {path!r} is outside the kustomization directory "
                                        "(load restrictor RootOnly)", file=file)
                self.read(path, file)
            else:
                raise KustomizeError(f"resource {path!r} does not exist (no such file or directory)", file=file)
        for path in refs.components:
            if not self.fs.is_dir(path):
                raise KustomizeError(f"component {path!r} does not exist", file=file)
            self.directory(path, referrer=file, depth=depth + 1)
        for path in refs.files:
            self.read(path, file)
        for field, path in refs.plugin_paths:
            self.plugin_file(field, path, directory=directory, file=file)
        for home in refs.chart_homes:
            if self.fs.is_dir(home):
                self.whole(home, referrer=file, ancestors=())

    def plugin_file(self, field: str, path: str, *, directory: str, file: str) -> None:
        if self.fs.is_dir(path):
            # A kustomization whose output is plugin configs: what it outputs cannot be known before it
            # is built, so only a hub that runs plugins anyway accepts it.
            if not self.policy.allow_plugins:
                raise UnsupportedFeatureError(f"{field}: {path!r} is a kustomization directory of plugin configs; "
                                              f"{_PLUGIN_HINT}", feature=field, file=file)
            self.plugins = True
            self.directory(path, referrer=file, depth=0)
            return
        if self.policy.restrict and directory and not path.startswith(directory + "/"):
            raise RepoPathError(f"{field}: {path!r} is outside the kustomization directory "
                                "(load restrictor RootOnly)", file=file)
        for config in load_yaml_any(self.read(path, file), file=path):
            refs = vet_plugin_config(config, field=field, directory=directory, file=path, policy=self.policy)
            self.helm = self.helm or refs.helm
            self.plugins = self.plugins or refs.plugins
            for needed in refs.files:
                self.read(needed, path)
            for home in refs.chart_homes:
                if self.fs.is_dir(home):
                    self.whole(home, referrer=path, ancestors=())

    def whole(self, directory: str, *, referrer: str, ancestors: tuple[str, ...]) -> None:
        """Every file under ``directory`` (a helm chart home), within the budget."""
        if len(ancestors) > self.policy.max_depth:
            raise KustomizeError(f"{directory!r} nests more than {self.policy.max_depth} deep "
                                 "(a cycle through a symlink?)", file=referrer)
        for name in self.fs.list_dir(directory):
            if name == ".git":
                continue
            child = f"{directory}/{name}" if directory else name
            if self.fs.is_dir(child):
                self.whole(child, referrer=referrer, ancestors=(*ancestors, directory))
            else:
                self.read(child, referrer)


def vet_tree(fs: repofs.RepoFS, *, directory: str | None = None,
             synthetic: Mapping[str, Any] | None = None, policy: Policy = Policy()) -> VettedTree:
    """Vet the kustomization in ``directory``, or ``synthetic`` (one at the repository root, never on disk).

    Walks every kustomization the build reaches (resources, bases, components, plugin configs) and
    collects the content of every file it may read. Raises a :class:`~hub.tree.errors.RenderError`
    naming the file and the field for the first problem.
    """
    walk = _Walk(fs, policy)
    if synthetic is not None:
        walk.kustomization(synthetic, directory="", file="<layers>", depth=0)
    else:
        walk.directory(repofs.normalize(directory or ""), referrer=directory or ".", depth=0)
    return VettedTree(files=walk.files, helm=walk.helm, plugins=walk.plugins)

