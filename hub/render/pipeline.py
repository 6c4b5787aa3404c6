"""The render pipeline: a fleet repository at one revision -> one bundle per cluster.

Top to bottom, for each cluster (:meth:`Renderer.render_cluster`)::

    plan (which apps, which layers: hub.fleet.resolving)
      -> kustomize build of each app's layers   (cached by the content ids of every input read)
      -> stamp labels, default namespace        (cached per build and app)
      -> substitute ${vars}                     (cached per build and the values of the variables used)
      -> order, check, encode                   (hub.render.bundles)

Caching is what makes a 1,000-cluster fleet cheap (docs/architecture.md). A
kustomize build records every path it reads through a recording view of the
repository; the build is reused for any revision where all those paths have the
same content ids (Git object ids), so clusters that share layers share one
build, and after a commit only builds whose inputs changed run again. Each
:class:`ClusterRender` is keyed by ``inputs_key``, a hash of everything it
depends on; an unchanged key returns the previous result untouched.

Bad input never raises out of :meth:`Renderer.render_fleet`: a broken fleet.yaml
is ``FleetRender.fleet_error``, a broken app is an :class:`AppError` of the
clusters it targets (their ``bundle`` is None, the hub keeps the last good one),
and every other cluster renders.

Bundles share object dicts between clusters and with the cache: treat them as
read-only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from hub.fleet import clusters as fleet_clusters
from hub.fleet import model, resolving
from hub.render import budgets, bundles, kustomize, sealed, substitute
from hub.tree import errors, repofs
from protos import sops
from protos.objects import ObjectRef

__all__ = [
    "AppError",
    "ClusterRender",
    "FleetRender",
    "RenderLimits",
    "RenderStats",
    "Renderer",
]

_MISSING = "-"
_MIN_CACHE_ENTRIES = 256
#: What hub.render.kustomize.build_layers calls the kustomization it composes from an app's layers.
_SYNTHETIC_FILE = "<layers>"
# Bump when the pipeline's output for the same inputs changes, so stale keys never match.
_PIPELINE_VERSION = "convoy-render/1"


@dataclasses.dataclass(frozen=True, slots=True)
class RenderLimits:
    """Bounds on what a render may read and produce (hub settings of the same names; docs/security.md).

    A render over a bound fails the clusters it reaches with a :class:`~hub.tree.errors.LimitError`
    naming the bound; the others render.
    """

    max_bundle_bytes: int = 32 * 1024 * 1024   #: canonical (uncompressed) bytes of one cluster's bundle
    max_candidates_per_layers: int = 2          #: cached builds kept per layer list (this and the last revision)
    #: Largest file a build reads (manifests, patches, generator sources, cluster.yaml), by its Git header.
    max_file_bytes: int = 8 * 1024 * 1024
    max_fleet_file_bytes: int = 2 * 1024 * 1024  #: largest fleet.yaml
    max_bundle_objects: int = 10_000            #: objects in one cluster's bundle (and in any one build)
    max_build_bytes: int = 64 * 1024 * 1024     #: bytes one kustomize build reads in all
    max_render_seconds: float = 30.0            #: one cluster's render, its kustomize builds included
    max_fleet_render_seconds: float = 600.0     #: one commit's render: clusters not reached by then fail


@dataclasses.dataclass(frozen=True, slots=True)
class AppError:
    """One problem rendering one cluster. ``app`` is ``""`` for a cluster-level problem."""

    cluster: str
    app: str
    file: str | None
    message: str    #: what and where inside the app (file, object, field); cluster and app are separate

    @classmethod
    def of(cls, cluster: str, app: str, error: errors.RenderError) -> AppError:
        file = error.file
        if file == _SYNTHETIC_FILE:
            # The synthetic kustomization of an app's layers is what fleet.yaml declares.
            file = model.FLEET_FILE
        where = str(errors.RenderError(error.message, file=file, obj=error.obj))
        return cls(cluster=cluster, app=app or error.app or "", file=file, message=where)

    def __str__(self) -> str:
        prefix = f"cluster {self.cluster}: " + (f"app {self.app}: " if self.app else "")
        return prefix + self.message


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterRender:
    cluster: str
    labels: dict[str, str]
    apps: tuple[str, ...]
    bundle: dict[str, Any] | None     #: None when anything failed (the hub keeps the last good bundle)
    data: bytes | None                #: protos.bundle.encode(bundle)
    digest: str | None                #: protos.bundle.digest_of(data)
    object_count: int
    errors: tuple[AppError, ...]
    inputs_key: str                   #: hash of everything this render depended on
    #: Apps built by the external kustomize, with the feature that forced it ("web: helmCharts in ...").
    external: tuple[str, ...] = ()
    #: What the native kustomize built, as kustomize does, although a cluster will refuse it ("web: <warning>").
    build_warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclasses.dataclass(frozen=True, slots=True)
class RenderStats:
    kustomize_renders: int = 0        #: kustomize builds actually run
    kustomize_cache_hits: int = 0     #: app layer lists served from the build cache
    cluster_renders: int = 0          #: clusters assembled anew
    cluster_cache_hits: int = 0       #: clusters whose inputs_key was unchanged
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class FleetRender:
    revision: str
    fleet: model.Fleet | None
    clusters: dict[str, ClusterRender]
    fleet_error: errors.RenderError | None
    stats: RenderStats


class _RecordingFS:
    """A RepoFS that notes every path a build looked at, with the content id it saw."""

    def __init__(self, session: _Session) -> None:
        self._session = session
        self.deps: dict[tuple[str, str], str] = {}

    @property
    def revision(self) -> str:
        return self._session.fs.revision

    def _note(self, op: str, path: str) -> None:
        self.deps[(op, path)] = self._session.probe(op, path)

    def read_bytes(self, path: str, *, max_bytes: int | None = None) -> bytes:
        self._note("id", path)
        return self._session.fs.read_bytes(path, max_bytes=max_bytes)

    def is_dir(self, path: str) -> bool:
        self._note("dir", path)
        return self._session.fs.is_dir(path)

    def is_file(self, path: str) -> bool:
        self._note("file", path)
        return self._session.fs.is_file(path)

    def list_dir(self, path: str) -> list[str]:
        self._note("list", path)
        return self._session.fs.list_dir(path)

    def tree_id(self, path: str) -> str:
        self._note("id", path)
        return self._session.fs.tree_id(path)


@dataclasses.dataclass(eq=False)
class _Build:
    """One kustomize build of one layer list, valid wherever its ``deps`` still hold."""

    deps: dict[tuple[str, str], str]
    fingerprint: str
    objects: list[dict[str, Any]] | None
    error: errors.RenderError | None
    external_reason: str | None
    warnings: tuple[str, ...]
    crd_scopes: dict[tuple[str, str], bool]
    custom_kinds: frozenset[tuple[str, str]]     #: kinds not in the built-in cluster-scoped table
    prepared: dict[tuple[str, str | None, frozenset[tuple[str, str]]], _Prepared]


@dataclasses.dataclass(eq=False)
class _Prepared:
    """A build's objects stamped for one app, with the per-object bits substitution needs."""

    items: list[bundles.Item]
    needs_vars: list[bool]            #: per item: has a ``${`` somewhere (it may be substituted)
    variables: tuple[str, ...]        #: every variable referenced, sorted
    substituted: dict[tuple[str | None, ...], list[bundles.Item] | errors.RenderError]


class _Session:
    """One pass over one revision: memoises content-id probes and validated builds."""

    def __init__(self, fs: repofs.RepoFS) -> None:
        self.fs = fs
        self._probes: dict[tuple[str, str], str] = {}
        self.builds: dict[tuple[tuple[str, ...], bool], _Build] = {}
        self.selections: resolving.SelectionMemo | None = None
        self.renders = 0
        self.hits = 0

    def probe(self, op: str, path: str) -> str:
        key = (op, path)
        value = self._probes.get(key)
        if value is None:
            value = self._compute(op, path)
            self._probes[key] = value
        return value

    def _compute(self, op: str, path: str) -> str:
        try:
            if op == "id":
                return self.fs.tree_id(path)
            if op == "dir":
                return str(self.fs.is_dir(path))
            if op == "file":
                return str(self.fs.is_file(path))
            return "\0".join(self.fs.list_dir(path))
        except errors.RenderError as exc:
            return f"{_MISSING}{type(exc).__name__}"

    def still_valid(self, deps: Mapping[tuple[str, str], str]) -> bool:
        return all(self.probe(op, path) == value for (op, path), value in deps.items())


def _hash(*parts: object) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode("utf-8", "surrogateescape"))
        digest.update(b"\x1f")
    return digest.hexdigest()


class Renderer:
    """Renders clusters and fleets, keeping an in-process cache across revisions.

    Thread-safe (one render at a time). ``renders_done`` counts kustomize builds
    actually run since creation; tests use it to prove sharing and incrementality.

    Each fleet.yaml decides whether its kustomizations may go to the external kustomize
    (``render.external``; ``build_options.allow_external`` is replaced by it); whether helm and
    plugins may run is the hub's own ``build_options.allow_helm``/``allow_plugins``.
    """

    def __init__(self, *, limits: RenderLimits = RenderLimits(),
                 build_options: kustomize.BuildOptions = kustomize.BuildOptions()) -> None:
        self.limits = limits
        # The limits are the one place bounds are set: they win over the build options' own.
        self.build_options = dataclasses.replace(build_options, max_yaml_bytes=limits.max_file_bytes,
                                                 max_bundle_objects=limits.max_bundle_objects,
                                                 max_build_bytes=limits.max_build_bytes)
        self.renders_done = 0
        self.cluster_renders_done = 0
        self._lock = threading.Lock()
        # Both caches are LRU-ordered dicts (a use moves an entry to the end) bounded by what one
        # fleet render needs, twice over, so the previous revision's results survive one more commit.
        self._builds: dict[tuple[tuple[str, ...], bool], list[_Build]] = {}
        self._clusters: dict[str, ClusterRender] = {}
        self._peak_clusters = 0
        self._peak_builds = 0
        self._fleets: dict[str, model.Fleet | errors.RenderError] = {}

    # -- public API -----------------------------------------------------------------------------------

    def render_cluster(self, fs: repofs.RepoFS, fleet: model.Fleet,
                       cluster: fleet_clusters.ClusterInfo) -> ClusterRender:
        with self._lock:
            result = self._render_cluster(_Session(fs), fleet, cluster)
            self._evict()
            return result

    def render_fleet(self, fs: repofs.RepoFS,
                     clusters: Sequence[fleet_clusters.ClusterInfo]) -> FleetRender:
        """Every cluster in ``clusters`` at ``fs``'s revision. Never raises for bad input."""
        started = time.perf_counter()
        with self._lock:
            session = _Session(fs)
            builds_before, clusters_before = self.renders_done, self.cluster_renders_done
            try:
                fleet = self._load_fleet(session)
            except errors.RenderError as exc:
                return FleetRender(revision=fs.revision, fleet=None, clusters={}, fleet_error=exc,
                                   stats=RenderStats(seconds=time.perf_counter() - started))
            results: dict[str, ClusterRender] = {}
            interned: dict[str, bytes] = {}
            # Each cluster has its own deadline; this one bounds the commit, so many hostile layers
            # (one per cluster) cannot add up to hours and hold back every later commit.
            fleet_deadline = started + self.limits.max_fleet_render_seconds
            for cluster in clusters:
                if time.perf_counter() > fleet_deadline:
                    results[cluster.name] = self._failed(cluster, dict(cluster.labels), (), [AppError.of(
                        cluster.name, "", errors.LimitError(
                            f"not rendered: this commit's render took longer than "
                            f"{self.limits.max_fleet_render_seconds:g} s", setting="max_fleet_render_seconds"))],
                        _hash("fleet-deadline", cluster.name))
                    continue
                result = self._render_cluster(session, fleet, cluster)
                if result.data is not None and result.digest is not None:
                    # Clusters with equal bundles hold one copy of the bytes.
                    data = interned.setdefault(result.digest, result.data)
                    if data is not result.data:
                        result = dataclasses.replace(result, data=data)
                results[cluster.name] = result
            self._peak_clusters = max(self._peak_clusters, len(clusters))
            self._peak_builds = max(self._peak_builds, len(session.builds))
            self._evict()
            cluster_renders = self.cluster_renders_done - clusters_before
            stats = RenderStats(
                kustomize_renders=self.renders_done - builds_before, kustomize_cache_hits=session.hits,
                cluster_renders=cluster_renders, cluster_cache_hits=len(clusters) - cluster_renders,
                seconds=time.perf_counter() - started)
            return FleetRender(revision=fs.revision, fleet=fleet, clusters=results, fleet_error=None,
                               stats=stats)

    # -- steps ----------------------------------------------------------------------------------------

    def _load_fleet(self, session: _Session) -> model.Fleet:
        key = session.probe("id", model.FLEET_FILE)
        cached = self._fleets.get(key)
        if cached is None:
            try:
                cached = model.load_fleet(session.fs, max_bytes=self.limits.max_fleet_file_bytes)
            except errors.RenderError as exc:
                cached = exc
            self._fleets = {key: cached}  # one revision's worth is all a fleet needs
        if isinstance(cached, errors.RenderError):
            raise cached
        return cached

    def _build(self, session: _Session, plan: resolving.AppPlan, *, external: bool) -> _Build:
        # fleet.yaml's render.external is an input of the build: the same layers build differently.
        key = (plan.layers, external)
        build = session.builds.get(key)
        if build is not None:
            session.hits += 1
            return build
        candidates = self._builds.setdefault(key, [])
        for candidate in candidates:
            if session.still_valid(candidate.deps):
                build = candidate
                session.hits += 1
                break
        if build is None:
            build = self._run_build(session, plan, external=external)
            # A build cut short by the deadline depends on the machine's speed, not only on its inputs:
            # this render's other clusters share the failure, a later commit tries again.
            if not (isinstance(build.error, errors.LimitError) and build.error.setting == "max_render_seconds"):
                candidates.insert(0, build)
                del candidates[self.limits.max_candidates_per_layers:]
        self._builds[key] = self._builds.pop(key)  # most recently used last
        session.builds[key] = build
        return build

    def _run_build(self, session: _Session, plan: resolving.AppPlan, *, external: bool) -> _Build:
        recorder = _RecordingFS(session)
        objects: list[dict[str, Any]] | None = None
        error: errors.RenderError | None = None
        external_reason: str | None = None
        warnings: tuple[str, ...] = ()
        try:
            options = dataclasses.replace(self.build_options, allow_external=external)
            result = kustomize.build_layers(recorder, resources=[plan.app.path], components=plan.components,
                                            namespace=None, options=options)
            objects = result.objects
            if any(sops.is_sealed(o) for o in objects):
                # Name each sealed object's file in the bundle, so a spoke that cannot open it can say which.
                objects = sealed.with_sources(objects, session.fs, [path for op, path in recorder.deps if op == "id"])
            external_reason = result.external_reason if result.engine == "external" else None
            warnings = result.warnings
        except errors.RenderError as exc:
            error = exc
        except Exception as exc:  # a bug must cost one app on some clusters, not the whole fleet
            error = errors.KustomizeError(f"unexpected {type(exc).__name__} while building (a bug in Convoy; "
                                          f"please report it): {exc}", file=plan.app.path)
        self.renders_done += 1
        session.renders += 1
        scopes = bundles.crd_scopes(objects or ())
        custom = frozenset(
            (ref.group, ref.kind) for ref in (ObjectRef.of(obj) for obj in objects or ())
            if (ref.group, ref.kind) not in bundles.BUILTIN_CLUSTER_SCOPED)
        fingerprint = _hash(sorted(recorder.deps.items()), external)
        return _Build(deps=recorder.deps, fingerprint=fingerprint, objects=objects, error=error,
                      external_reason=external_reason, warnings=warnings,
                      crd_scopes=scopes, custom_kinds=custom, prepared={})

    def _prepare(self, build: _Build, app: model.App, cluster_scoped: frozenset[tuple[str, str]],
                 source: str) -> _Prepared:
        key = (app.name, app.namespace, cluster_scoped)
        prepared = build.prepared.get(key)
        if prepared is not None:
            return prepared
        scopes = dict.fromkeys(cluster_scoped, True)
        items: list[bundles.Item] = []
        needs: list[bool] = []
        for obj in build.objects or ():
            ref = ObjectRef.of(obj)
            stamped = bundles.stamp(obj, app=app.name, namespace=app.namespace,
                                    cluster_scoped=bundles.is_cluster_scoped(ref.group, ref.kind, scopes))
            item = bundles.make_item(stamped, app=app.name, source=source, custom=scopes)
            items.append(item)
            needs.append(b"${" in item.data)
        variables = substitute.referenced_variables(item.obj for item, need in zip(items, needs, strict=True)
                                                    if need)
        prepared = _Prepared(items=items, needs_vars=needs, variables=tuple(sorted(variables)), substituted={})
        build.prepared[key] = prepared
        return prepared

    def _substitute(self, prepared: _Prepared, variables: Mapping[str, str], *, cluster: str,
                    app: str, scopes: Mapping[tuple[str, str], bool],
                    budget: substitute.Budget | None = None) -> list[bundles.Item]:
        if not prepared.variables and not any(prepared.needs_vars):
            return prepared.items
        key = tuple(variables.get(name) for name in prepared.variables)
        cached = prepared.substituted.get(key)
        if cached is None:
            try:
                cached = [
                    bundles.make_item(substitute.substitute_object(item.obj, variables, cluster=cluster, app=app,
                                                                   budget=budget),
                                      app=app, source=item.source, custom=scopes) if need else item
                    for item, need in zip(prepared.items, prepared.needs_vars, strict=True)]
            except substitute.SubstitutionError as exc:
                cached = exc
            # (A LimitError is not cached: the budget is the cluster's, shared with its other apps.)
            prepared.substituted[key] = cached
        if isinstance(cached, errors.RenderError):
            if cached.cluster != cluster:
                # The same values fail the same way on another cluster; name this one.
                raise substitute.SubstitutionError(cached.message, variable=getattr(cached, "variable", ""),
                                                   field=getattr(cached, "field", ""), cluster=cluster,
                                                   app=app, obj=cached.obj)
            raise cached
        return cached

    def _render_cluster(self, session: _Session, fleet: model.Fleet,
                        cluster: fleet_clusters.ClusterInfo) -> ClusterRender:
        # One deadline per cluster, for the builds it runs (a build shared from the cache costs nothing).
        with budgets.applied(self.limits.max_render_seconds):
            try:
                return self._render_cluster_within(session, fleet, cluster)
            except Exception as exc:  # a bug or an unforeseen input costs this cluster, never the fleet
                error = errors.RenderError(f"unexpected {type(exc).__name__} while rendering (a bug in Convoy; "
                                           f"please report it): {exc}")
                return self._failed(cluster, dict(cluster.labels), (), [AppError.of(cluster.name, "", error)],
                                    _hash("crashed", cluster.name, error.message))

    def _render_cluster_within(self, session: _Session, fleet: model.Fleet,
                               cluster: fleet_clusters.ClusterInfo) -> ClusterRender:
        labels = dict(cluster.labels)
        if cluster.config_error is not None:
            return self._failed(cluster, labels, (), [AppError.of(cluster.name, "", cluster.config_error)],
                                _hash("config-error", cluster.name, str(cluster.config_error)))
        if not model.NAME_RE.fullmatch(cluster.name):
            return self._failed(cluster, labels, (), [AppError(
                cluster=cluster.name, app="", file=None,
                message=f"{cluster.name!r} is not a valid cluster name (lowercase letters, digits, '-')")],
                _hash("bad-name", cluster.name))
        if session.selections is None or session.selections.fleet is not fleet:
            session.selections = resolving.SelectionMemo(fleet)
        try:
            plans = resolving.plan_cluster(session.fs, fleet, name=cluster.name, labels=labels,
                                           memo=session.selections)
        except errors.RenderError as exc:
            return self._failed(cluster, labels, (), [AppError.of(cluster.name, "", exc)],
                                _hash("plan-error", cluster.name, str(exc)))
        app_names = tuple(plan.app.name for plan in plans)
        problems: list[AppError] = []
        built: list[tuple[resolving.AppPlan, _Build]] = []
        for plan in plans:
            missing = [dep for dep in plan.app.depends_on if dep not in app_names]
            if missing:
                problems.append(AppError(cluster=cluster.name, app=plan.app.name, file=model.FLEET_FILE,
                                         message=f"depends on {', '.join(missing)}, which does not target this "
                                                 "cluster"))
            build = self._build(session, plan, external=fleet.render.external is model.ExternalBuilds.ALLOW)
            if build.error is not None:
                problems.append(AppError.of(cluster.name, plan.app.name, build.error))
            built.append((plan, build))
        scopes: dict[tuple[str, str], bool] = {}
        for _, build in built:
            scopes.update(build.crd_scopes)
        cluster_scoped_custom = frozenset(kind for kind, is_cluster in scopes.items() if is_cluster)
        relevant = [build.custom_kinds & cluster_scoped_custom for _, build in built]
        inputs_key = _hash(
            _PIPELINE_VERSION, cluster.name, sorted(labels.items()), sorted(cluster.vars.items()),
            self.limits.max_bundle_bytes, self.limits.max_bundle_objects,
            [(plan.app.name, plan.app.namespace, plan.app.depends_on, plan.app.drift_policy, plan.layers,
              plan.app.ignore_entries(cluster.name, labels), build.fingerprint, sorted(kinds))
             for (plan, build), kinds in zip(built, relevant, strict=True)])
        cached = self._clusters.pop(inputs_key, None)
        if cached is not None:
            self._clusters[inputs_key] = cached  # most recently used last
            return cached
        self.cluster_renders_done += 1
        count = sum(len(build.objects or ()) for _, build in built)
        if not problems and count > self.limits.max_bundle_objects:
            # Each build is bounded on its own; this bounds their sum (and external builds' output).
            problems.append(AppError.of(cluster.name, "", errors.LimitError(
                f"the bundle has {count} objects, more than {self.limits.max_bundle_objects}",
                setting="max_bundle_objects")))
        if problems:
            return self._remember(self._failed(cluster, labels, app_names, problems, inputs_key))
        variables = substitute.cluster_variables(cluster.name, labels, cluster.vars)
        budget = substitute.Budget(self.limits.max_bundle_bytes)
        items: list[list[bundles.Item]] = []
        for (plan, build), kinds in zip(built, relevant, strict=True):
            source = " + ".join(plan.layers)
            prepared = self._prepare(build, plan.app, kinds, source)
            try:
                items.append(self._substitute(prepared, variables, cluster=cluster.name, app=plan.app.name,
                                              scopes=dict.fromkeys(kinds, True), budget=budget))
            except errors.RenderError as exc:
                problems.append(AppError.of(cluster.name, plan.app.name, exc))
        if problems:
            return self._remember(self._failed(cluster, labels, app_names, problems, inputs_key))
        headers = [bundles.app_header(name=plan.app.name, namespace=plan.app.namespace,
                                      depends_on=plan.app.depends_on,
                                      drift_policy=plan.app.drift_policy.value if plan.app.drift_policy else None,
                                      ignore_differences=plan.app.ignore_entries(cluster.name, labels))
                   for plan, _ in built]
        try:
            assembled = bundles.assemble(headers, items, cluster=cluster.name,
                                         max_bytes=self.limits.max_bundle_bytes)
        except errors.RenderError as exc:
            return self._remember(self._failed(cluster, labels, app_names,
                                               [AppError.of(cluster.name, exc.app or "", exc)], inputs_key))
        return self._remember(ClusterRender(
            cluster=cluster.name, labels=labels, apps=app_names, bundle=assembled.bundle, data=assembled.data,
            digest=assembled.digest, object_count=len(assembled.bundle["objects"]), errors=(),
            inputs_key=inputs_key,
            external=tuple(f"{plan.app.name}: {build.external_reason}" for plan, build in built
                           if build.external_reason),
            build_warnings=tuple(f"{plan.app.name}: {warning}" for plan, build in built
                                 for warning in build.warnings)))

    # -- bookkeeping ----------------------------------------------------------------------------------

    @staticmethod
    def _failed(cluster: fleet_clusters.ClusterInfo, labels: dict[str, str], apps: tuple[str, ...],
                problems: Sequence[AppError], inputs_key: str) -> ClusterRender:
        return ClusterRender(cluster=cluster.name, labels=labels, apps=apps, bundle=None, data=None, digest=None,
                             object_count=0, errors=tuple(problems), inputs_key=inputs_key)

    def _remember(self, result: ClusterRender) -> ClusterRender:
        self._clusters[result.inputs_key] = result
        return result

    def _evict(self) -> None:
        """Drop the least recently used entries beyond twice what the largest fleet render needed."""
        _trim(self._clusters, max(2 * self._peak_clusters, _MIN_CACHE_ENTRIES))
        _trim(self._builds, max(2 * self._peak_builds, _MIN_CACHE_ENTRIES))


def _trim(cache: dict[Any, Any], size: int) -> None:
    """Keep the last ``size`` entries of an LRU-ordered dict."""
    for key in list(itertools.islice(cache, max(0, len(cache) - size))):
        del cache[key]
