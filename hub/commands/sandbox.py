"""``convoy sandbox up``: a whole fleet on this machine, shown converging.

kubesim clusters labelled like the sample fleet, a hub on embedded SQLite with
TLS, and one spoke per cluster that registers with a bootstrap token exactly as
a real install does. Then a commit bumps an image in one group overlay and only
the matching clusters roll forward; then an object is changed behind Convoy's
back and the drift is detected and corrected -- and the walkthrough checks what it says: DRIFT 0
for that cluster, an empty diff, and history naming the object and the field (it fails otherwise).

``convoy sandbox down`` stops a sandbox from any shell: ``up`` records its work directory in a
well-known file (``$XDG_STATE_HOME/convoy/sandbox.json``) and its parts in the work directory. A
temporary work directory lives as long as the sandbox; a failed run keeps it for its logs.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

import click
import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from hub import adminclient, localfleet
from hub.commands import bundles as bundle_cmd
from hub.commands import formatting
from hub.security import signing
from protos import bundle as bundles
from protos import oci, sops
from protos.convoy.v1 import convoy_pb2 as pb

__all__ = ["Stopped", "convoy_command", "pointer_path", "sandbox"]

BUMPED_OVERLAY = "apps/web/overlays/env/prod/kustomization.yaml"
DRIFT_CLUSTER_PREFERENCE = ("prod-us-1", "staging-eu-1")
#: the field the drift step changes, as drift reports name it
DRIFT_FIELD = ".spec.replicas"
#: The sample's sealed Secret, the web base it joins, and the operator key that re-seals it (demo only).
SEALED_SECRET = "apps/web/base/db-secret.sops.yaml"
WEB_KUSTOMIZATION = "apps/web/base/kustomization.yaml"
OPERATOR_KEY = "sandbox-operator.agekey"


class Stopped(Exception):
    """A signal asked the sandbox to stop: Ctrl-C, SIGTERM (`convoy sandbox down`, a service manager), SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn the stop signals into ``Stopped``, so the parts are stopped whatever ends the sandbox
    (Python's default for SIGTERM and SIGHUP is to die on the spot and orphan every part)."""
    def raise_stopped(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, raise_stopped) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """While stopping: a second Ctrl-C or SIGTERM must not cut the cleanup short (it is bounded)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def pointer_path() -> Path:
    """The well-known file naming the running sandbox's work directory (XDG state directory)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "convoy" / "sandbox.json"


@dataclasses.dataclass(frozen=True)
class _Pointer:
    """The running sandbox, as ``up`` records it for ``down``."""

    workdir: Path
    temporary: bool  #: ``up`` made the directory, so it goes with the sandbox
    owner: localfleet.Owner  #: the ``up`` process


def _write_pointer(workdir: Path, *, temporary: bool) -> None:
    path = pointer_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_suffix(f".{os.getpid()}.tmp")
    owner = localfleet.Owner.this_process()
    scratch.write_text(json.dumps({"workdir": str(workdir.resolve()), "temporary": temporary,
                                   "pid": owner.pid, "start": owner.start}))
    scratch.replace(path)


def _read_pointer() -> _Pointer | None:
    try:
        data = json.loads(pointer_path().read_text())
        return _Pointer(workdir=Path(data["workdir"]), temporary=bool(data.get("temporary")),
                        owner=localfleet.Owner(pid=int(data.get("pid", 0)), start=data.get("start")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _clear_pointer(workdir: Path) -> None:
    """Remove the pointer if it still names ``workdir`` (a later sandbox may have taken it over)."""
    pointed = _read_pointer()
    if pointed is not None and pointed.workdir == workdir.resolve():
        pointer_path().unlink(missing_ok=True)


def convoy_command(*, found: str | None, bin_dir: Path) -> tuple[str, str | None]:
    """How the printed commands should spell ``convoy``, and a line to run first (or None).

    ``found`` is the ``convoy`` on PATH, ``bin_dir`` the directory of the running interpreter. After
    ``make demo`` the sandbox runs from ``.venv/bin`` with nothing on PATH: say how to activate it.
    """
    script = bin_dir / "convoy"
    if found and Path(found).resolve() == script.resolve():
        return "convoy", None
    activate = bin_dir / "activate"
    if activate.exists():
        return "convoy", f"source {activate}"
    if script.exists():
        return str(script), None
    return "convoy", None


def _view(statuses: dict[str, pb.ClusterSummary], title: str) -> Group:
    now = dt.datetime.now(dt.UTC)
    rows = [formatting.cluster_row(s, now=now) for s in sorted(statuses.values(), key=lambda s: s.name)]
    return Group(Text(title, style="bold"), formatting.status_table(rows, now=now),
                 Text(formatting.fleet_summary(rows)))


def _watch_until(console: Console, fleet: localfleet.LocalFleet, title: str,
                 done: Callable[[dict[str, pb.ClusterSummary]], bool], timeout: float) -> dict[str, pb.ClusterSummary]:
    deadline = time.monotonic() + timeout
    statuses = fleet.statuses()
    with Live(_view(statuses, title), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            fleet.check_alive()
            statuses = fleet.statuses()
            live.update(_view(statuses, title))
            if done(statuses):
                return statuses
            if time.monotonic() > deadline:
                raise localfleet.SandboxError(f"timed out after {timeout:.0f}s: {title}")
            time.sleep(0.5)


def _all_ready(names: set[str]) -> Callable[[dict[str, pb.ClusterSummary]], bool]:
    def check(statuses: dict[str, pb.ClusterSummary]) -> bool:
        return all(n in statuses and statuses[n].phase == pb.PHASE_READY and statuses[n].desired_digest
                   and statuses[n].applied_digest == statuses[n].desired_digest for n in names)
    return check


def _waves_line(fleet: localfleet.LocalFleet) -> str:
    """The progressive rollout the bump went through (fleet.yaml's ``rollout``), in one line."""
    with fleet.admin() as admin:
        try:
            status = admin.rollout_status()
        except adminclient.AdminError:
            return "No progressive rollout (fleet.yaml has no rollout strategy)."
    waves = " -> ".join(f"{w.name} ({', '.join(w.clusters)}) {w.state}" for w in status.waves)
    return f"Rollout {status.id}, wave by wave: {waves}."


def _fail_if_rollout_stopped(fleet: localfleet.LocalFleet, sha: str) -> None:
    """A rollout that stopped (a failed wave, or one with no cluster to prove it) ends the demo with its reason."""
    with fleet.admin() as admin:
        try:
            status = admin.rollout_status()
        except adminclient.AdminError:
            return
    if status.commit == sha and status.state in {"failed", "rolled_back", "aborted"}:
        raise localfleet.SandboxError(f"the rollout of {sha[:8]} stopped: {status.reason} "
                                      "(`convoy rollout status` shows the waves)")


def _bump_image(text: str) -> tuple[str, str, str]:
    match = re.search(r'newTag:\s*"?([\w.-]+)"?', text)
    if not match:
        raise localfleet.SandboxError(f"{BUMPED_OVERLAY} has no image newTag to bump")
    old = match.group(1)
    parts = old.split(".")
    new = ".".join([*parts[:-1], str(int(parts[-1]) + 1)]) if parts[-1].isdigit() else old + "-1"
    return text.replace(match.group(0), f'newTag: "{new}"', 1), old, new


def _scale_behind_convoys_back(fleet: localfleet.LocalFleet, cluster: str) -> tuple[str, int]:
    from kubernetes import client as kube  # the sandbox needs the spoke extra (kubernetes) anyway

    api = kube.AppsV1Api(fleet.api_client(cluster))
    deployment = api.read_namespaced_deployment("web", "shop")
    desired = int(deployment.spec.replicas or 1)
    api.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": desired + 4}},
                                    field_manager="sandbox-operator")
    return "Deployment.apps/shop/web", desired


def _replicas(fleet: localfleet.LocalFleet, cluster: str) -> int:
    from kubernetes import client as kube

    replicas = kube.AppsV1Api(fleet.api_client(cluster)).read_namespaced_deployment("web", "shop").spec.replicas
    return int(replicas or 0)


@dataclasses.dataclass(frozen=True)
class DriftSeen:
    """What the hub shows after the drift step: the cluster's row and its drift events."""

    summary: pb.ClusterSummary
    events: tuple[pb.Event, ...]


def drift_shown(summary: pb.ClusterSummary, detail: pb.ClusterDetail, events: Sequence[pb.Event], *,
                obj: str, field: str) -> DriftSeen | None:
    """The narrative's claim, checked: DRIFT 0 and an empty diff for the cluster, and a detection and
    a correction in its history naming the object and the field. None while that is not (yet) so."""
    named = [e for e in events if e.kind.startswith("drift") and obj in e.message and field in e.message]
    kinds = {e.kind for e in named}
    if summary.drift_count or detail.drift or not {"drift", "drift_corrected"} <= kinds:
        return None
    return DriftSeen(summary=summary, events=tuple(named))


def _check_drift_recorded(fleet: localfleet.LocalFleet, cluster: str, obj: str, *, timeout: float) -> DriftSeen:
    """Poll until the hub shows the corrected drift as the narrative says; fail the demo otherwise."""
    last: list[str] = []

    def look() -> DriftSeen | None:
        with fleet.admin() as admin:
            detail = admin.get_cluster(cluster)
            events = admin.history(pb.HistoryRequest(cluster=cluster, limit=200)).events
        summary = fleet.statuses()[cluster]
        last[:] = [f"DRIFT {summary.drift_count}", f"{len(detail.drift)} drift item(s) in `convoy diff`",
                   f"drift events: {[e.message for e in events if e.kind.startswith('drift')] or 'none'}"]
        return drift_shown(summary, detail, events, obj=obj, field=DRIFT_FIELD)

    try:
        return localfleet.wait_until(look, timeout=timeout, what=f"{cluster}'s drift to be shown as corrected",
                                     interval=0.5)
    except localfleet.SandboxError as exc:
        raise localfleet.SandboxError(f"{exc}: expected DRIFT 0, an empty diff and history naming {obj} and "
                                      f"{DRIFT_FIELD}; the hub shows {'; '.join(last)}") from exc


def _show_artifacts(fleet: localfleet.LocalFleet, names: Sequence[str], victim: str, console: Console) -> None:
    """Where each bundle lives as an OCI reference, and one fetched and verified like any OCI client would."""
    registry = f"127.0.0.1:{fleet.http_port}/{bundle_cmd.REPOSITORY}"
    console.print("[bold]8.[/bold] Every bundle is an OCI artifact, served by the hub's /v2/ (same credentials "
                  "as gRPC):")
    for name in names:
        console.print(f"     {registry}:{oci.latest_tag(name)}", markup=False, highlight=False)
    client = bundle_cmd.Registry(fleet.http_url, (fleet.hub_dir / "admin.credential").read_text().strip())
    key = signing.load_public_key(signing.public_key_path(fleet.hub_dir))
    verified = bundle_cmd.inspect(client, oci.latest_tag(victim), key)
    console.print(f"   Inspected {registry}:{oci.latest_tag(victim)}: manifest {verified.manifest_digest[:19]}, "
                  f"commit {verified.commit[:8]}, {verified.objects} objects, bundle {verified.digest[:19]}: "
                  "digests good, hub signature good.", markup=False, highlight=False)
    console.print("   Try: skopeo inspect --raw --tls-verify=false "
                  f"--creds \"admin:$(cat {fleet.hub_dir}/admin.credential)\" "
                  f"docker://{registry}:{oci.latest_tag(victim)}\n", markup=False, highlight=False)


def run_sandbox(*, clusters: int, keep: bool, workdir: Path | None, timeout: float, console: Console) -> int:
    """Run the walkthrough (and stay up with ``keep``); returns the exit code: 0, or 128 + the signal
    that stopped it before the walkthrough was done. Raises SandboxError when a step fails."""
    temporary = workdir is None
    base = workdir or Path(tempfile.mkdtemp(prefix="convoy-sandbox-"))
    source = localfleet.sample_fleet_path()
    members = localfleet.sandbox_members(source, clusters)
    fleet = localfleet.LocalFleet(workdir=base, clusters=members, fleet_source=source)
    names = {c.name for c in members}
    console.rule("[bold]Convoy sandbox")
    console.print(f"Everything lives in {base} (logs in {fleet.logs})"
                  + ("; it is removed when the sandbox stops." if temporary else "."))
    walked_through = failed = False
    code = 0
    try:
        _write_pointer(base, temporary=temporary)
        first = fleet.init_repo(declare_only_members=True)
        console.print(f"[bold]1.[/bold] Fleet repository {fleet.repo_dir}: the sample fleet, commit {first[:8]}.")
        fleet.start_kubesim()
        console.print(f"[bold]2.[/bold] kubesim: {len(members)} clusters at {fleet.kubesim_url} "
                      f"({', '.join(sorted(names))}).")
        fleet.start_hub()
        console.print(f"[bold]3.[/bold] Hub at {fleet.hub_address} (TLS, its own CA; SQLite in {fleet.hub_dir}).")
        fleet.create_token()
        console.print("[bold]4.[/bold] Bootstrap token created; installing a spoke in every cluster "
                      "(`convoy spoke install --apply`, then `convoy spoke run`).")
        for member in members:
            fleet.install_spoke(member.name)
            fleet.start_spoke(member.name)
        started = time.monotonic()
        before = _watch_until(console, fleet, "Converging: every cluster pulls, applies and reports its bundle",
                              _all_ready(names), timeout)
        console.print(f"   All {len(names)} clusters Ready in {time.monotonic() - started:.1f}s.\n")

        overlay, old_tag, new_tag = _bump_image(fleet.read(BUMPED_OVERLAY))
        sha = fleet.commit(f"web: nginx {old_tag} -> {new_tag} in prod", {BUMPED_OVERLAY: overlay})
        console.print(f"[bold]5.[/bold] Commit {sha[:8]}: nginx {old_tag} -> {new_tag} in the prod overlay "
                      f"({BUMPED_OVERLAY}).")
        with fleet.admin() as admin:
            admin.sync_now()
        targeted = {n for n in names if members[[m.name for m in members].index(n)].labels.get("env") == "prod"}

        def rolled(statuses: dict[str, pb.ClusterSummary]) -> bool:
            _fail_if_rollout_stopped(fleet, sha)
            moved = all(statuses[n].desired_commit == sha and statuses[n].desired_digest != before[n].desired_digest
                        for n in targeted)
            return moved and _all_ready(names)(statuses)

        started = time.monotonic()
        after = _watch_until(console, fleet, f"Rolling {sha[:8]} out: only env=prod clusters change", rolled,
                             timeout)
        unchanged = sorted(n for n in names if after[n].desired_digest == before[n].desired_digest)
        changed = sorted(n for n in names if after[n].desired_digest != before[n].desired_digest)
        console.print(f"   Rolled forward in {time.monotonic() - started:.1f}s: {', '.join(changed)}.")
        console.print(f"   {_waves_line(fleet)}", markup=False, highlight=False)
        console.print(f"   Untouched (same digest, nothing re-applied): {', '.join(unchanged) or 'none'}.\n")

        victim = next((c for c in DRIFT_CLUSTER_PREFERENCE if c in names), sorted(names)[0])
        obj, desired = _scale_behind_convoys_back(fleet, victim)
        console.print(f"[bold]6.[/bold] Behind Convoy's back: {obj} in {victim} scaled to {desired + 4} replicas "
                      "by another field manager.")
        started = time.monotonic()
        localfleet.wait_until(lambda: _replicas(fleet, victim) == desired, timeout=timeout,
                              what=f"the spoke in {victim} to correct the drift")
        console.print(f"   Drift detected and corrected in {time.monotonic() - started:.1f}s: "
                      f"back to {desired} replicas.")

        drift = _check_drift_recorded(fleet, victim, obj, timeout=timeout)
        console.print(f"   The hub's history of {victim} records it:", markup=False, highlight=False)
        for event in drift.events:
            console.print(f"     {event.kind:<16} {event.message}", markup=False, highlight=False)
        console.print(f"   `convoy status` shows DRIFT {drift.summary.drift_count} for {victim} and `convoy diff "
                      f"{victim}` nothing: drift is what differs now, history is what happened.\n",
                      markup=False, highlight=False)

        _sealed_secret_step(fleet, console, timeout=timeout)
        _show_artifacts(fleet, sorted(names), victim, console)
        walked_through = True
        console.rule("[bold]What just happened")
        console.print(
            f"A hub rendered one signed bundle per cluster from {fleet.repo_dir}; each spoke pulled its own over "
            "gRPC/TLS, applied it server-side and reported back. A prod-only image bump moved only the prod "
            "clusters; a manual change was noticed and undone; a Secret sealed for each cluster's own key "
            "reached every web cluster while the hub held only its ciphertext.\n")
        console.print("Explore it" + (":" if keep else " (run `convoy sandbox up --keep` to keep it up):"))
        convoy, activate = convoy_command(found=shutil.which("convoy"), bin_dir=Path(sys.executable).parent)
        if activate:
            console.print(f"  {activate}   # puts convoy on your PATH", markup=False, highlight=False)
        console.print(f"  export CONVOY_CONFIG={fleet.cli_config}")
        console.print(f"  {convoy} status            # the fleet at a glance", markup=False)
        console.print(f"  {convoy} describe {victim}", markup=False)
        console.print(f"  {convoy} keys              # each cluster's public age key", markup=False)
        console.print(f"  {convoy} history {victim}   # the drift: detected, corrected, by whom", markup=False)
        console.print(f"  {convoy} diff {victim}", markup=False)
        console.print(f"  {convoy} history --all", markup=False)
        console.print(f"  {convoy} rollout status    # the prod bump's waves", markup=False)
        console.print(f"  kubectl --kubeconfig {fleet.kubeconfig} --context {victim} get deploy -A")
        console.print(f"  # edit {fleet.repo_dir}, commit, then `{convoy} sync`", markup=False)
        console.print(f"  {convoy} bundle ls {victim} --registry {fleet.http_url}   # its bundles as OCI artifacts",
                      markup=False, highlight=False)
        console.print(f"  {convoy} spoke run ... --bundle-source oci://127.0.0.1:{fleet.http_port}/convoy/bundles "
                      "--bundle-source-insecure   # bytes from a registry", markup=False, highlight=False)
        if keep:
            console.print(f"\nHub {fleet.hub_address} (HTTP {fleet.http_url}), kubesim {fleet.kubesim_url}. "
                          f"Press Ctrl-C to stop, or run `{convoy} sandbox down` from any shell.",
                          markup=False)
            while True:
                fleet.check_alive()
                time.sleep(1)
    except Stopped as stop:
        console.print(f"stopping ({stop})")
        code = 0 if walked_through else 128 + stop.signum
    except BaseException:
        failed = True
        raise
    finally:
        with _signals_ignored():
            fleet.stop()
            _clear_pointer(base)
            if temporary and not failed:
                shutil.rmtree(base, ignore_errors=True)
            elif temporary:
                console.print(f"Kept {base} for its logs; remove it when done.", markup=False, highlight=False)
    return code


def _sealed_secret_step(fleet: localfleet.LocalFleet, console: Console, *, timeout: float) -> None:
    """Re-seal the sample's sealed Secret for every web cluster, ship it, and show the hub never saw its value."""
    operator_key = fleet.repo_dir / OPERATOR_KEY
    identity = [line for line in operator_key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-1")]
    sealed_doc = next(d for d in yaml.safe_load_all(fleet.read(SEALED_SECRET)) if d)
    selector = sealed_doc["metadata"]["annotations"]["convoy.dev/sealed-for-selector"]
    expected: dict[str, str] = sops.open_document(sealed_doc, identity)["stringData"]
    with fleet.admin() as admin:
        web = sorted(c.name for c in admin.list_clusters(selector).clusters)
    # The operator's command, exactly as a person runs it: the clusters' public keys come from the hub.
    env = {**os.environ, "CONVOY_CONFIG": str(fleet.cli_config), "SOPS_AGE_KEY_FILE": str(operator_key)}
    refreshed = subprocess.run([sys.executable, "-m", "hub", "seal", "--refresh", "-i",
                                str(fleet.repo_dir / SEALED_SECRET)],
                               env=env, capture_output=True, text=True, check=False)
    if refreshed.returncode != 0:
        raise click.ClickException(f"convoy seal --refresh failed: {refreshed.stderr.strip()}")
    kustomization = yaml.safe_load(fleet.read(WEB_KUSTOMIZATION))
    kustomization["resources"].append(Path(SEALED_SECRET).name)
    sha = fleet.commit("web: the database Secret, sealed for every web cluster",
                       {SEALED_SECRET: fleet.read(SEALED_SECRET), WEB_KUSTOMIZATION: yaml.safe_dump(kustomization,
                                                                                                   sort_keys=False)})
    console.print(f"[bold]7.[/bold] `convoy seal --refresh` sealed {SEALED_SECRET} for the age keys of {len(web)} web "
                  f"clusters (made by their spokes, in the clusters) and the operator; commit {sha[:8]}.")
    with fleet.admin() as admin:
        admin.sync_now()
    started = time.monotonic()
    for name in web:
        def applied(cluster: str = name) -> bool:
            return _secret_value(fleet, cluster) == expected
        localfleet.wait_until(applied, timeout=timeout, what=f"the sealed Secret applied in {name}")
    console.print(f"   Secret shop/web-db applied with the right value in {', '.join(web)} "
                  f"in {time.monotonic() - started:.1f}s (each spoke decrypted it with its own key).")
    plaintext, sealed_copies = _hub_database_scan(fleet, [v for v in expected.values() if len(v) >= 8])
    if plaintext:
        raise click.ClickException(f"the hub's database holds a plaintext secret value ({plaintext})")
    console.print(f"   The hub's database holds only ciphertext: {sealed_copies} stored bundle(s) carry the sealed "
                  "Secret, none holds a value of it.\n")


def _secret_value(fleet: localfleet.LocalFleet, cluster: str) -> dict[str, str] | None:
    from kubernetes import client as kube_client

    api = kube_client.CoreV1Api(fleet.api_client(cluster))
    try:
        live = api.read_namespaced_secret("web-db", "shop")
    except kube_client.ApiException:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (live.data or {}).items()}


def _hub_database_scan(fleet: localfleet.LocalFleet, values: Sequence[str]) -> tuple[str, int]:
    """(where a plaintext value was found or "", how many stored bundles carry sealed ciphertext)."""
    needles = [n for v in values for n in (v.encode(), base64.b64encode(v.encode()))]
    sealed_copies = 0
    for path in sorted(fleet.hub_dir.glob("*.db")):
        with contextlib.closing(sqlite3.connect(path)) as db:
            dump = "\n".join(db.iterdump()).encode()
            blobs = [bundles.decompress(row[0], max_size=1 << 28) for row in db.execute("SELECT data FROM bundles")]
        for text in [dump, *blobs]:
            if any(n in text for n in needles):
                return str(path), sealed_copies
        sealed_copies += sum(1 for b in blobs if b"ENC[AES256_GCM" in b)
    return "", sealed_copies


@click.group()
def sandbox() -> None:
    """A local fleet (kubesim + hub + spokes) for trying Convoy."""


@sandbox.command("up")
@click.option("--clusters", default=5, show_default=True,
              help="How many emulated clusters; fewer than the sample's 5 run its prod canary first and declare "
                   "only the clusters that run.")
@click.option("--keep", is_flag=True, help="Stay up after the walkthrough and print how to connect.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to put the fleet repo, hub data and logs (default: a new temp directory).")
@click.option("--timeout", default=240.0, show_default=True, help="Seconds to wait for each step.")
def sandbox_up(clusters: int, keep: bool, workdir: Path | None, timeout: float) -> None:
    """Run a local fleet, show it converge, roll a change out, and correct drift.

    \b
    Examples:
      convoy sandbox up
      convoy sandbox up --clusters 8 --keep
    """
    if clusters < 1:
        raise click.BadParameter("at least one cluster", param_hint="--clusters")
    # The spokes need the spoke extra: with only the hub's, say so now (the root command names the
    # extra for a ModuleNotFoundError) rather than after kubesim and the hub have started.
    import kubernetes  # noqa: F401
    # A pipe or CI log gets a width that fits the status table instead of rich's 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 150)
    try:
        with _stop_on_signals():
            code = run_sandbox(clusters=clusters, keep=keep, workdir=workdir, timeout=timeout, console=console)
    except localfleet.SandboxError as exc:
        console.print(f"[red]sandbox failed:[/red] {exc}", markup=True, highlight=False)
        sys.exit(1)
    except Stopped as stop:  # before anything was started
        sys.exit(128 + stop.signum)
    sys.exit(code)


@sandbox.command("down")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The sandbox's directory (default: the one the last `convoy sandbox up` recorded).")
def sandbox_down(workdir: Path | None) -> None:
    """Stop a sandbox that `convoy sandbox up --keep` started, from any shell.

    Asks the `up` process to stop its parts; parts left running (its process was killed) are stopped
    here. A temporary work directory is removed with them.

    \b
    Examples:
      convoy sandbox down
      convoy sandbox down --workdir /tmp/my-sandbox
    """
    pointed = _read_pointer()
    target = workdir or (pointed.workdir if pointed else None)
    if target is None:
        click.echo(f"No sandbox to stop ({pointer_path()} names none).")
        return
    ours = pointed if pointed is not None and pointed.workdir == target.resolve() else None
    try:
        # The pointer names `up` even before it has started a part (and recorded it in the work dir).
        stopped = localfleet.stop_recorded(target, owner=ours.owner if ours else None)
    except localfleet.SandboxError as exc:
        raise click.ClickException(str(exc)) from exc
    if ours is not None:
        pointer_path().unlink(missing_ok=True)
        if ours.temporary:
            shutil.rmtree(target, ignore_errors=True)
    if stopped:
        click.echo(f"Stopped the sandbox in {target}: {', '.join(stopped)}.")
    else:
        click.echo(f"No sandbox was running in {target}.")
