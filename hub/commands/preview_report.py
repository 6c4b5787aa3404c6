"""The fleet-wide report of ``convoy preview --format markdown|json``: what a pull request does to the fleet.

Pure: it takes the two fleet renders and returns a :class:`Report`, which :func:`to_markdown` turns into a
comment-sized summary (at most :data:`MAX_MARKDOWN_CHARS`, GitHub's comment limit) and :func:`to_document`
into plain data. Clusters whose changes are identical (same objects, same field diffs) form one group, and a
pair of bundles is diffed once however many clusters share it (clusters with equal bundles have equal digests).

Secret values never reach the report: the field diffs of a ``Secret``'s ``data``/``stringData`` read
:data:`REDACTED` on both sides, and a SOPS-sealed object's ciphertext and ``sops`` metadata are summed up as
"sealed value changed". Created and deleted objects are named, never printed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hub.fleet import model
from hub.render import pipeline
from protos import sops
from protos.objects import ObjectRef

__all__ = [
    "FAIL_ON",
    "MAX_MARKDOWN_CHARS",
    "REDACTED",
    "ClusterChange",
    "FieldChange",
    "ObjectChange",
    "Report",
    "build_report",
    "cluster_change",
    "field_changes",
    "policy_failures",
    "to_document",
    "to_markdown",
]

REDACTED = "<redacted>"
SEALED = "sealed value changed"
ABSENT = "(absent)"
#: GitHub refuses a pull-request comment longer than this.
MAX_MARKDOWN_CHARS = 65_536
MAX_VALUE_CHARS = 80
MAX_FIELDS_PER_OBJECT = 20
MAX_OBJECTS_PER_GROUP = 50
MAX_NAMES = 5
MAX_TABLE_ROWS = 50
#: A change group longer than this many lines is folded into ``<details>``.
FOLD_LINES = 12
NO_ENV = "(no env)"
NO_REGION = "(no region)"
#: What ``--fail-on`` accepts, and what each policy fails on.
FAIL_ON: dict[str, str] = {
    "changes": "any cluster's bundle changes (new and removed clusters included)",
    "deletions": "an object is deleted from a cluster that stays in the fleet",
    "render-errors": "a cluster fails to render at the head revision",
    "secrets": "a Secret is created, changed or deleted",
    "cluster-removals": "a cluster is removed from the fleet",
}

_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


@dataclasses.dataclass(frozen=True, slots=True)
class FieldChange:
    path: str   #: ``spec.template.spec.containers[0].image``
    old: str    #: compact JSON (truncated), :data:`ABSENT` or :data:`REDACTED`
    new: str


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectChange:
    ref: str                             #: ``Kind/namespace/name`` as ObjectRef prints it
    action: str                          #: created | changed | deleted
    secret: bool                         #: a Secret (sealed or not)
    fields: tuple[FieldChange, ...] = ()  #: for ``changed`` only


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterChange:
    """What one cluster's bundle change is; equal values collapse into one group."""

    status: str                          #: changed | new | removed
    apps_changed: bool
    objects: tuple[ObjectChange, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterEntry:
    cluster: str
    status: str                          #: unchanged | changed | new | removed | error
    env: str
    region: str
    base_digest: str | None
    head_digest: str | None
    error: str
    change: ClusterChange | None
    wave: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WaveEntry:
    name: str
    clusters: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Report:
    base: str
    head: str
    clusters: tuple[ClusterEntry, ...]   #: every cluster at either revision, by name
    groups: tuple[tuple[ClusterChange, tuple[str, ...]], ...]   #: largest group first
    strategy: bool                        #: fleet.yaml has a rollout strategy for this change
    waves: tuple[WaveEntry, ...]          #: in rollout order; only clusters this change moves
    unwaved: tuple[str, ...]              #: new clusters: they take their bundle on registration

    def with_status(self, *statuses: str) -> list[ClusterEntry]:
        return [entry for entry in self.clusters if entry.status in statuses]

    @property
    def affected(self) -> list[ClusterEntry]:
        return [entry for entry in self.clusters if entry.status != "unchanged"]


# -- diffing ------------------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def _key(path: str, key: Any) -> str:
    key = str(key)
    step = key if _PLAIN_KEY_RE.fullmatch(key) else json.dumps(key, ensure_ascii=False).join("[]")
    if not path:
        return step
    return f"{path}{step}" if step.startswith("[") else f"{path}.{step}"


_MISSING = object()


def _walk(old: Any, new: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _walk(old.get(key, _MISSING), new.get(key, _MISSING), _key(path, key), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            _walk(old[index] if index < len(old) else _MISSING, new[index] if index < len(new) else _MISSING,
                  f"{path}[{index}]", out)
        return
    out.append((path, old, new))


def _is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" or sops.is_sealed(obj)


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The leaves that differ between two versions of one object, values redacted where secret."""
    raw: list[tuple[str, Any, Any]] = []
    _walk(old, new, "", raw)
    secret, sealed = _is_secret(old) or _is_secret(new), sops.is_sealed(old) or sops.is_sealed(new)
    changes: list[FieldChange] = []
    sealed_noted = False
    for path, before, after in raw:
        top = re.split(r"[.\[]", path, maxsplit=1)[0]
        if sealed and top in ("data", "stringData", "sops"):
            # The ciphertext and the SOPS metadata change together; one line says so.
            if not sealed_noted:
                changes.append(FieldChange(top if top != "sops" else "data", SEALED, SEALED))
                sealed_noted = True
            continue
        if secret and top in ("data", "stringData"):
            changes.append(FieldChange(path, ABSENT if before is _MISSING else REDACTED,
                                       ABSENT if after is _MISSING else REDACTED))
            continue
        changes.append(FieldChange(path, ABSENT if before is _MISSING else _value(before),
                                   ABSENT if after is _MISSING else _value(after)))
    return tuple(changes)


def _objects(bundle: Mapping[str, Any] | None) -> dict[ObjectRef, Mapping[str, Any]]:
    return {ObjectRef.of(obj): obj for obj in (bundle or {}).get("objects") or []}


def _differing(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> tuple[list[Any], list[Any]]:
    """The objects of each side that are not equal to the other side's object at the same position.

    Bundles keep a stable order, so a change usually leaves most positions equal; only the rest need
    their identities worked out (the costly part at a thousand clusters).
    """
    old, new = list((base or {}).get("objects") or []), list((head or {}).get("objects") or [])
    if len(old) != len(new):
        return old, new
    pairs = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    return [a for a, _ in pairs], [b for _, b in pairs]


def cluster_change(status: str, base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> ClusterChange:
    old_objects, new_objects = _differing(base, head)
    before, after = _objects({"objects": old_objects}), _objects({"objects": new_objects})
    objects: list[ObjectChange] = []
    for ref in sorted(set(before) | set(after)):
        old, new = before.get(ref), after.get(ref)
        if old is None and new is not None:
            objects.append(ObjectChange(str(ref), "created", _is_secret(new)))
        elif new is None and old is not None:
            objects.append(ObjectChange(str(ref), "deleted", _is_secret(old)))
        elif old is not None and new is not None and old != new:
            objects.append(ObjectChange(str(ref), "changed", _is_secret(old) or _is_secret(new),
                                        field_changes(old, new)))
    return ClusterChange(status, (base or {}).get("apps") != (head or {}).get("apps"), tuple(objects))


# -- the report ---------------------------------------------------------------------------------------------


def _strategy(fleet: model.Fleet | None, touched: Callable[[], set[str]]) -> model.RolloutSpec | None:
    """The rollout strategy the hub would use (hub.rollout.controller: the first touched app's override)."""
    if fleet is None:
        return None
    if not any(app.rollout is not None for app in fleet.apps):
        return fleet.rollout
    apps = touched()
    for app in fleet.apps:  # dependsOn order
        if app.name in apps and (spec := fleet.rollout_for(app.name)) is not None:
            return spec
    return None


def build_report(base: pipeline.FleetRender, head: pipeline.FleetRender, *, base_name: str,
                 head_name: str) -> Report:
    """Every cluster's change between ``base`` and ``head``, grouped, with the rollout's waves."""
    cache: dict[tuple[str | None, str | None, str], ClusterChange] = {}
    entries: list[ClusterEntry] = []
    for name in sorted({*base.clusters, *head.clusters}):
        before, after = base.clusters.get(name), head.clusters.get(name)
        current = after if after is not None else before
        labels = current.labels if current is not None else {}
        env, region = labels.get("env") or NO_ENV, labels.get("region") or NO_REGION
        base_digest = before.digest if before is not None else None
        if after is not None and after.errors:
            entries.append(ClusterEntry(name, "error", env, region, base_digest, None,
                                        "; ".join(str(error) for error in after.errors), None))
            continue
        head_digest = after.digest if after is not None else None
        if after is None:
            status = "removed"
        elif before is None:
            status = "new"
        else:
            status = "unchanged" if base_digest == head_digest else "changed"
        change = None
        if status != "unchanged":
            key = (base_digest, head_digest, status)
            if key not in cache:
                cache[key] = cluster_change(status, before.bundle if before else None,
                                            after.bundle if after else None)
            change = cache[key]
        entries.append(ClusterEntry(name, status, env, region, base_digest, head_digest, "", change))

    def touched() -> set[str]:
        # Only when apps override the strategy; the controller module brings the database layer with it.
        from hub.rollout.controller import changed_apps

        apps: set[str] = set()
        pairs = {(base.clusters[e.cluster].digest, e.head_digest): e.cluster for e in entries if e.status == "changed"}
        for cluster in pairs.values():
            apps |= changed_apps(base.clusters[cluster].bundle, head.clusters[cluster].bundle)
        return apps

    spec = _strategy(head.fleet, touched)
    waves: dict[str, list[str]] = {}
    if spec is not None:
        order = [wave.name for wave in spec.waves] + [spec.IMPLICIT_WAVE]
        waves = {wave: [] for wave in order}
        for index, entry in enumerate(entries):
            if entry.status == "changed":
                wave = spec.wave_of(head.clusters[entry.cluster].labels).name
                waves[wave].append(entry.cluster)
                entries[index] = dataclasses.replace(entry, wave=wave)
    grouped: dict[ClusterChange, list[str]] = {}
    for entry in entries:
        if entry.change is not None:
            grouped.setdefault(entry.change, []).append(entry.cluster)
    groups = sorted(grouped.items(), key=lambda item: (-len(item[1]), item[1][0]))
    return Report(base=base_name, head=head_name, clusters=tuple(entries),
                  groups=tuple((change, tuple(names)) for change, names in groups), strategy=spec is not None,
                  waves=tuple(WaveEntry(name, tuple(names)) for name, names in waves.items() if names),
                  unwaved=tuple(e.cluster for e in entries if e.status == "new") if spec is not None else ())


def policy_failures(report: Report, fail_on: Iterable[str]) -> list[str]:
    """One line per ``--fail-on`` policy the report breaks, naming what broke it."""
    lines = []
    for policy in sorted(set(fail_on)):
        hits: list[str] = []
        what = ""
        if policy == "changes":
            hits = [e.cluster for e in report.affected if e.status != "error"]
            what = f"{len(hits)} clusters change"
        elif policy == "render-errors":
            hits = [e.cluster for e in report.with_status("error")]
            what = f"{len(hits)} clusters fail to render"
        elif policy == "cluster-removals":
            hits = [e.cluster for e in report.with_status("removed")]
            what = f"{len(hits)} clusters are removed"
        elif policy in ("deletions", "secrets"):
            count = 0
            for entry in report.affected:
                if entry.change is None or (policy == "deletions" and entry.status != "changed"):
                    continue
                found = [o for o in entry.change.objects
                         if (o.action == "deleted" if policy == "deletions" else o.secret)]
                if found:
                    hits.append(entry.cluster)
                    count += len(found)
            what = (f"{count} objects deleted in {len(hits)} clusters" if policy == "deletions"
                    else f"{count} Secret changes in {len(hits)} clusters")
        if hits:
            lines.append(f"--fail-on {policy}: {what}: {_names(hits)}")
    return lines


# -- JSON ---------------------------------------------------------------------------------------------------


def _areas(report: Report) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in report.clusters:
        row = counts.setdefault((entry.env, entry.region), {
            "env": entry.env, "region": entry.region, "clusters": 0, "changed": 0, "new": 0, "removed": 0,
            "errors": 0})
        row["clusters"] += 1
        if entry.status != "unchanged":
            row["errors" if entry.status == "error" else entry.status] += 1
    return [row for _, row in sorted(counts.items())
            if row["changed"] or row["new"] or row["removed"] or row["errors"]]


def to_document(report: Report, *, failures: Sequence[str] = (), fail_on: Iterable[str] = ()) -> dict[str, Any]:
    """The report as plain data: the keys of ``convoy preview -o json`` plus the grouped detail."""
    group_of = {name: index for index, (_, names) in enumerate(report.groups) for name in names}

    def names(status: str) -> list[str]:
        return [e.cluster for e in report.with_status(status)]

    def refs(entry: ClusterEntry, action: str) -> list[str]:
        return [o.ref for o in entry.change.objects if o.action == action] if entry.change else []

    clusters = [{
        "cluster": e.cluster, "status": e.status, "baseDigest": e.base_digest, "headDigest": e.head_digest,
        "error": e.error or None, "addedObjects": refs(e, "created"), "removedObjects": refs(e, "deleted"),
        "changedObjects": refs(e, "changed"), "appsChanged": bool(e.change and e.change.apps_changed),
        "env": e.env, "region": e.region, "wave": e.wave, "group": group_of.get(e.cluster)}
        for e in report.clusters]
    return {
        "base": report.base, "head": report.head, "changed": len(report.affected), "total": len(report.clusters),
        "clusters": clusters,
        "summary": {"clusters": len(report.clusters), "affected": len(report.affected),
                    "changed": len(names("changed")), "new": len(names("new")), "removed": len(names("removed")),
                    "renderErrors": len(names("error"))},
        "byArea": _areas(report),
        "rollout": {"strategy": report.strategy,
                    "waves": [{"name": w.name, "clusters": list(w.clusters)} for w in report.waves],
                    "onRegistration": list(report.unwaved)},
        "renderErrors": [{"cluster": e.cluster, "error": e.error} for e in report.with_status("error")],
        "changeGroups": [{
            "clusters": list(names_), "status": change.status, "appsChanged": change.apps_changed,
            "objects": [{"object": o.ref, "action": o.action, "secret": o.secret,
                         "fields": [{"path": f.path, "old": f.old, "new": f.new} for f in o.fields]}
                        for o in change.objects]}
            for change, names_ in report.groups],
        "policy": {"failOn": sorted(set(fail_on)), "failed": list(failures)},
    }


# -- Markdown -----------------------------------------------------------------------------------------------


def _names(names: Sequence[str], limit: int = MAX_NAMES) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … (+{len(names) - limit})"


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell (and outside code): one line, no pipes, no HTML."""
    text = " ".join(str(text).split())
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("`", "'"))


def _fence(body: str) -> str:
    """A fenced block longer than any backtick run inside, so a value cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}diff\n{body}\n{fence}"


_SIGN = {"created": "+", "deleted": "-", "changed": "~"}


def _group_block(change: ClusterChange, names: Sequence[str]) -> str:
    count = len(names)
    title = f"{count} cluster{'s' if count != 1 else ''} ({change.status}): {_names(names)}"
    counts = {action: sum(1 for o in change.objects if o.action == action) for action in _SIGN}
    summary = ", ".join(f"{n} {action}" for action, n in counts.items() if n) or "no object changes"
    lines: list[str] = []
    if change.apps_changed and change.status == "changed":
        lines.append("~ apps (order, namespace, dependsOn, driftPolicy or ignoreDifferences) changed")
    for obj in change.objects[:MAX_OBJECTS_PER_GROUP]:
        lines.append(f"{_SIGN[obj.action]} {obj.ref}")
        for field in obj.fields[:MAX_FIELDS_PER_OBJECT]:
            lines.append(f"    {field.path}: {field.old} → {field.new}" if field.old != SEALED
                         else f"    {field.path}: {SEALED}")
        if len(obj.fields) > MAX_FIELDS_PER_OBJECT:
            lines.append(f"    … {len(obj.fields) - MAX_FIELDS_PER_OBJECT} more fields")
    if len(change.objects) > MAX_OBJECTS_PER_GROUP:
        lines.append(f"… {len(change.objects) - MAX_OBJECTS_PER_GROUP} more objects")
    body = _fence("\n".join(lines)) if lines else "_(no object changes)_"
    heading = f"#### {_cell(title)}\n\nObjects: {summary}."
    if len(lines) > FOLD_LINES:
        return f"{heading}\n\n<details><summary>{len(lines)} lines</summary>\n\n{body}\n\n</details>"
    return f"{heading}\n\n{body}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int) -> str:
    align = ["---" if i < numeric_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[:MAX_TABLE_ROWS]]
    if len(rows) > MAX_TABLE_ROWS:
        lines.append(f"\n… {len(rows) - MAX_TABLE_ROWS} more rows (see `--format json`)")
    return "\n".join(lines)


def to_markdown(report: Report, *, failures: Sequence[str] = (), limit: int = MAX_MARKDOWN_CHARS) -> str:
    """The report as a pull-request comment of at most ``limit`` characters; the same input, the same text."""
    changed, new, removed = (len(report.with_status(s)) for s in ("changed", "new", "removed"))
    errors = report.with_status("error")
    affected = changed + new + removed
    blocks = [f"## Convoy preview: `{_cell(report.base)}` → `{_cell(report.head)}`",
              f"**{affected} of {len(report.clusters)} clusters change** ({changed} changed, {new} new, "
              f"{removed} removed); **{len(errors)} fail to render**."]
    if failures:
        blocks.append("**Policy failed:**\n" + "\n".join(f"- {_cell(line)}" for line in failures))
    areas = _areas(report)
    if areas:
        blocks.append("### By environment and region\n\nAffected clusters grouped by their `env` and `region` "
                      f"labels (a cluster without one counts under \"{NO_ENV}\" or \"{NO_REGION}\"); areas "
                      "without a change are left out.\n\n" + _table(
                          ["env", "region", "changed", "new", "removed", "render errors", "clusters"],
                          [[_cell(a["env"]), _cell(a["region"]), *(str(a[k]) for k in
                            ("changed", "new", "removed", "errors", "clusters"))] for a in areas], numeric_from=2))
    if changed or new:
        if not report.strategy:
            rollout = "fleet.yaml has no rollout strategy for this change: every changed cluster moves at once."
        else:
            rollout = ("Waves of the rollout strategy, in order; only the clusters this change moves.\n\n"
                       + _table(["#", "wave", "clusters", "names"],
                                [[str(i), _cell(w.name), str(len(w.clusters)), _cell(_names(w.clusters, 10))]
                                 for i, w in enumerate(report.waves, start=1)], numeric_from=99))
            if report.unwaved:
                rollout += (f"\n\nNew clusters take their bundle when they register, outside the waves: "
                            f"{_cell(_names(report.unwaved, 10))}.")
        blocks.append("### Rollout\n\n" + rollout)
    if errors:
        blocks.append("### Render errors\n\n" + _table(
            ["cluster", "error"], [[e.cluster, _cell(e.error)[:500]] for e in errors], numeric_from=99))
    tail: list[str] = []
    if report.groups:
        tail.append("### Changes\n\nClusters with identical changes are one group. `+` created, `-` deleted, "
                    f"`~` changed (path: old → new); Secret values read `{REDACTED}`.")
        tail += [_group_block(change, names) for change, names in report.groups]
    return _fit(blocks, tail, limit, len(report.groups))


def _fit(head: list[str], tail: list[str], limit: int, groups: int) -> str:
    """``head`` then as many ``tail`` blocks as fit in ``limit`` characters, with a note when some do not."""
    note_room = 300
    out: list[str] = []
    size = 0
    for block in head:
        if size + len(block) + 2 > limit - note_room:
            break
        out.append(block)
        size += len(block) + 2
    left = len(head) - len(out)
    for index, block in enumerate(tail):
        if left or size + len(block) + 2 > limit - note_room:
            left += len(tail) - index
            break
        out.append(block)
        size += len(block) + 2
    if left:
        shown = sum(1 for block in out if block.startswith("#### "))
        out.append(f"_Truncated to fit a {limit:,}-character comment: {groups - shown} of {groups} change groups "
                   "(or sections) not shown; `convoy preview --format json` has everything._")
    return "\n\n".join(out) + "\n"
