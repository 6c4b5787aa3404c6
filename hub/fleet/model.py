"""The fleet.yaml model: apps, their targets and layers, and the rollout strategy.

``load_fleet(fs)`` reads ``fleet.yaml`` at the root of the fleet repository and
returns a frozen :class:`Fleet`, or raises :class:`FleetConfigError` naming the
file and the field (``fleet.yaml: apps[1].overlays[0].path: ...``). Unknown
fields are errors, so a typo never silently drops configuration. The format is
documented in docs/fleet-config.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hub.tree import errors, repofs
from hub.tree.loading import load_yaml_documents
from protos import bundle, ignoring, selectors, sops
from protos.status import DriftPolicy

__all__ = [
    "FLEET_FILE",
    "App",
    "Approval",
    "EmptyWave",
    "ExternalBuilds",
    "Fleet",
    "FleetConfigError",
    "IgnoreDifferences",
    "MaxUnavailable",
    "MinReady",
    "OnFailure",
    "Overlay",
    "PlaintextSecrets",
    "RenderPolicy",
    "RolloutSpec",
    "SecretsPolicy",
    "Wave",
    "load_fleet",
    "parse_duration",
    "parse_fleet",
    "path_matches",
]

FLEET_FILE = "fleet.yaml"
KIND = "Fleet"

# DNS-1123 label: what Kubernetes accepts as a name, and safe as a path segment.
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_TEMPLATE_FIELD_RE = re.compile(r"\{([^{}]*)\}")
_TEMPLATE_FIELDS = frozenset({"cluster", "app"})
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class FleetConfigError(errors.RenderError):
    """fleet.yaml is invalid; the message names the field and what is wrong."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message, file=FLEET_FILE)


class OnFailure(enum.StrEnum):
    """What a rollout does when a wave fails."""

    PAUSE = "pause"        #: stop releasing further waves; clusters already moved keep the new bundle
    ROLLBACK = "rollback"  #: stop, and give every cluster already moved its previous bundle back


class ExternalBuilds(enum.StrEnum):
    """Whether kustomizations outside the native subset may be built by an external kustomize."""

    DENY = "deny"    #: refused: the cluster's app fails with an error naming the feature and the file
    ALLOW = "allow"  #: built by kustomize/kubectl in a sandbox (no network, no files outside the commit)


@dataclasses.dataclass(frozen=True, slots=True)
class RenderPolicy:
    """fleet.yaml ``render:``: how the fleet's kustomizations may be built."""

    external: ExternalBuilds = ExternalBuilds.DENY


class PlaintextSecrets(enum.StrEnum):
    """What a plaintext Secret in the fleet repository is."""

    WARN = "warn"               #: a warning from ``convoy validate`` (an error under --strict)
    SEALED_ONLY = "sealedOnly"  #: a render error for each cluster it would reach, and in ``convoy validate``


@dataclasses.dataclass(frozen=True, slots=True)
class SecretsPolicy:
    """fleet.yaml ``secrets:``: whether plaintext Secrets are allowed, and the operators' age recipients.

    ``convoy seal`` adds the operator recipients to every file it writes, so an operator can re-seal
    (``--refresh``) when clusters join; no cluster key is needed for that.
    """

    policy: PlaintextSecrets = PlaintextSecrets.WARN
    operators: tuple[str, ...] = ()

    @property
    def sealed_only(self) -> bool:
        return self.policy is PlaintextSecrets.SEALED_ONLY


@dataclasses.dataclass(frozen=True, slots=True)
class MaxUnavailable:
    """How many clusters of a wave may be not Ready at the new bundle: a count or a percentage."""

    count: int | None = None
    percent: int | None = None

    def allowed(self, wave_size: int) -> int:
        """Clusters allowed to be unavailable in a wave of ``wave_size`` (percentages round down)."""
        if self.percent is not None:
            return wave_size * self.percent // 100
        return self.count or 0

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count or 0)


class EmptyWave(enum.StrEnum):
    """What a rollout does with a wave none of whose clusters is present (all pinned, not registered,
    deregistered; or offline until the progress deadline)."""

    STOP = "stop"  #: stop the rollout (state failed, nothing rolled back); resume retries, promote skips it
    SKIP = "skip"  #: skip the wave (recorded in history) and release the next one


@dataclasses.dataclass(frozen=True, slots=True)
class MinReady:
    """How many clusters of a wave must be Ready at the new bundle (through the bake time) for it to pass.

    A count (at least 1; a wave with fewer clusters needs all of them) or a percentage of the wave
    (rounded up, at least 1). Unset: every present cluster the wave's maxUnavailable does not excuse,
    and at least one.
    """

    count: int | None = None
    percent: int | None = None

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count or 1)


@dataclasses.dataclass(frozen=True, slots=True)
class Approval:
    """A wave's ``approval:`` gate: the rollout waits before releasing the wave until an admin approves.

    ``paths`` (globs relative to the repository root; ``*`` stays within one path segment, ``**`` crosses
    them): approval is needed only when the rollout's commit range changes a matching path. ``approvers``:
    the names of the admin credentials that may approve (empty: any admin credential).
    """

    paths: tuple[str, ...] = ()
    approvers: tuple[str, ...] = ()

    def matching(self, changed: Iterable[str] | None) -> tuple[str, ...] | None:
        """The changed paths that make approval necessary; None: needed whatever changed (no ``paths``,
        or the changed paths are unknown). An empty tuple: not needed."""
        if not self.paths or changed is None:
            return None
        return tuple(sorted(p for p in set(changed) if any(path_matches(g, p) for g in self.paths)))


_GLOB_TOKEN_RE = re.compile(r"\*\*/|\*\*|\*|\?|[^*?]+")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for token in _GLOB_TOKEN_RE.findall(pattern):
        if token == "**/":
            parts.append(r"(?:.*/)?")   # zero or more whole directories
        elif token == "**":
            parts.append(r".*")
        elif token == "*":
            parts.append(r"[^/]*")
        elif token == "?":
            parts.append(r"[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


def path_matches(pattern: str, path: str) -> bool:
    """Whether repo-relative ``path`` matches the glob ``pattern`` (``apps/web/**``, ``*.yaml``, ``fleet.yaml``).

    ``*`` and ``?`` match within one path segment, ``**`` across segments; a pattern naming a directory
    (``apps/web``) matches every file under it too.
    """
    regex = _glob_regex(pattern.rstrip("/"))
    segments = path.split("/")
    return any(regex.fullmatch("/".join(segments[:n])) for n in range(len(segments), 0, -1))


@dataclasses.dataclass(frozen=True, slots=True)
class Wave:
    """One step of a rollout: the clusters its selector matches (and not an earlier wave's)."""

    name: str
    selector: selectors.Selector
    max_unavailable: MaxUnavailable
    bake_time: dt.timedelta
    progress_deadline: dt.timedelta
    on_failure: OnFailure = OnFailure.PAUSE
    min_ready: MinReady | None = None           #: None: every present cluster maxUnavailable does not excuse
    empty_wave: EmptyWave = EmptyWave.STOP
    approval: Approval | None = None            #: None: released without approval


@dataclasses.dataclass(frozen=True, slots=True)
class RolloutSpec:
    """The progressive-rollout strategy. Waves carry their effective settings.

    A cluster in no wave belongs to a final implicit wave named ``rest`` with the
    strategy's defaults (see :meth:`wave_of`).
    """

    waves: tuple[Wave, ...]
    max_unavailable: MaxUnavailable = MaxUnavailable(count=0)
    bake_time: dt.timedelta = dt.timedelta(0)
    progress_deadline: dt.timedelta = dt.timedelta(minutes=10)
    on_failure: OnFailure = OnFailure.PAUSE
    min_ready: MinReady | None = None
    empty_wave: EmptyWave = EmptyWave.STOP

    IMPLICIT_WAVE = "rest"

    def implicit_wave(self) -> Wave:
        return Wave(self.IMPLICIT_WAVE, selectors.EVERYTHING, self.max_unavailable, self.bake_time,
                    self.progress_deadline, self.on_failure, self.min_ready, self.empty_wave)

    def wave_of(self, labels: Mapping[str, str]) -> Wave:
        """The first wave whose selector matches ``labels``, else the implicit last wave."""
        for wave in self.waves:
            if wave.selector.matches(labels):
                return wave
        return self.implicit_wave()


@dataclasses.dataclass(frozen=True, slots=True)
class Overlay:
    """A kustomize Component applied to the clusters its selector matches."""

    selector: selectors.Selector
    path: str


@dataclasses.dataclass(frozen=True, slots=True)
class IgnoreDifferences:
    """An ``ignoreDifferences`` entry: fields the spoke neither reports, corrects nor owns, on the clusters
    its ``selector`` (labels) and ``clusters`` (names) pick; both unset: every cluster of the app."""

    rule: ignoring.Rule
    selector: selectors.Selector = selectors.EVERYTHING
    clusters: tuple[str, ...] = ()

    def applies_to(self, cluster: str, labels: Mapping[str, str]) -> bool:
        return self.selector.matches(labels) and (not self.clusters or cluster in self.clusters)


@dataclasses.dataclass(frozen=True, slots=True)
class App:
    name: str
    path: str                                   #: kustomize base directory, repo-relative
    namespace: str | None = None                #: given to namespaced objects that have none
    targets: selectors.Selector = selectors.EVERYTHING
    overlays: tuple[Overlay, ...] = ()          #: applied in this order, after the base
    depends_on: tuple[str, ...] = ()
    cluster_layer: str | None = None            #: template such as ``clusters/{cluster}/{app}``
    drift_policy: DriftPolicy | None = None     #: None: the spoke's default (correct)
    rollout: RolloutSpec | None = None          #: this app's strategy when it overrides the fleet's
    ignore_differences: tuple[IgnoreDifferences, ...] = ()

    def ignore_entries(self, cluster: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """The bundle form of the ``ignoreDifferences`` entries that apply to ``cluster``."""
        return [entry.rule.to_entry() for entry in self.ignore_differences if entry.applies_to(cluster, labels)]

    def cluster_layer_path(self, cluster: str) -> str | None:
        if self.cluster_layer is None:
            return None
        return self.cluster_layer.format(cluster=cluster, app=self.name)


@dataclasses.dataclass(frozen=True, slots=True)
class Fleet:
    """fleet.yaml, validated. ``apps`` are in dependsOn order (declared order among equals)."""

    apps: tuple[App, ...]
    rollout: RolloutSpec | None = None
    render: RenderPolicy = RenderPolicy()
    secrets: SecretsPolicy = SecretsPolicy()

    def app(self, name: str) -> App:
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)

    def rollout_for(self, app: str) -> RolloutSpec | None:
        """The strategy that governs ``app``: its own override, else the fleet's."""
        return self.app(app).rollout or self.rollout


def parse_duration(value: Any, *, field: str) -> dt.timedelta:
    """``"30s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` (Go duration syntax, non-negative) or a number of seconds."""
    if isinstance(value, bool):
        raise FleetConfigError(f"{value!r} is not a duration (use e.g. \"30s\", \"5m\")", field=field)
    if isinstance(value, int | float):
        if value < 0:
            raise FleetConfigError(f"{value!r} is negative", field=field)
        return _timedelta(value, value, field)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return dt.timedelta(0)
        position, seconds = 0, 0.0
        for match in _DURATION_RE.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            position = match.end()
        if text and position == len(text):
            return _timedelta(seconds, value, field)
    raise FleetConfigError(f"{value!r} is not a duration (use e.g. \"30s\", \"5m\", \"1h30m\")", field=field)


#: Longest duration accepted (timedelta's own bound is about 2.7 million years; a rollout needs far less).
MAX_DURATION = dt.timedelta(days=3650)


def _timedelta(seconds: float, value: Any, field: str) -> dt.timedelta:
    # NaN, infinity and huge numbers are valid YAML floats but no duration (timedelta raises for them).
    if math.isnan(seconds) or seconds > MAX_DURATION.total_seconds():  # NaN compares false: test it first
        raise FleetConfigError(f"{value!r} is longer than {MAX_DURATION.days} days, or not a number", field=field)
    return dt.timedelta(seconds=seconds)


class _Reader:
    """Field access with the path of every value, so each error names its field."""

    def __init__(self, data: Any, field: str, allowed: Iterable[str]) -> None:
        if not isinstance(data, Mapping):
            raise FleetConfigError(f"must be a mapping, not {type(data).__name__}", field=field or None)
        unknown = [key for key in data if key not in set(allowed)]
        if unknown:
            where = f"{field}.{unknown[0]}" if field else str(unknown[0])
            raise FleetConfigError(f"unknown field (allowed here: {', '.join(sorted(allowed))})", field=where)
        self.data = data
        self.field = field

    def at(self, key: str) -> str:
        return f"{self.field}.{key}" if self.field else key

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise FleetConfigError("is required", field=self.at(key))
            return None
        if not isinstance(value, str) or not value:
            raise FleetConfigError(f"must be a non-empty string, not {value!r}", field=self.at(key))
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise FleetConfigError("must be a list", field=self.at(key))
        return value


def _selector(data: Any, field: str) -> selectors.Selector:
    try:
        return selectors.from_mapping(data, where=field)
    except selectors.SelectorError as exc:
        raise FleetConfigError(str(exc)) from exc  # the selector message names the field


def _path(value: str, field: str) -> str:
    try:
        return repofs.normalize(value, file=FLEET_FILE)
    except errors.RenderError as exc:
        raise FleetConfigError(exc.message, field=field) from exc


def _max_unavailable(value: Any, field: str) -> MaxUnavailable:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return MaxUnavailable(count=value)
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,3})%", value.strip())
        if match and int(match.group(1)) <= 100:
            return MaxUnavailable(percent=int(match.group(1)))
        if _is_count(value.strip()):
            return MaxUnavailable(count=int(value.strip()))
    raise FleetConfigError(f"{value!r} is neither a count (2) nor a percentage (\"25%\")", field=field)


def _is_count(text: str) -> bool:
    # ASCII only: str.isdigit() is also true for '²' and other digits that int() refuses.
    return text.isascii() and text.isdigit()


def _min_ready(value: Any, field: str) -> MinReady:
    if isinstance(value, str) and _is_count(value.strip()):
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return MinReady(count=value)
        raise FleetConfigError(f"{value!r} is less than 1: a wave passes only when at least one cluster proved "
                               "the new bundle (use emptyWave: skip for waves that may have no cluster)",
                               field=field)
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,3})%", value.strip())
        if match and 1 <= int(match.group(1)) <= 100:
            return MinReady(percent=int(match.group(1)))
    raise FleetConfigError(f"{value!r} is neither a count of at least 1 (2) nor a percentage from 1% to 100% "
                           "(\"50%\")", field=field)


def _empty_wave(value: Any, field: str) -> EmptyWave:
    try:
        return EmptyWave(value)
    except ValueError:
        raise FleetConfigError(f"{value!r} is not one of stop, skip", field=field) from None


def _on_failure(value: Any, field: str) -> OnFailure:
    try:
        return OnFailure(value)
    except ValueError:
        raise FleetConfigError(f"{value!r} is not one of pause, rollback", field=field) from None


_ROLLOUT_FIELDS = ("waves", "maxUnavailable", "bakeTime", "progressDeadline", "onFailure", "minReady", "emptyWave")
_WAVE_FIELDS = ("name", "selector", "maxUnavailable", "bakeTime", "progressDeadline", "onFailure", "minReady",
                "emptyWave", "approval")
_APPROVAL_FIELDS = ("required", "paths", "approvers")


def _approval(value: Any, field: str) -> Approval | None:
    """``approval: required`` | ``none`` | ``{required: true, paths: [...], approvers: [...]}``."""
    if value == "required":
        return Approval()
    if value == "none":
        return None
    if not isinstance(value, Mapping):
        raise FleetConfigError(f"{value!r} is not one of required, none, or a mapping "
                               "{required: true, paths: [...], approvers: [...]}", field=field)
    reader = _Reader(value, field, _APPROVAL_FIELDS)
    required = reader.get("required")
    if not isinstance(required, bool):
        raise FleetConfigError(f"must be true or false, not {required!r}", field=reader.at("required"))
    paths: list[str] = []
    for index, raw in enumerate(reader.items("paths")):
        where = f"{reader.at('paths')}[{index}]"
        if not isinstance(raw, str) or not raw.strip():
            raise FleetConfigError(f"must be a non-empty path glob such as \"apps/web/**\", not {raw!r}", field=where)
        glob = raw.strip()
        if glob.startswith("/") or ".." in glob.split("/") or "\\" in glob:
            raise FleetConfigError(f"{raw!r} must be relative to the repository root (no leading '/', no '..', "
                                   "'/' as separator)", field=where)
        paths.append(glob)
    if reader.get("paths") is not None and not paths:
        raise FleetConfigError("must list at least one path glob (omit paths to need approval for every commit)",
                               field=reader.at("paths"))
    approvers: list[str] = []
    for index, raw in enumerate(reader.items("approvers")):
        where = f"{reader.at('approvers')}[{index}]"
        if not isinstance(raw, str) or not NAME_RE.fullmatch(raw):
            raise FleetConfigError(f"{raw!r} is not an admin credential name (lowercase letters, digits, '-')",
                                   field=where)
        if raw not in approvers:
            approvers.append(raw)
    if not required:
        if paths or approvers:
            raise FleetConfigError("paths and approvers need required: true", field=reader.at("required"))
        return None
    return Approval(paths=tuple(paths), approvers=tuple(approvers))


def _rollout(data: Any, field: str, base: RolloutSpec | None) -> RolloutSpec:
    reader = _Reader(data, field, _ROLLOUT_FIELDS)
    defaults = base or RolloutSpec(waves=())
    max_unavailable = (defaults.max_unavailable if reader.get("maxUnavailable") is None
                       else _max_unavailable(reader.get("maxUnavailable"), reader.at("maxUnavailable")))
    bake_time = (defaults.bake_time if reader.get("bakeTime") is None
                 else parse_duration(reader.get("bakeTime"), field=reader.at("bakeTime")))
    deadline = (defaults.progress_deadline if reader.get("progressDeadline") is None
                else parse_duration(reader.get("progressDeadline"), field=reader.at("progressDeadline")))
    on_failure = (defaults.on_failure if reader.get("onFailure") is None
                  else _on_failure(reader.get("onFailure"), reader.at("onFailure")))
    min_ready = (defaults.min_ready if reader.get("minReady") is None
                 else _min_ready(reader.get("minReady"), reader.at("minReady")))
    empty_wave = (defaults.empty_wave if reader.get("emptyWave") is None
                  else _empty_wave(reader.get("emptyWave"), reader.at("emptyWave")))
    if reader.get("waves") is None and base is not None:
        waves = base.waves  # an app override that changes only the timings keeps the fleet's waves
    else:
        wave_list: list[Wave] = []
        for index, raw in enumerate(reader.items("waves")):
            wave = _Reader(raw, f"{reader.at('waves')}[{index}]", _WAVE_FIELDS)
            name = wave.string("name", required=True)
            assert name is not None
            if not NAME_RE.fullmatch(name):
                raise FleetConfigError(f"{name!r} is not a valid name (lowercase letters, digits, '-')",
                                       field=wave.at("name"))
            if name in {w.name for w in wave_list} or name == RolloutSpec.IMPLICIT_WAVE:
                raise FleetConfigError(f"wave {name!r} is declared twice or uses the reserved name "
                                       f"{RolloutSpec.IMPLICIT_WAVE!r}", field=wave.at("name"))
            if wave.get("selector") is None:
                raise FleetConfigError("is required (use {} to select every remaining cluster)",
                                       field=wave.at("selector"))
            wave_list.append(Wave(
                name=name,
                selector=_selector(wave.get("selector"), wave.at("selector")),
                max_unavailable=(max_unavailable if wave.get("maxUnavailable") is None
                                 else _max_unavailable(wave.get("maxUnavailable"), wave.at("maxUnavailable"))),
                bake_time=(bake_time if wave.get("bakeTime") is None
                           else parse_duration(wave.get("bakeTime"), field=wave.at("bakeTime"))),
                progress_deadline=(deadline if wave.get("progressDeadline") is None
                                   else parse_duration(wave.get("progressDeadline"),
                                                       field=wave.at("progressDeadline"))),
                on_failure=(on_failure if wave.get("onFailure") is None
                            else _on_failure(wave.get("onFailure"), wave.at("onFailure"))),
                min_ready=(min_ready if wave.get("minReady") is None
                           else _min_ready(wave.get("minReady"), wave.at("minReady"))),
                empty_wave=(empty_wave if wave.get("emptyWave") is None
                            else _empty_wave(wave.get("emptyWave"), wave.at("emptyWave"))),
                approval=(None if wave.get("approval") is None
                          else _approval(wave.get("approval"), wave.at("approval"))),
            ))
        waves = tuple(wave_list)
    return RolloutSpec(waves=waves, max_unavailable=max_unavailable, bake_time=bake_time,
                       progress_deadline=deadline, on_failure=on_failure, min_ready=min_ready,
                       empty_wave=empty_wave)


_APP_FIELDS = ("name", "path", "namespace", "targets", "overlays", "dependsOn", "clusterLayer",
               "driftPolicy", "rollout", "ignoreDifferences")
_IGNORE_FIELDS = (*ignoring.ENTRY_FIELDS, "selector", "clusters")


def _ignore_differences(reader: _Reader, app: str) -> tuple[IgnoreDifferences, ...]:
    entries = []
    for index, raw in enumerate(reader.items("ignoreDifferences")):
        entry = _Reader(raw, f"{reader.at('ignoreDifferences')}[{index}]", _IGNORE_FIELDS)
        clusters: list[str] = []
        for position, name in enumerate(entry.items("clusters")):
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                raise FleetConfigError(f"{name!r} is not a cluster name", field=f"{entry.at('clusters')}[{position}]")
            clusters.append(name)
        selector = (selectors.EVERYTHING if entry.get("selector") is None
                    else _selector(entry.get("selector"), entry.at("selector")))
        try:
            rule = ignoring.parse_rule({k: v for k, v in raw.items() if k in ignoring.ENTRY_FIELDS})
        except ignoring.IgnoreError as exc:
            raise FleetConfigError(f"app {app!r}: {exc}", field=entry.field) from None
        entries.append(IgnoreDifferences(rule=rule, selector=selector, clusters=tuple(clusters)))
    return tuple(entries)


def _app(data: Any, field: str, fleet_rollout: RolloutSpec | None) -> App:
    reader = _Reader(data, field, _APP_FIELDS)
    name = reader.string("name", required=True)
    assert name is not None
    if not NAME_RE.fullmatch(name):
        raise FleetConfigError(f"{name!r} is not a valid app name (lowercase letters, digits, '-', "
                               "at most 63 characters)", field=reader.at("name"))
    path = _path(reader.string("path", required=True) or "", reader.at("path"))
    namespace = reader.string("namespace")
    if namespace is not None and not NAME_RE.fullmatch(namespace):
        raise FleetConfigError(f"{namespace!r} is not a valid namespace name", field=reader.at("namespace"))
    overlays: list[Overlay] = []
    for index, raw in enumerate(reader.items("overlays")):
        overlay = _Reader(raw, f"{reader.at('overlays')}[{index}]", ("selector", "path"))
        overlays.append(Overlay(
            selector=_selector(overlay.get("selector"), overlay.at("selector")),
            path=_path(overlay.string("path", required=True) or "", overlay.at("path")),
        ))
    depends_on: list[str] = []
    for index, dependency in enumerate(reader.items("dependsOn")):
        if not isinstance(dependency, str):
            raise FleetConfigError("must be an app name", field=f"{reader.at('dependsOn')}[{index}]")
        if dependency not in depends_on:
            depends_on.append(dependency)
    cluster_layer = reader.string("clusterLayer")
    if cluster_layer is not None:
        placeholders = set(_TEMPLATE_FIELD_RE.findall(cluster_layer))
        example = None
        if placeholders <= _TEMPLATE_FIELDS:
            # A lone brace ("{{cluster}", "{cluster}{") passes the placeholder check but not str.format.
            with contextlib.suppress(ValueError):
                example = cluster_layer.format(cluster="c", app=name)
        if example is None or "{cluster}" not in cluster_layer:
            raise FleetConfigError(f"{cluster_layer!r} must contain {{cluster}} and may contain {{app}}; "
                                   "no other placeholders, and no other braces", field=reader.at("clusterLayer"))
        _path(example, reader.at("clusterLayer"))
    drift_policy = None
    if reader.get("driftPolicy") is not None:
        try:
            drift_policy = DriftPolicy(reader.get("driftPolicy"))
        except ValueError:
            raise FleetConfigError(f"{reader.get('driftPolicy')!r} is not one of "
                                   f"{', '.join(p.value for p in DriftPolicy)}",
                                   field=reader.at("driftPolicy")) from None
    rollout = None
    if reader.get("rollout") is not None:
        rollout = _rollout(reader.get("rollout"), reader.at("rollout"), fleet_rollout)
    return App(name=name, path=path, namespace=namespace, targets=_selector(reader.get("targets"),
               reader.at("targets")), overlays=tuple(overlays), depends_on=tuple(depends_on),
               cluster_layer=cluster_layer, drift_policy=drift_policy, rollout=rollout,
               ignore_differences=_ignore_differences(reader, name))


def _dependency_order(apps: Sequence[App]) -> tuple[App, ...]:
    """Topological order by dependsOn, declared order among apps that are free at the same time."""
    by_name = {app.name: app for app in apps}
    for index, app in enumerate(apps):
        for dependency in app.depends_on:
            if dependency not in by_name:
                raise FleetConfigError(f"unknown app {dependency!r}", field=f"apps[{index}].dependsOn")
            if dependency == app.name:
                raise FleetConfigError(f"app {app.name!r} depends on itself", field=f"apps[{index}].dependsOn")
    ordered: list[App] = []
    placed: set[str] = set()
    remaining = list(apps)
    while remaining:
        ready = next((app for app in remaining if set(app.depends_on) <= placed), None)
        if ready is None:
            raise FleetConfigError(f"dependsOn cycle: {_cycle(remaining)}")
        ordered.append(ready)
        placed.add(ready.name)
        remaining.remove(ready)
    return tuple(ordered)


def _cycle(apps: Sequence[App]) -> str:
    by_name = {app.name: app for app in apps}
    path = [apps[0].name]
    while True:
        following = next(dep for dep in by_name[path[-1]].depends_on if dep in by_name)
        if following in path:
            loop = [*path[path.index(following):], following]
            return " -> ".join(loop)
        path.append(following)


def parse_fleet(data: Any) -> Fleet:
    """Validate the parsed YAML of fleet.yaml."""
    reader = _Reader(data, "", ("apiVersion", "kind", "apps", "rollout", "render", "secrets"))
    if reader.get("apiVersion") != bundle.API_VERSION:
        raise FleetConfigError(f"must be {bundle.API_VERSION!r}, not {reader.get('apiVersion')!r}",
                               field="apiVersion")
    if reader.get("kind") != KIND:
        raise FleetConfigError(f"must be {KIND!r}, not {reader.get('kind')!r}", field="kind")
    rollout = None if reader.get("rollout") is None else _rollout(reader.get("rollout"), "rollout", None)
    apps = [_app(raw, f"apps[{index}]", rollout) for index, raw in enumerate(reader.items("apps"))]
    seen: set[str] = set()
    for index, app in enumerate(apps):
        if app.name in seen:
            raise FleetConfigError(f"app {app.name!r} is declared twice", field=f"apps[{index}].name")
        seen.add(app.name)
    render = RenderPolicy() if reader.get("render") is None else _render_policy(reader.get("render"), "render")
    secrets = _secrets_policy(reader.get("secrets"), "secrets")
    return Fleet(apps=_dependency_order(apps), rollout=rollout, render=render, secrets=secrets)


def _secrets_policy(data: Any, field: str) -> SecretsPolicy:
    if data is None:
        return SecretsPolicy()
    if isinstance(data, str):  # the shorthand ``secrets: sealedOnly``
        data = {"policy": data}
    reader = _Reader(data, field, ("policy", "operators"))
    policy = PlaintextSecrets.WARN
    if reader.get("policy") is not None:
        try:
            policy = PlaintextSecrets(reader.get("policy"))
        except ValueError:
            raise FleetConfigError(f"{reader.get('policy')!r} is not one of "
                                   f"{', '.join(p.value for p in PlaintextSecrets)}",
                                   field=reader.at("policy")) from None
    operators = []
    for index, value in enumerate(reader.items("operators")):
        where = f"{reader.at('operators')}[{index}]"
        if not isinstance(value, str):
            raise FleetConfigError("must be an age recipient (age1...)", field=where)
        try:
            sops.parse_recipient(value)
        except sops.SopsError as exc:
            raise FleetConfigError(str(exc), field=where) from None
        operators.append(value.strip())
    return SecretsPolicy(policy=policy, operators=tuple(operators))


def _render_policy(data: Any, field: str) -> RenderPolicy:
    reader = _Reader(data, field, ("external",))
    external = reader.get("external")
    if external is None:
        return RenderPolicy()
    try:
        return RenderPolicy(external=ExternalBuilds(external))
    except ValueError:
        raise FleetConfigError(f"{external!r} is not one of {', '.join(e.value for e in ExternalBuilds)}",
                               field=reader.at("external")) from None


def load_fleet(fs: repofs.RepoFS, *, max_bytes: int | None = None) -> Fleet:
    """Read and validate fleet.yaml at the root of ``fs``; a file over ``max_bytes`` is refused unread."""
    if not fs.is_file(FLEET_FILE):
        raise FleetConfigError(f"not found at the root of {fs.revision}")
    try:
        documents = load_yaml_documents(fs.read_bytes(FLEET_FILE, max_bytes=max_bytes), file=FLEET_FILE)
    except errors.LimitError as exc:
        raise errors.LimitError(exc.detail, setting="max_fleet_file_bytes", file=FLEET_FILE) from exc
    except errors.RenderError as exc:
        raise FleetConfigError(exc.message) from exc
    if len(documents) != 1:
        raise FleetConfigError(f"must hold exactly one YAML document, found {len(documents)}")
    return parse_fleet(documents[0])
