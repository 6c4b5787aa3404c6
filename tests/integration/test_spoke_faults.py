"""Faults the spoke survives, with the spoke as a real process (issue 22): killed with SIGKILL mid-apply."""

from __future__ import annotations

import base64
import os
import pathlib
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hub import cliconfig
from hub.adminclient import AdminClient
from kubesim.faults import Faults
from kubesim.testing import KubeSim
from protos import bundle as bundles
from protos.codec import pb
from protos.objects import ObjectRef
from spoke import inventory
from spoke.agent import Agent
from spoke.cluster import ClientOptions, ClusterClient
from spoke.settings import SpokeSettings
from tests.integration.fault_harness import FreezingRelay, HubProcess
from tests.integration.hub_harness import FleetRepo, standard_fleet
from tests.integration.spoke_harness import FakeHub, configmap, make_bundle, namespace
from tests.polling import wait_for

NS = "crash"
WIDE = 64  #: objects only bundle B has: enough that a slowed apply is caught half-way


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


@pytest.fixture
def client(kubesim_server: Any, kube_cluster: str) -> Iterator[ClusterClient]:
    c = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))
    yield c
    c.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return int(response.status) == 200
    except OSError:
        return False


class SpokeProcess:
    """``convoy spoke run`` as a child process, logging to a file (a full pipe must never block it)."""

    def __init__(self, hub: FakeHub | None, kubesim: Any, cluster: str, tmp: pathlib.Path, *, address: str = "",
                 token: str = "", hub_ca: pathlib.Path | None = None) -> None:
        self.kubeconfig = kubesim.write_kubeconfig(tmp / "kubeconfig", [cluster])
        self.cluster = cluster
        self.address = address or (hub.address if hub is not None else "")
        self.token = token or (hub.token if hub is not None else "")
        self.hub_ca = hub_ca   #: the hub's CA (TLS); None: plaintext, as the FakeHub speaks
        self.log = tmp / "spoke.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> SpokeProcess:
        self.port = _free_port()
        env = {**os.environ, "CONVOY_SPOKE_HUB": self.address, "CONVOY_SPOKE_CLUSTER": self.cluster,
               "CONVOY_SPOKE_TOKEN": self.token, "CONVOY_SPOKE_HEALTH_PORT": str(self.port),
               "CONVOY_SPOKE_HEALTH_HOST": "127.0.0.1"}
        if self.hub_ca is None:
            env["CONVOY_SPOKE_INSECURE"] = "true"
        else:
            env["CONVOY_SPOKE_HUB_CA"] = str(self.hub_ca)
        with self.log.open("a") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "spoke", "run", "--kubeconfig", str(self.kubeconfig),
                 "--context", self.cluster, "--heartbeat", "1"], env=env, stdout=sink, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def spoke_process(hub: FakeHub, kubesim_server: Any, kube_cluster: str, tmp_path: pathlib.Path,
                  isolated_home: str) -> Iterator[SpokeProcess]:
    process = SpokeProcess(hub, kubesim_server, kube_cluster, tmp_path)
    yield process
    process.stop()


def _ours(client: ClusterClient, cluster: str) -> dict[str, dict[str, str]]:
    """The ConfigMaps Convoy applied in NS: name -> data."""
    return {o["metadata"]["name"]: dict(o.get("data") or {})
            for o in client.list("v1", "ConfigMap", namespace=NS,
                                 label_selector=f"{bundles.LABEL_CLUSTER}={cluster}").items}


def _inventory_names(client: ClusterClient) -> set[str]:
    secret = client.get("v1", "Secret", "convoy-system", "convoy-inventory")
    assert secret is not None
    stored = inventory.decode(secret.get("data") or {}, max_bundle_bytes=64 << 20)
    return {ref.name for ref in stored.entries if ref.kind == "ConfigMap"}


def test_sigkill_mid_apply_ends_at_exactly_one_bundle_and_the_inventory_lists_what_is_live(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kubesim_server: Any,
        kube_cluster: str) -> None:
    a_objects = {"keep": {"v": "A"}, "only-a": {"v": "A"}}
    b_objects = {"keep": {"v": "B"}, **{f"only-b-{i:02d}": {"v": "B"} for i in range(WIDE)}}
    bundle_a = make_bundle([namespace(NS), *(configmap(n, NS, d) for n, d in a_objects.items())])
    bundle_b = make_bundle([namespace(NS), *(configmap(n, NS, d) for n, d in b_objects.items())])
    hub.publish(bundle_a, commit="a" * 40)
    spoke_process.start()
    wait_for(lambda: _ours(client, kube_cluster) == a_objects, timeout=30, what="bundle A applied")

    # Slow every request so bundle B is still half-way when the process dies.
    kubesim_server.set_faults(kube_cluster, Faults(latency=0.25))
    hub.publish(bundle_b, commit="b" * 40)
    wait_for(lambda: any(n.startswith("only-b") for n in _ours(client, kube_cluster)), timeout=30,
             what="bundle B's apply under way")
    spoke_process.kill()
    kubesim_server.clear_faults(kube_cluster)
    half = _ours(client, kube_cluster)
    assert half not in (a_objects, b_objects), "the kill came too late to catch the apply half-way"

    # Restarted while the hub is away: it enforces its in-cluster copy, which must be A or B, whole.
    hub.stop()
    spoke_process.start()
    wait_for(lambda: _ready(spoke_process.port), timeout=30, what="the restarted spoke ready")
    wait_for(lambda: _ours(client, kube_cluster) in (a_objects, b_objects), timeout=30,
             what=f"the cluster at exactly bundle A or B (now {sorted(_ours(client, kube_cluster))})")
    assert _inventory_names(client) == set(_ours(client, kube_cluster))

    # The hub comes back and rolls back to A (B was the bad one): everything of B goes, A stays whole.
    hub.start()
    hub.publish(bundle_a, commit="a" * 40)
    wait_for(lambda: _ours(client, kube_cluster) == a_objects, timeout=30,
             what=f"bundle A again (now {sorted(_ours(client, kube_cluster))})")
    wait_for(lambda: _inventory_names(client) == set(a_objects), timeout=10, what="the inventory listing A")


def test_a_frozen_connection_is_noticed_from_the_heartbeat_and_no_report_is_lost(
        kubesim_server: Any, kube_cluster: str, client: ClusterClient) -> None:
    hub = FakeHub(heartbeat=1).start()
    relay = FreezingRelay(("127.0.0.1", hub.port))
    settings = SpokeSettings(hub=relay.address, cluster=kube_cluster, token=hub.token, insecure=True,
                             health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0)
    agent = Agent(settings, cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))).start()
    try:
        hub.publish(make_bundle([namespace(NS), configmap("watched", NS, {"v": "1"})]))
        wait_for(lambda: _ours(client, kube_cluster) == {"watched": {"v": "1"}}, timeout=30, what="applied")
        wait_for(lambda: agent.hub_heartbeat == 1.0, timeout=10, what="the hub's heartbeat interval learnt")
        first = relay.connections

        relay.freeze()
        # Drift while the hub cannot hear: corrected at once, and its history must still arrive.
        live = client.get("v1", "ConfigMap", NS, "watched")
        assert live is not None
        client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": NS},
                      "data": {"v": "changed"}}, manager="kubectl-edit", force=True)
        wait_for(lambda: _ours(client, kube_cluster) == {"watched": {"v": "1"}}, timeout=10, what="drift corrected")

        # Heartbeats every 1 s: silent for 3 of them means dead, well inside this bound (the channel
        # keepalive alone takes 40 s).
        wait_for(lambda: relay.connections > first, timeout=15, what="a new connection after the freeze")
        wait_for(lambda: any(e.action == "corrected" and e.ref.name == "watched"
                             for r in hub.reports for e in r.drift_events),
                 timeout=20, what="the correction made during the partition reported to the hub")
    finally:
        agent.stop()
        agent.client.close()
        relay.close()
        hub.stop()


def test_a_partition_between_a_real_spoke_and_a_real_hub_is_noticed_on_both_sides_and_healed(
        kubesim_server: Any, kube_cluster: str, client: ClusterClient, tmp_path: pathlib.Path,
        isolated_home: str) -> None:
    repo = FleetRepo(tmp_path / "fleet")
    standard_fleet(repo)
    hub = HubProcess(repo, tmp_path / "hub", heartbeat=1).start()
    host, port = hub.address.rsplit(":", 1)
    relay = FreezingRelay((host, int(port)))
    conn = cliconfig.HubConnection(name="test", address=hub.address, ca=hub.ca_file, credential=hub.admin_credential)
    admin = AdminClient(conn)
    spoke = SpokeProcess(None, kubesim_server, kube_cluster, tmp_path, address=relay.address,
                         token=admin.create_token(pb.CreateTokenRequest(ttl_seconds=600, uses=1)).token,
                         hub_ca=hub.ca_file)
    try:
        client.apply(namespace("shop"), manager="test")  # the standard fleet's app namespace; it makes none
        spoke.start()

        def online() -> bool:
            return any(c.name == kube_cluster and c.online for c in admin.list_clusters().clusters)

        def corrections() -> int:
            events = admin.history(pb.HistoryRequest(cluster=kube_cluster, limit=500,
                                                     kinds=["drift_corrected"])).events
            return sum("web-config" in e.message for e in events)

        wait_for(lambda: client.get("v1", "ConfigMap", "shop", "web-config") is not None, timeout=60,
                 what="the hub's bundle applied through the relay")
        wait_for(online, timeout=20, what="the cluster online")
        wait_for(lambda: "a Watch stream silent for 3s is presumed dead" in spoke.log.read_text(), timeout=10,
                 what="the spoke learning the hub's heartbeat")
        before = relay.connections

        relay.partition()  # no FIN, no RST; new connections go nowhere either
        # The hub pings every heartbeat (1 s) and drops a connection whose ping goes unanswered for 2 s.
        wait_for(lambda: not online(), timeout=10, what="the hub showing the cluster offline")
        # The spoke keeps enforcing what it has: a deletion during the partition is corrected.
        client.delete("v1", "ConfigMap", "shop", "web-config")
        wait_for(lambda: client.get("v1", "ConfigMap", "shop", "web-config") is not None, timeout=15,
                 what="the deletion corrected during the partition")
        # The spoke notices from the hub's heartbeat: 3 silent intervals, not the 40 s channel keepalive.
        wait_for(lambda: "nothing from the hub for 3s" in spoke.log.read_text(), timeout=15,
                 what="the spoke noticing the silent stream")

        relay.thaw()
        wait_for(lambda: relay.connections > before and online(), timeout=30, what="reconnected and online again")
        # No report lost: the correction made while the hub could not hear reaches its history.
        wait_for(lambda: corrections() >= 1, timeout=30, what="the correction in the hub's history")
        assert spoke.proc is not None and spoke.proc.poll() is None
    finally:
        spoke.stop()
        admin.close()
        relay.close()
        hub.stop()


def _big_inventory(entries: int, noise: int) -> inventory.Inventory:
    """An inventory of ``entries`` objects whose bundle carries ``noise`` incompressible bytes."""
    objects = [configmap(f"cm-{i:05d}", NS) for i in range(entries)]
    objects.append(configmap("noise", NS, {"blob": os.urandom(noise).hex()}))
    data = bundles.encode(make_bundle(objects))
    refs = [inventory.InventoryEntry(ref=ObjectRef(group="", kind="ConfigMap", namespace=NS,
                                                   name=o["metadata"]["name"]),
                                     api_version="v1", app="web", hash="sha256:" + "0" * 64) for o in objects]
    return inventory.Inventory(entries={e.ref: e for e in refs}, digest=bundles.digest_of(data), commit="c" * 40,
                               signature=b"s" * 64, bundle_bytes=data)


def test_an_inventory_larger_than_a_secret_is_split_and_read_back_whole(client: ClusterClient) -> None:
    store = inventory.InventoryStore(client, namespace="convoy-system", name="convoy-inventory")
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "convoy-system"}}, manager="t")
    big = _big_inventory(10_000, 1_500_000)  # well past the 1 MiB a Secret holds, even compressed
    store.save(big)
    assert store.load() == big
    parts = client.list("v1", "Secret", namespace="convoy-system",
                        label_selector=inventory.LABEL_PART).items
    assert len(parts) >= 2

    # The next, smaller inventory fits one Secret: the parts of the old one are gone with it.
    small = _big_inventory(3, 10)
    store.save(small)
    assert store.load() == small
    assert client.list("v1", "Secret", namespace="convoy-system", label_selector=inventory.LABEL_PART).items == []


def test_a_non_utf8_credential_keeps_the_spoke_up_enforcing_and_pruning(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kube_cluster: str) -> None:
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS), configmap("goes-later", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays", "goes-later"}, timeout=30, what="applied")
    spoke_process.kill()

    def damage(live: dict[str, Any] | None) -> dict[str, Any]:
        assert live is not None
        live["data"]["credential"] = base64.b64encode(b"\xff\xfe not text").decode()
        return live

    client.update_with("v1", "Secret", "convoy-system", "convoy-spoke-state", damage, manager="someone")
    hub.stop()  # away: the spoke must stand on its in-cluster state alone
    spoke_process.start()
    wait_for(lambda: _ready(spoke_process.port), timeout=30, what="the restarted spoke ready")
    client.delete("v1", "ConfigMap", NS, "stays")
    wait_for(lambda: "stays" in _ours(client, kube_cluster), timeout=20, what="the last bundle still enforced")
    assert spoke_process.proc is not None and spoke_process.proc.poll() is None
    log = spoke_process.log.read_text()
    assert "Secret/convoy-system/convoy-spoke-state" in log and "not UTF-8" in log

    # The hub returns; the spoke registers again with its token, and a removal from Git is pruned.
    hub.start()
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS)]))
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays"}, timeout=30, what="goes-later pruned")


def test_api_server_faults_during_apply_prune_and_inventory_save_end_at_the_bundle(
        hub: FakeHub, kubesim_server: Any, kube_cluster: str, client: ClusterClient) -> None:
    settings = SpokeSettings(hub=hub.address, cluster=kube_cluster, token=hub.token, insecure=True,
                             health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0)
    agent = Agent(settings, cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))).start()
    try:
        first = {f"first-{i}": {"v": "1"} for i in range(6)}
        hub.publish(make_bundle([namespace(NS), *(configmap(n, NS, d) for n, d in first.items())]))
        wait_for(lambda: _ours(client, kube_cluster) == first, timeout=30, what="the first bundle")
        # Every kind of answer a troubled API server (or the proxy before it) gives, on every request
        # the spoke makes from here on: apply, prune, and the inventory's read-modify-write.
        kubesim_server.set_faults(kube_cluster, Faults(
            error_rates={429: 0.1, 500: 0.05, 502: 0.05, 503: 0.05, 504: 0.05}, drop_rate=0.05, latency=0.02,
            seed=22))
        second = {**{f"first-{i}": {"v": "2"} for i in range(3)}, **{f"second-{i}": {"v": "2"} for i in range(3)}}
        hub.publish(make_bundle([namespace(NS), *(configmap(n, NS, d) for n, d in second.items())]))

        def settled() -> bool:
            try:
                return _ours(client, kube_cluster) == second and _inventory_names(client) == set(second)
            except Exception:  # the test's own reads meet the faults too
                return False

        wait_for(settled, timeout=45, what="the second bundle applied, the rest pruned, the inventory saved")
    finally:
        kubesim_server.clear_faults(kube_cluster)
        agent.stop()
        agent.client.close()


def test_a_410_gone_on_the_drift_watch_resume_re_lists_and_drift_is_still_corrected(hub: FakeHub) -> None:
    # A kubesim of the test's own that keeps only 5 events: a watch resuming from older than that gets 410.
    with KubeSim(clusters=["gone"], watch_history=5) as sim:
        client = ClusterClient.from_config_dict(sim.kubeconfig("gone"))
        spoke_client = ClusterClient.from_config_dict(sim.kubeconfig("gone"))
        lists: list[str] = []
        real_list = spoke_client.list

        def counting_list(api_version: str, kind: str, **kwargs: Any) -> Any:
            lists.append(kind)
            return real_list(api_version, kind, **kwargs)

        spoke_client.list = counting_list  # type: ignore[method-assign]
        settings = SpokeSettings(hub=hub.address, cluster="gone", token=hub.token, insecure=True, health_port=0,
                                 health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0)
        agent = Agent(settings, cluster=spoke_client).start()
        try:
            hub.publish(make_bundle([namespace(NS), configmap("watched", NS, {"v": "1"})]))
            wait_for(lambda: _ours(client, "gone") == {"watched": {"v": "1"}}, timeout=30, what="applied")
            wait_for(lambda: "ConfigMap" in lists, timeout=10, what="the ConfigMap drift watch listing")
            before = lists.count("ConfigMap")
            # Writes the watch does not select move the history past the watch's resourceVersion...
            for i in range(20):
                client.apply({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": f"unrelated-{i}", "namespace": NS}, "data": {"i": str(i)}},
                             manager="someone-else")
            # ... and the stream is cut: the resume is answered 410 Gone, so the spoke must list again.
            sim.set_faults("gone", Faults(watch_cut_after=0.5))
            wait_for(lambda: lists.count("ConfigMap") > before, timeout=20, what="a re-list after 410 Gone")
            sim.clear_faults("gone")

            client.delete("v1", "ConfigMap", NS, "watched")
            wait_for(lambda: _ours(client, "gone") == {"watched": {"v": "1"}}, timeout=20,
                     what="a deletion after the 410 corrected")
            live = client.get("v1", "ConfigMap", NS, "watched")
            assert live is not None
            client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": NS},
                          "data": {"v": "changed"}}, manager="kubectl-edit", force=True)
            wait_for(lambda: _ours(client, "gone") == {"watched": {"v": "1"}}, timeout=20,
                     what="a change after the 410 corrected")
        finally:
            agent.stop()
            spoke_client.close()
            client.close()


def test_stalled_bodies_are_cut_by_the_read_timeout_and_the_spoke_ends_at_the_bundle(
        hub: FakeHub, kubesim_server: Any, kube_cluster: str, client: ClusterClient) -> None:
    settings = SpokeSettings(hub=hub.address, cluster=kube_cluster, token=hub.token, insecure=True,
                             health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0)
    # A short request timeout so the test is quick; a stalled answer sends no byte, FIN or RST for 30 s.
    spoke_client = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster),
                                                  options=ClientOptions(request_timeout=2.0))
    reader = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster),
                                            options=ClientOptions(request_timeout=2.0))
    agent = Agent(settings, cluster=spoke_client).start()
    try:
        first = {f"first-{i}": {"v": "1"} for i in range(4)}
        hub.publish(make_bundle([namespace(NS), *(configmap(n, NS, d) for n, d in first.items())]))
        wait_for(lambda: _ours(client, kube_cluster) == first, timeout=30, what="the first bundle")
        kubesim_server.set_faults(kube_cluster, Faults(stall_rate=0.15, stall_for=30.0, seed=7))
        second = {**{f"first-{i}": {"v": "2"} for i in range(2)}, **{f"second-{i}": {"v": "2"} for i in range(3)}}
        hub.publish(make_bundle([namespace(NS), *(configmap(n, NS, d) for n, d in second.items())]))

        def settled() -> bool:
            try:
                return _ours(reader, kube_cluster) == second and _inventory_names(reader) == set(second)
            except Exception:  # the test's own reads stall too
                return False

        wait_for(settled, timeout=90, what="the second bundle applied through stalled answers, the rest pruned")
    finally:
        kubesim_server.clear_faults(kube_cluster)
        agent.stop()
        spoke_client.close()
        reader.close()


@pytest.mark.parametrize("damage", ["garbage-signing-key", "state-secret-deleted"])
def test_damaged_spoke_state_keeps_the_process_up_and_the_hub_repairs_it(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kube_cluster: str, damage: str) -> None:
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS), configmap("goes-later", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays", "goes-later"}, timeout=30, what="applied")
    spoke_process.kill()
    if damage == "state-secret-deleted":
        client.delete("v1", "Secret", "convoy-system", "convoy-spoke-state")
    else:
        def garble(live: dict[str, Any] | None) -> dict[str, Any]:
            assert live is not None
            live["data"]["signing-key"] = base64.b64encode(b"not an ed25519 key").decode()
            return live

        client.update_with("v1", "Secret", "convoy-system", "convoy-spoke-state", garble, manager="someone")
    hub.stop()  # away at restart: the process must stay up on what it has
    spoke_process.start()
    wait_for(lambda: _ready(spoke_process.port), timeout=30, what="the restarted spoke ready")
    assert spoke_process.proc is not None and spoke_process.proc.poll() is None
    if damage == "garbage-signing-key":
        # It cannot verify its in-cluster copy, so it enforces nothing unverified, and says why and what to do.
        wait_for(lambda: "not a 32-byte Ed25519 key" in spoke_process.log.read_text(), timeout=10,
                 what="the bad signing key named in the log")
        log = spoke_process.log.read_text()
        assert "Secret/convoy-system/convoy-spoke-state" in log and "to repair:" in log

    # The hub returns; the spoke registers again with its token, and a removal from Git is pruned.
    hub.start()
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS)]))
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays"}, timeout=30, what="goes-later pruned")
    assert spoke_process.proc.poll() is None


def test_a_credential_the_hub_refuses_keeps_the_spoke_enforcing_and_says_what_to_do(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kube_cluster: str) -> None:
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays"}, timeout=30, what="applied")
    spoke_process.kill()

    def wrong(live: dict[str, Any] | None) -> dict[str, Any]:
        assert live is not None
        live["data"]["credential"] = base64.b64encode(b"a-credential-the-hub-never-issued").decode()
        return live

    client.update_with("v1", "Secret", "convoy-system", "convoy-spoke-state", wrong, manager="someone")
    spoke_process.start()
    wait_for(lambda: "UNAUTHENTICATED" in spoke_process.log.read_text(), timeout=30, what="the hub's refusal")
    client.delete("v1", "ConfigMap", NS, "stays")
    wait_for(lambda: "stays" in _ours(client, kube_cluster), timeout=20, what="the last bundle still enforced")
    assert spoke_process.proc is not None and spoke_process.proc.poll() is None
    # The log says which Secret holds the refused credential and what the operator must do.
    wait_for(lambda: "does not accept this cluster's credential in Secret/convoy-system/convoy-spoke-state"
             in spoke_process.log.read_text(), timeout=10, what="the refusal explained")
    logged = spoke_process.log.read_text()
    assert "to repair:" in logged and "convoy token create --cluster" in logged


def test_the_inventory_secret_deleted_while_running_still_prunes_and_is_stored_again(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kube_cluster: str) -> None:
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS), configmap("goes-later", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays", "goes-later"}, timeout=30, what="applied")
    wait_for(lambda: client.get("v1", "Secret", "convoy-system", "convoy-inventory") is not None, timeout=10,
             what="the inventory stored")
    client.delete("v1", "Secret", "convoy-system", "convoy-inventory")

    hub.publish(make_bundle([namespace(NS), configmap("stays", NS)]))
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays"}, timeout=30, what="goes-later pruned")
    wait_for(lambda: _inventory_names(client) == {"stays"}, timeout=10, what="the inventory stored again")
    assert spoke_process.proc is not None and spoke_process.proc.poll() is None


def _health(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
        return str(response.read().decode())


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_the_inventory_secret_deleted_while_the_spoke_is_down_is_rebuilt_from_live_objects_and_prunes(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kube_cluster: str, damage: str) -> None:
    hub.publish(make_bundle([namespace(NS), configmap("x", NS), configmap("y", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"x", "y"}, timeout=30, what="bundle A applied")
    wait_for(lambda: _inventory_names(client) == {"x", "y"}, timeout=10, what="the inventory stored")
    spoke_process.kill()
    if damage == "deleted":
        client.delete("v1", "Secret", "convoy-system", "convoy-inventory")
    else:
        def garble(live: dict[str, Any] | None) -> dict[str, Any]:
            assert live is not None
            live["data"]["inventory.json"] = base64.b64encode(b"[{not json").decode()
            return live

        client.update_with("v1", "Secret", "convoy-system", "convoy-inventory", garble, manager="someone")
    # Someone else's object with Convoy's labels copied onto it: no Apply entry of Convoy's field manager.
    copied = configmap("copied-labels", NS, labels={bundles.LABEL_MANAGED_BY: bundles.MANAGED_BY_VALUE,
                                                    bundles.LABEL_CLUSTER: kube_cluster})
    client.create(copied, manager="kubectl-create")

    # Git dropped y meanwhile; the restarted spoke has no inventory to prune from but what it rebuilds.
    hub.publish(make_bundle([namespace(NS), configmap("x", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"x", "copied-labels"}, timeout=30,
             what=f"y pruned, x and the copied-labels object kept (now {sorted(_ours(client, kube_cluster))})")
    wait_for(lambda: _inventory_names(client) == {"x"}, timeout=10, what="the inventory listing x alone")
    log = spoke_process.log.read_text()
    # The namespace, x and y: the object with copied labels is not adopted.
    assert "inventory rebuilt from 3 live object(s)" in log, log[-3000:]
    said = "no inventory" if damage == "deleted" else "inventory is damaged"
    assert f"Secret/convoy-system/convoy-inventory: {said}" in log


def test_the_state_secret_deleted_while_the_hub_is_away_says_once_why_nothing_is_enforced(
        hub: FakeHub, spoke_process: SpokeProcess, client: ClusterClient, kube_cluster: str) -> None:
    hub.publish(make_bundle([namespace(NS), configmap("stays", NS)]))
    spoke_process.start()
    wait_for(lambda: set(_ours(client, kube_cluster)) == {"stays"}, timeout=30, what="applied")
    wait_for(lambda: _ready(spoke_process.port), timeout=10, what="ready")
    assert "problem:" not in _health(spoke_process.port)
    spoke_process.kill()
    client.delete("v1", "Secret", "convoy-system", "convoy-spoke-state")
    hub.stop()

    spoke_process.start()
    wait_for(lambda: _ready(spoke_process.port), timeout=30, what="the restarted spoke ready")
    health = _health(spoke_process.port)
    assert "problem: Secret/convoy-system/convoy-spoke-state is missing" in health, health
    assert "nothing is enforced" in health and "convoy token create --cluster NAME" in health
    # Said once, not on every reconnect attempt to the absent hub.
    wait_for(lambda: spoke_process.log.read_text().count("reconnecting") >= 3, timeout=30,
             what="a few attempts to reach the hub")
    assert spoke_process.log.read_text().count("convoy-spoke-state is missing") == 1

    # The hub returns: the spoke registers with its token, enforces again and the problem is gone.
    hub.start()
    wait_for(lambda: "problem:" not in _health(spoke_process.port), timeout=30, what="the problem cleared")
    client.delete("v1", "ConfigMap", NS, "stays")
    wait_for(lambda: "stays" in _ours(client, kube_cluster), timeout=20, what="the bundle enforced again")


def test_a_stalled_drift_watch_is_noticed_by_its_read_timeout_and_resumed(
        hub: FakeHub, kubesim_server: Any, kube_cluster: str, client: ClusterClient) -> None:
    spoke_client = ClusterClient.from_config_dict(kubesim_server.kubeconfig(kube_cluster))
    lists: list[str] = []   #: the drift watch's lists (the start's inventory search lists too, by another selector)
    real_list = spoke_client.list

    def counting_list(api_version: str, kind: str, **kwargs: Any) -> Any:
        if kwargs.get("label_selector") == f"{bundles.LABEL_CLUSTER}={kube_cluster}":
            lists.append(kind)
        return real_list(api_version, kind, **kwargs)

    spoke_client.list = counting_list  # type: ignore[method-assign]
    settings = SpokeSettings(hub=hub.address, cluster=kube_cluster, token=hub.token, insecure=True, health_port=0,
                             health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0)
    agent = Agent(settings, cluster=spoke_client).start()
    try:
        hub.publish(make_bundle([namespace(NS), configmap("watched", NS, {"v": "1"})]))
        wait_for(lambda: _ours(client, kube_cluster) == {"watched": {"v": "1"}}, timeout=30, what="applied")
        wait_for(lambda: "ConfigMap" in lists, timeout=10, what="the ConfigMap drift watch listing")
        # A change corrected proves the watch stream is open (not still between its list and its watch).
        client.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": NS},
                      "data": {"v": "changed"}}, manager="kubectl-edit", force=True)
        wait_for(lambda: _ours(client, kube_cluster) == {"watched": {"v": "1"}}, timeout=10, what="drift corrected")
        listed = lists.count("ConfigMap")
        # Every watch stream goes silent (no event, no bookmark, no FIN) once its history is sent, for two
        # minutes: only the spoke's read timeout can notice. The deletion waits in the stalled stream.
        kubesim_server.set_faults(kube_cluster, Faults(watch_stall_after=0.0, stall_for=120.0))
        client.delete("v1", "ConfigMap", NS, "watched")
        # Noticed within WATCH_SECONDS + WATCH_READ_SLACK (15 s), resumed from its resourceVersion, which
        # hands over the deletion before the new stream stalls in its turn (before: 70 s of blindness).
        wait_for(lambda: "watched" in _ours(client, kube_cluster), timeout=25, what="the deletion corrected")
        assert lists.count("ConfigMap") == listed, "resumed from its resourceVersion, not listed again"
    finally:
        kubesim_server.clear_faults(kube_cluster)
        agent.stop()
        spoke_client.close()
