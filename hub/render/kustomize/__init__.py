"""The kustomize engine: a native, in-process build of kustomize's common subset, with an external fallback.

Public API: :func:`build` (one kustomization directory), :func:`build_layers`
(a synthetic kustomization at the repository root: an app base plus overlay
components plus a namespace — how the fleet pipeline composes a cluster's app),
:class:`BuildOptions`, :class:`BuildResult`, :func:`load_yaml_documents`.

Native subset: ``resources`` (files and kustomization directories; ``bases``),
``components``, ``namespace``, ``namePrefix``/``nameSuffix`` with name references
fixed, ``labels`` and ``commonLabels``, ``commonAnnotations``, ``images``
(``imageTags``, ``tagSuffix``), ``replicas``, ``patches`` / ``patchesStrategicMerge`` /
``patchesJson6902`` with target selectors (JSON 6902 as JSON or a YAML list; name and
kind changes when a patch's options allow them),
``configMapGenerator`` / ``secretGenerator`` (kustomize's hash suffix; create/merge/replace)
and ``generatorOptions``, ``replacements``, ``sortOptions`` (the top
kustomization's, as kustomize reads it), ``vars`` and ``configurations``. Anything else
(``helmCharts``, ``openapi``, ``crds``, plugin ``generators``/``transformers``/
``validators``, ``buildMetadata``)
goes to the external tool, and :class:`BuildResult` says which feature in which
file forced it (only when :class:`BuildOptions` allows it: every kustomization
of the tree is vetted first, and the tool runs sandboxed). Remote resources are
refused, never fetched, on both paths; helm and plugins run only when the hub's
operator allowed them. Where kustomize accepts what a cluster will refuse (a
generated ConfigMap key with a space), the build succeeds as kustomize's does and
:attr:`BuildResult.warnings` says so. Deliberate differences from kustomize: an
empty kustomization is an empty layer (kustomize refuses it), timestamps in
manifests stay strings, and an annotation's null or float value is written as
``""`` or Python's float text (kustomize keeps its YAML spelling: ``~``, ``1.50``);
a var that reads a null field gets "" (kustomize: however the null was spelled).

Modules, in build order:

* ``kustomization`` — find and parse a kustomization file; the native subset and what is outside it
* ``loading`` — safe YAML (CSafeLoader, alias-bomb cap)
* ``resources`` — a resource and its id history; field specs and how they are walked
* ``generating`` — ConfigMap/Secret generators and kustomize's hash suffix
* ``patching`` — strategic-merge and JSON 6902 patches, target selectors
* ``merging`` — kustomize's own strategic merge walk (kyaml merge2), element order included
* ``transforming`` — namespace, prefix/suffix, labels, annotations, images, replicas
* ``replacing`` — ``replacements``: copying a field of one object into fields of others
* ``configurations`` — the field specs each transformer uses: kustomize's defaults plus ``configurations`` files
* ``namerefs`` — fixing references to renamed objects
* ``variables`` — ``vars``: matching, merging and ``$(VAR)`` substitution at the end of a build
* ``ordering`` — kustomize's legacy output order
* ``building`` — the accumulate/transform pipeline tying the above together
* ``vetting`` — may a tree go to the external tool: every kustomization's paths, sizes, helm, plugins
* ``sandboxing`` — the external tool's copy of the files, environment, network and limits
* ``external`` — ``kustomize build`` / ``kubectl kustomize`` on the vetted files, sandboxed
* ``tables`` — kustomize's built-in field specs, verbatim

The result equals ``kubectl kustomize`` (v5.5) output as parsed YAML, same
objects in the same order; ``tests/integration/test_kustomize_oracle.py`` checks
it live on the corpus in ``tests/testdata/kustomize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.render.kustomize import external, sandboxing, vetting
from hub.render.kustomize.building import Builder
from hub.render.kustomize.kustomization import Kustomization, NeedsExternal
from hub.tree import repofs
from hub.tree.errors import KustomizeError, UnsupportedFeatureError
from hub.tree.loading import load_yaml_documents

__all__ = ["BuildOptions", "BuildResult", "build", "build_layers", "load_yaml_documents"]


@dataclass(frozen=True)
class BuildOptions:
    """How to build."""

    #: Hand kustomizations that use features outside the native subset to kustomize/kubectl (vetted and
    #: sandboxed: see ``external``). Off by default; the pipeline turns it on for a fleet whose fleet.yaml
    #: says ``render: {external: allow}``.
    allow_external: bool = False
    #: Let an external build run helm (helmCharts, helmChartInflationGenerator). The hub's operator's
    #: choice (hub setting ``allow_helm``), never the commit's; helm still gets no network.
    allow_helm: bool = False
    #: Let an external build run exec/Go plugins and KRM functions (hub setting ``allow_plugins``).
    allow_plugins: bool = False
    #: The external tool; default ``kustomize build`` if on PATH, else ``kubectl kustomize``.
    external_command: tuple[str, ...] | None = None
    #: kustomize's default load restrictor: files (not bases) must be inside their kustomization's directory.
    load_restrictor_root_only: bool = True
    #: Largest file a build reads (YAML, patches, generator sources); refused before it is read.
    max_yaml_bytes: int = 8 * 1024 * 1024
    #: Time, memory and output bounds of one external build.
    external_limits: sandboxing.Limits = field(default_factory=sandboxing.Limits)
    #: Most objects one build may make (None: no bound); checked as they accumulate.
    max_bundle_objects: int | None = 10_000
    #: Bytes one build may read in all (None: no bound); files already parsed (cached) cost nothing.
    max_build_bytes: int | None = 64 * 1024 * 1024


@dataclass(frozen=True)
class BuildResult:
    """The objects of a build, in kustomize's output order, and which engine made them."""

    objects: list[dict[str, Any]]
    engine: Literal["native", "external"]
    #: Why the external tool was used, e.g. ``"helmCharts in apps/x/kustomization.yaml"``.
    external_reason: str | None = None
    #: What the native build accepted, as kustomize does, although a cluster will refuse it (one line each,
    #: naming the file); empty for external builds.
    warnings: tuple[str, ...] = ()


def _fallback(fs: repofs.RepoFS, need: NeedsExternal, options: BuildOptions, *, directory: str,
              synthetic: dict[str, Any] | None) -> BuildResult:
    reason = f"{need.feature} in {need.file}"
    if not options.allow_external:
        raise UnsupportedFeatureError(
            f"{need.feature} is outside the native kustomize subset and external builds are not allowed "
            "(a fleet allows them with render: {external: allow} in fleet.yaml)",
            feature=need.feature, file=need.file)
    command = options.external_command or external.default_command()
    if command is None:
        raise UnsupportedFeatureError(
            f"{need.feature} is outside the native kustomize subset and neither kustomize nor kubectl is on PATH",
            feature=need.feature, file=need.file)
    policy = vetting.Policy(allow_helm=options.allow_helm, allow_plugins=options.allow_plugins,
                            restrict=options.load_restrictor_root_only, max_file_bytes=options.max_yaml_bytes)
    objects = external.run_external(fs, command, directory=directory, synthetic=synthetic, policy=policy,
                                    limits=options.external_limits)
    return BuildResult(objects=objects, engine="external", external_reason=reason)


def build(fs: repofs.RepoFS, path: str, *, options: BuildOptions = BuildOptions()) -> BuildResult:
    """Build the kustomization directory ``path`` (repository-relative) of ``fs``."""
    directory = repofs.normalize(path)
    builder = Builder(fs, restrict=options.load_restrictor_root_only, max_yaml_bytes=options.max_yaml_bytes,
                      max_objects=options.max_bundle_objects, max_read_bytes=options.max_build_bytes)
    try:
        objects = builder.build_directory(directory)
        return BuildResult(objects=objects, engine="native", warnings=tuple(builder.warnings))
    except NeedsExternal as need:
        return _fallback(fs, need, options, directory=directory, synthetic=None)
    except RecursionError as exc:
        raise KustomizeError("kustomizations nest too deeply", file=directory or ".") from exc


def build_layers(fs: repofs.RepoFS, *, resources: Sequence[str], components: Sequence[str] = (),
                 namespace: str | None = None, options: BuildOptions = BuildOptions()) -> BuildResult:
    """Build a synthetic kustomization at the repository root.

    ``resources`` (usually the app's base directory), ``components`` (the overlay
    Components in order, then the per-cluster layer) and ``namespace``: the same
    result as writing that kustomization to disk and running ``kubectl kustomize`` on it.
    """
    k = Kustomization(directory="", file="<layers>", resources=list(resources), components=list(components),
                      namespace=namespace or "")
    builder = Builder(fs, restrict=options.load_restrictor_root_only, max_yaml_bytes=options.max_yaml_bytes,
                      max_objects=options.max_bundle_objects, max_read_bytes=options.max_build_bytes)
    try:
        objects = builder.build_kustomization(k)
        return BuildResult(objects=objects, engine="native", warnings=tuple(builder.warnings))
    except NeedsExternal as need:
        synthetic: dict[str, Any] = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                                     "resources": list(resources)}
        if components:
            synthetic["components"] = list(components)
        if namespace:
            synthetic["namespace"] = namespace
        return _fallback(fs, need, options, directory="", synthetic=synthetic)
    except RecursionError as exc:
        raise KustomizeError("kustomizations nest too deeply", file="<layers>") from exc
