"""The staged apply of a whole bundle: ``apply_bundle``.

Reads top to bottom: plan (``ordering.plan``: CRDs and Namespaces of the whole bundle first, then
each app in ``dependsOn`` order with its cluster-scoped then namespaced objects) → for each step,
wait until the apps it depends on are healthy → for each stage, read the live objects of its kinds
and apply them in parallel (``applying``) → after the first step, wait until CRDs are
Established and namespaces exist. Pruning (``pruning.prune_all``) and health are separate verbs the
agent calls after this one.

Every object of the bundle ends up with exactly one ``ChangeSetEntry``; a failure never stops the
objects after it. Objects are stamped with ``convoy.dev/cluster=<name>`` (and the managed-by label)
before anything else, and namespaced objects without a namespace get their app's namespace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from protos import ignoring
from protos.objects import ObjectRef
from protos.status import Action, HealthStatus
from spoke.apply import applying, ordering, waiting
from spoke.apply.changeset import ChangeSet, ChangeSetEntry
from spoke.cluster import ClusterClient
from spoke.inventory import Inventory, InventoryEntry, manifest_hash

__all__ = ["ApplyResult", "EngineOptions", "apply_bundle", "prepare"]

@dataclasses.dataclass(frozen=True, kw_only=True)
class EngineOptions:
    cluster: str                         #: stamped on every object; selects what is watched and pruned
    manager: str = "convoy"              #: SSA field manager
    workers: int = 8                     #: parallel requests within one stage
    establish_timeout: float = 60.0      #: wait for CRDs Established / namespaces to exist
    dependency_timeout: float = 300.0    #: wait for the apps a step depends on to be healthy


@dataclasses.dataclass(frozen=True, slots=True)
class Desired:
    """One object as the spoke applies it (stamped, namespaced), with what it needs to be handled later."""

    ref: ObjectRef
    api_version: str
    app: str
    manifest: dict[str, Any]
    hash: str
    #: the app's ignoreDifferences rules that match this object: fields neither drift nor applied over
    ignore: tuple[ignoring.Rule, ...] = ()


@dataclasses.dataclass
class ApplyResult:
    changeset: ChangeSet
    desired: dict[ObjectRef, Desired]
    live: dict[ObjectRef, dict[str, Any]]
    inventory: list[InventoryEntry]
    errors: list[str]


def prepare(bundle: Mapping[str, Any], *, cluster: str) -> tuple[list[ordering.AppStep], dict[ObjectRef, Desired]]:
    """The plan with every manifest stamped and namespaced, plus the desired objects by identity."""
    namespaces = {str(a.get("name")): str(a.get("namespace") or "") for a in bundle.get("apps") or []}
    rules, _problems = ignoring.rules_by_app(bundle)  # the agent reports the problems
    steps: list[ordering.AppStep] = []
    desired: dict[ObjectRef, Desired] = {}
    for step in ordering.plan(bundle):
        stages = []
        for stage, objs in step.stages:
            prepared = []
            for obj in objs:
                out = applying.stamp(obj, cluster=cluster)
                app = str(out["metadata"]["labels"].get("convoy.dev/app", step.app))
                if stage == ordering.Stage.NAMESPACED and not out["metadata"].get("namespace"):
                    out["metadata"]["namespace"] = namespaces.get(app) or "default"
                ref = ObjectRef.of(out)
                desired[ref] = Desired(ref=ref, api_version=str(out.get("apiVersion", "")), app=app,
                                       manifest=out, hash=manifest_hash(out),
                                       ignore=tuple(r for r in rules.get(app, ()) if r.matches(out)))
                prepared.append(out)
            stages.append((stage, tuple(prepared)))
        steps.append(ordering.AppStep(step.app, step.depends_on, tuple(stages)))
    return steps, desired


def apply_bundle(client: ClusterClient, bundle: Mapping[str, Any], *, previous: Inventory | None,
                 options: EngineOptions) -> ApplyResult:
    """Apply every object of ``bundle`` in stages; see the module docstring."""
    steps, desired = prepare(bundle, cluster=options.cluster)
    before = previous.entries if previous is not None else {}
    previous_hashes = {ref: entry.hash for ref, entry in before.items()}
    apply_options = applying.ApplyOptions(cluster=options.cluster, manager=options.manager,
                                          workers=options.workers)
    changes = ChangeSet()
    live_after: dict[ObjectRef, dict[str, Any]] = {}
    inventory: dict[ObjectRef, InventoryEntry] = {}
    errors: list[str] = []
    app_refs: dict[str, dict[ObjectRef, str]] = {}

    for step in steps:
        blocked = _blocked_by(client, step, app_refs, options)
        for _stage, objs in step.stages:
            refs = [ObjectRef.of(o) for o in objs]
            for ref in refs:
                app_refs.setdefault(desired[ref].app, {})[ref] = desired[ref].api_version
            if blocked:
                for ref in refs:
                    changes.add(ChangeSetEntry(ref, Action.WAITING, blocked, desired[ref].app))
                    if ref in before:
                        inventory[ref] = before[ref]
                continue
            live = waiting.read_live(client, {(desired[r].api_version, r.kind) for r in refs},
                                     cluster=options.cluster)
            results = applying.apply_all(client, objs, live=live, hashes={r: desired[r].hash for r in refs},
                                         previous=previous_hashes, options=apply_options,
                                         ignore={r: desired[r].ignore for r in refs if desired[r].ignore})
            for ref, applied in zip(refs, results, strict=True):
                changes.add(applied.entry)
                if applied.live is not None:
                    live_after[ref] = applied.live
                d = desired[ref]
                if applied.entry.action == Action.FAILED:
                    errors.append(str(applied.entry))
                    if ref in before:
                        inventory[ref] = before[ref]  # keep ownership; the old hash makes it retry
                elif applied.entry.action == Action.SKIPPED and applied.live is None:
                    if ref in before:
                        inventory[ref] = before[ref]
                else:
                    inventory[ref] = InventoryEntry(ref=ref, api_version=d.api_version, app=d.app, hash=d.hash)
        if step.app == ordering.PRELUDE:
            touched = {e.ref for e in changes if e.action in (Action.CREATED, Action.CONFIGURED)}
            errors.extend(_wait_prelude(client, step, touched, options))
    return ApplyResult(changeset=changes, desired=desired, live=live_after, inventory=list(inventory.values()),
                       errors=errors)


def _wait_prelude(client: ClusterClient, step: ordering.AppStep, touched: set[ObjectRef],
                  options: EngineOptions) -> list[str]:
    """Wait for the CRDs and namespaces this run created or changed (unchanged ones are already there)."""
    refs = [ObjectRef.of(o) for o in step.objects()]
    crds = [r for r in refs if r.kind == "CustomResourceDefinition" and r in touched]
    names = [r.name for r in refs if r.kind == "Namespace" and r in touched]
    problems = []
    for ref, why in waiting.wait_established(client, crds, timeout=options.establish_timeout).items():
        problems.append(f"{ref}: not Established after {options.establish_timeout:.0f}s: {why}")
    for name, why in waiting.wait_namespaces(client, names, timeout=options.establish_timeout).items():
        problems.append(f"Namespace/{name}: {why} after {options.establish_timeout:.0f}s")
    return problems


def _blocked_by(client: ClusterClient, step: ordering.AppStep, app_refs: Mapping[str, Mapping[ObjectRef, str]],
                options: EngineOptions) -> str:
    """Why ``step`` must wait (an app it depends on is not healthy in time), or "" to go ahead."""
    wanted: dict[ObjectRef, str] = {}
    for dep in step.depends_on:
        wanted.update(app_refs.get(dep, {}))
    if not wanted:
        return ""
    results = waiting.wait_healthy(client, wanted, cluster=options.cluster,
                                   timeout=options.dependency_timeout)
    bad = [(ref, r) for ref, r in sorted(results.items()) if r.status != HealthStatus.CURRENT]
    if not bad:
        return ""
    ref, result = bad[0]
    return (f"waiting for {', '.join(step.depends_on)}: {ref} is {result.status}"
            f"{': ' + result.reason if result.reason else ''}")
