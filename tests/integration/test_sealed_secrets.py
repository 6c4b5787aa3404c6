"""Sealed secrets end to end (issue 18): a real hub, a real spoke on kubesim, a SOPS file in Git.

The spoke makes its age key in the cluster and sends only the recipient; the hub stores and shows
it, renders the sealed file as ciphertext, and the spoke opens it just before apply. A file the
cluster cannot open is refused by name, the last applied state stays, and nothing plaintext shows.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from click.testing import CliRunner
from grpc import aio
from sqlmodel import select

from hub.cli import cli
from hub.store import models
from protos import bundle as bundles
from protos import sops
from protos.codec import pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc
from spoke.agent import Agent
from spoke.cluster import ClusterClient
from spoke.credentials import Credentials, CredentialStore
from spoke.settings import SpokeSettings
from tests.integration.hub_harness import (
    FLEET_YAML,
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    hub_settings,
    next_desired,
    running_hub,
)
from tests.polling import poll

PASSWORD = "correct-horse-battery-staple"
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-db"}, "type": "Opaque",
          "stringData": {"password": PASSWORD}}
KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [namespace.yaml, configmap.yaml, db.sops.yaml]
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"


@pytest.fixture
def kube(kubesim_server: Any, kube_cluster: str) -> Iterator[tuple[Any, str]]:
    yield kubesim_server, kube_cluster


def _sealed_file(recipient_list: list[str]) -> str:
    return yaml.safe_dump(sops.seal(SECRET, recipient_list), sort_keys=False)


async def _summary(admin: Any, name: str) -> pb.ClusterSummary | None:
    reply = await admin.call("ListClusters", pb.ListClustersRequest())
    return next((c for c in reply.clusters if c.name == name), None)


async def test_a_sealed_secret_reaches_the_cluster_while_the_hub_holds_only_ciphertext(
        tmp_path: Path, fleet_repo: FleetRepo, kube: tuple[Any, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kubesim_server, name = kube
    fleet_repo.commit({"apps/web/namespace.yaml": NAMESPACE, "apps/web/kustomization.yaml":
                       KUSTOMIZATION.replace(", db.sops.yaml", "")}, "the shop namespace")
    settings = hub_settings(tmp_path / "hub", fleet_repo, insecure=True, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        agent = Agent(SpokeSettings(hub=hub.grpc_address, cluster=name, token=await admin.token(), insecure=True,
                                    health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(name)))
        agent.start()
        reader = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))
        state = CredentialStore(reader, namespace=agent.settings.namespace, name=agent.settings.state_secret)
        try:
            # The key pair is made in the cluster; the hub learns only the public half.
            async def known() -> str | None:
                row = await _summary(admin, name)
                return row.age_recipient if row is not None and row.age_recipient else None
            recipient = await poll(known, what="the cluster's age recipient at the hub")
            creds = await asyncio.to_thread(state.load)
            assert creds is not None and creds.age_identity.startswith("AGE-SECRET-KEY-1")
            assert sops.recipient_of(creds.age_identity) == recipient
            row = await _summary(admin, name)
            assert row is not None and row.age_recipient_changed.seconds > 0

            _, operator = sops.generate_identity()
            sealed_doc = sops.seal(SECRET, [recipient, operator])
            fleet_repo.commit({"apps/web/kustomization.yaml": KUSTOMIZATION,
                               "apps/web/db.sops.yaml": yaml.safe_dump(sealed_doc)}, "sealed db secret")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def applied() -> dict[str, Any] | None:
                return await asyncio.to_thread(reader.get, "v1", "Secret", "shop", "web-db")
            live = await poll(applied, what="the sealed Secret applied in the cluster")
            value = (live.get("data") or {}).get("password") or ""
            assert base64.b64decode(value).decode() == PASSWORD
            assert "sops" not in live
            assert live["metadata"]["labels"][bundles.LABEL_APP] == "web"

            # Audit: history says which sealed version the cluster was sent and applied, by ciphertext digest.
            version = f"Secret/shop/web-db {sops.ciphertext_digest(sealed_doc)[:19]}"

            async def audited() -> list[str] | None:
                with hub.db.session(write=False) as session:
                    found = [f"{e.kind} {e.message}" for e in session.exec(select(models.Event)).all()
                             if e.cluster == name and version in e.message]
                return found if len(found) >= 2 else None
            trail = await poll(audited, what="the sealed secret version in the cluster's history")
            assert any(t.startswith("desired_changed") for t in trail) and any(t.startswith("applied") for t in trail)
            history = await asyncio.to_thread(CliRunner().invoke, cli, ["history", name],
                                              env={"CONVOY_CONFIG": str(hub.cli_config_path)})
            assert version in history.output, history.output

            # Drift on the Secret: corrected, and reported as a changed value, never the value.
            def tamper(obj: dict[str, Any] | None) -> dict[str, Any]:
                assert obj is not None
                obj["data"]["password"] = base64.b64encode(b"changed-by-hand").decode()
                return obj
            await asyncio.to_thread(reader.update_with, "v1", "Secret", "shop", "web-db", tamper, manager="intruder")

            async def corrected() -> bool:
                now = await applied()
                return bool(now) and base64.b64decode(now["data"]["password"]).decode() == PASSWORD  # type: ignore[index]
            await poll(corrected, what="the drifted Secret to be corrected")

            async def drift_recorded() -> list[str] | None:
                with hub.db.session(write=False) as session:
                    found = [e.message for e in session.exec(select(models.Event)).all()
                             if "drift" in e.message and "web-db" in e.message]
                return found or None
            drift_events = await poll(drift_recorded, what="the Secret's drift in history")
            assert any(".data.password desired <redacted>, live <redacted>" in m for m in drift_events), drift_events

            # Everything the hub keeps is ciphertext.
            with hub.db.session(write=False) as session:
                stored = [bundles.decompress(b.data, max_size=1 << 26)
                          for b in session.exec(select(models.Bundle)).all()]
                events = [(e.message, e.details) for e in session.exec(select(models.Event)).all()]
                statuses = [s.model_dump() for s in session.exec(select(models.ClusterStatus)).all()]
            assert stored and any(b"ENC[AES256_GCM" in b for b in stored)
            for text in [*stored, str(events).encode(), str(statuses).encode(), caplog.text.encode()]:
                for value in (PASSWORD, "changed-by-hand"):
                    assert value.encode() not in text
                    assert base64.b64encode(value.encode()) not in text
        finally:
            await asyncio.to_thread(agent.stop)
            agent.client.close()
            reader.close()


async def test_a_file_written_by_sops_in_its_own_key_order_is_applied(
        tmp_path: Path, fleet_repo: FleetRepo, kube: tuple[Any, str]) -> None:
    # What the sops tool writes by default: keys in the document's order (username before password) and a
    # MAC over every value, metadata included, which the hub's namespace and app label then change.
    kubesim_server, name = kube
    fleet_repo.commit({"apps/web/namespace.yaml": NAMESPACE, "apps/web/kustomization.yaml":
                       KUSTOMIZATION.replace(", db.sops.yaml", "")}, "the shop namespace")
    settings = hub_settings(tmp_path / "hub", fleet_repo, insecure=True, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        agent = Agent(SpokeSettings(hub=hub.grpc_address, cluster=name, token=await admin.token(), insecure=True,
                                    health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(name)))
        agent.start()
        reader = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))
        try:
            async def known() -> str | None:
                row = await _summary(admin, name)
                return row.age_recipient if row is not None and row.age_recipient else None
            recipient = await poll(known, what="the cluster's age recipient at the hub")
            unsorted = {**SECRET, "metadata": {"name": "web-db", "labels": {"tier": "db"}},
                        "stringData": {"username": "shop", "password": PASSWORD}}
            written = yaml.safe_dump(sops.seal(unsorted, [recipient], keep_order=True, mac_only_encrypted=False),
                                     sort_keys=False)
            assert written.index("username:") < written.index("password:")
            assert "mac_only_encrypted" not in written
            fleet_repo.commit({"apps/web/kustomization.yaml": KUSTOMIZATION,
                               "apps/web/db.sops.yaml": written}, "db secret sealed by sops")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def applied() -> dict[str, Any] | None:
                live = await asyncio.to_thread(reader.get, "v1", "Secret", "shop", "web-db")
                row = await _summary(admin, name)
                assert row is None or not [e for e in row.errors if "web-db" in e], row.errors
                return live
            live = await poll(applied, what="the sealed Secret applied in the cluster")
            values = {k: base64.b64decode(v).decode() for k, v in (live.get("data") or {}).items()}
            assert values == {"username": "shop", "password": PASSWORD}
            assert live["metadata"]["labels"]["tier"] == "db"
        finally:
            await asyncio.to_thread(agent.stop)
            agent.client.close()
            reader.close()


async def test_bad_sealed_files_are_refused_by_name_and_the_last_state_stays(
        tmp_path: Path, fleet_repo: FleetRepo, kube: tuple[Any, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kubesim_server, name = kube
    fleet_repo.commit({"apps/web/namespace.yaml": NAMESPACE, "apps/web/kustomization.yaml":
                       KUSTOMIZATION.replace(", db.sops.yaml", "")}, "the shop namespace")
    settings = hub_settings(tmp_path / "hub", fleet_repo, insecure=True, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        agent = Agent(SpokeSettings(hub=hub.grpc_address, cluster=name, token=await admin.token(), insecure=True,
                                    health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(name)))
        agent.start()
        reader = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))
        other_ident = await _register(admin, ch, "other", {})
        other = sops.recipient_of(other_ident)
        new_config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  version: '2'\n"
        try:
            async def config_applied() -> dict[str, Any] | None:
                return await asyncio.to_thread(reader.get, "v1", "ConfigMap", "shop", "web-config")
            await poll(config_applied, what="the first bundle applied")
            recipient = (await _summary(admin, name) or pb.ClusterSummary()).age_recipient

            # Sealed for this cluster, but a value was removed after sealing: only the spoke can tell.
            tampered = sops.seal(SECRET | {"stringData": {"password": PASSWORD, "user": "web"}}, [recipient, other])
            del tampered["stringData"]["user"]
            fleet_repo.commit({"apps/web/kustomization.yaml": KUSTOMIZATION, "apps/web/configmap.yaml": new_config,
                               "apps/web/db.sops.yaml": yaml.safe_dump(tampered)}, "tampered")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def refused() -> list[str] | None:
                row = await _summary(admin, name)
                errs = [e for e in (row.errors if row is not None else []) if "Secret/shop/web-db" in e]
                return errs or None
            errors = await poll(refused, what="the spoke to report the refused bundle")
            assert "MAC does not verify" in errors[0] and "app web" in errors[0], errors
            assert "Secret/shop/web-db (app web, file apps/web/db.sops.yaml)" in errors[0], errors
            live = await config_applied()
            assert live is not None and (live.get("data") or {}).get("version") == "1", "the last state stays"
            assert await asyncio.to_thread(reader.get, "v1", "Secret", "shop", "web-db") is None

            # Sealed for another cluster only: the hub refuses to render it for this one, the other moves on.
            fleet_repo.commit({"apps/web/db.sops.yaml": _sealed_file([other])}, "sealed for someone else")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def render_refused() -> list[str] | None:
                row = await _summary(admin, name)
                errs = [e for e in (row.render_errors if row is not None else []) if "Secret/shop/web-db" in e]
                return errs or None
            render_errors = await poll(render_refused, what="the hub's render error for this cluster")
            assert f"not sealed for cluster {name}" in render_errors[0] and "web" in render_errors[0]
            assert "file apps/web/db.sops.yaml" in render_errors[0], render_errors
            moved = await _summary(admin, "other")
            assert moved is not None and moved.desired_commit == fleet_repo.head() and not moved.render_errors
            assert PASSWORD not in caplog.text
        finally:
            await asyncio.to_thread(agent.stop)
            agent.client.close()
            reader.close()


# -- the CLI: convoy keys, convoy seal, convoy seal --refresh -------------------------------------------


async def _register(admin: Any, ch: Any, name: str, labels: dict[str, str]) -> str:
    ident, recipient = sops.generate_identity()
    await pb_grpc.SpokeServiceStub(ch).Register(pb.RegisterRequest(
        bootstrap_token=await admin.token(), cluster_name=name, labels=labels, spoke_version="test",
        age_recipient=recipient))
    return ident


def test_keys_seal_and_refresh_when_a_cluster_joins(tmp_path: Path, fleet_repo: FleetRepo,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    op_ident, operator = sops.generate_identity()
    (tmp_path / "operator.txt").write_text(f"# operator\n{op_ident}\n")
    secret = tmp_path / "db.yaml"
    secret.write_text(yaml.safe_dump(SECRET) + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")

    async def scenario() -> None:
        async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
            admin = admin_of(hub, ch)
            eu = await _register(admin, ch, "prod-eu", {"env": "prod"})
            await _register(admin, ch, "dev-1", {"env": "dev"})
            monkeypatch.setenv("CONVOY_CONFIG", str(hub.cli_config_path))
            runner = CliRunner()

            listed = await asyncio.to_thread(runner.invoke, cli, ["keys", "-l", "env=prod", "-o", "json"])
            assert listed.exit_code == 0, listed.output
            rows = json.loads(listed.output)["clusters"]
            assert [r["cluster"] for r in rows] == ["prod-eu"]
            assert rows[0]["recipient"] == sops.recipient_of(eu) and rows[0]["changed"]
            described = await asyncio.to_thread(runner.invoke, cli, ["describe", "prod-eu"])
            assert described.exit_code == 0, described.output
            assert f"Age key  {sops.recipient_of(eu)}" in described.output

            sealed = await asyncio.to_thread(runner.invoke, cli, ["seal", "-i", "-l", "env=prod", "--recipient",
                                                                  operator, str(secret)])
            assert sealed.exit_code == 0, sealed.output
            text = secret.read_text()
            assert PASSWORD not in text and "-----BEGIN AGE ENCRYPTED FILE-----" in text
            docs = list(yaml.safe_load_all(text))
            assert docs[1]["kind"] == "ConfigMap" and "sops" not in docs[1]
            assert set(sops.recipients(docs[0])) == {sops.recipient_of(eu), operator}
            assert sops.open_document(docs[0], [eu])["stringData"]["password"] == PASSWORD

            # A new prod cluster joins: one command re-seals for it, with the operator's key.
            us = await _register(admin, ch, "prod-us", {"env": "prod"})
            refreshed = await asyncio.to_thread(runner.invoke, cli, ["seal", "--refresh", "-i", "--identity",
                                                                     str(tmp_path / "operator.txt"), str(secret)])
            assert refreshed.exit_code == 0, refreshed.output
            assert "re-sealed for 3 recipient(s) (+1 -0)" in refreshed.output
            again = next(yaml.safe_load_all(secret.read_text()))
            assert sops.open_document(again, [us])["stringData"]["password"] == PASSWORD
            same = await asyncio.to_thread(runner.invoke, cli, ["seal", "--refresh", "-i", "--identity",
                                                                str(tmp_path / "operator.txt"), str(secret)])
            assert same.exit_code == 0 and "up to date" in same.output

            unknown = await asyncio.to_thread(runner.invoke, cli, ["seal", "--cluster", "nope", str(secret)])
            assert unknown.exit_code == 1 and "unknown cluster(s): nope" in unknown.output
    asyncio.run(scenario())


async def test_register_refuses_a_recipient_that_is_not_an_age_key(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        with pytest.raises(aio.AioRpcError) as err:
            await pb_grpc.SpokeServiceStub(ch).Register(pb.RegisterRequest(
                bootstrap_token=await admin.token(), cluster_name="x", spoke_version="test",
                age_recipient="ssh-ed25519 AAAA"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cluster x: age_recipient: unsupported recipient type" in (err.value.details() or "")


def test_the_cluster_key_survives_a_credential_saved_without_it(kube: tuple[Any, str]) -> None:
    kubesim_server, name = kube
    client = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))
    try:
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "convoy-system"}}, manager="t")
        state = CredentialStore(client, namespace="convoy-system", name="convoy-spoke-state")
        ident, _ = sops.generate_identity()
        state.save_identity(ident)  # made before Register, so a failed registration keeps it too
        assert state.load() is None and state.load_identity() == ident
        state.save(Credentials(cluster=name, hub="h:1", credential="c", signing_key=b"k" * 32))
        loaded = state.load()
        assert loaded is not None and loaded.age_identity == ident and loaded.credential == "c"
    finally:
        client.close()


async def test_a_key_sent_with_watch_is_stored_and_the_cluster_rendered_with_its_secrets(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    # A spoke registered before sealed secrets has no key at the hub: the first one arrives with Watch.
    ident, recipient = sops.generate_identity()
    fleet_repo.commit({"apps/web/namespace.yaml": NAMESPACE, "apps/web/kustomization.yaml": KUSTOMIZATION,
                       "apps/web/db.sops.yaml": _sealed_file([recipient])}, "sealed before the key is known")
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        spoke = Spoke(ch)
        await spoke.register(await admin.token(), "late")

        async def keyless() -> list[str] | None:
            row = await _summary(admin, "late")
            return list(row.render_errors) if row is not None and row.render_errors else None
        errors = await poll(keyless, what="the render error of a cluster without a key")
        assert "Secret/shop/web-db: sealed secret, but cluster late has no age key at the hub yet" in errors[0]

        stream = spoke.stub.Watch(pb.WatchRequest(age_recipient=recipient), metadata=spoke.metadata)
        desired = await next_desired(stream)
        bundle, _ = await spoke.bundle(desired.digest)
        sealed_objects = [o for o in bundle["objects"] if o["kind"] == "Secret"]
        assert sops.open_document(sealed_objects[0], [ident])["stringData"]["password"] == PASSWORD
        row = await _summary(admin, "late")
        assert row is not None and row.age_recipient == recipient and not row.render_errors
        with hub.db.session(write=False) as session:
            kinds = [e.kind for e in session.exec(select(models.Event)).all() if e.cluster == "late"]
        assert kinds.count(models.EventKind.AGE_KEY.value) == 1
        stream.cancel()

        # A malformed key is refused by name.
        bad = spoke.stub.Watch(pb.WatchRequest(age_recipient="age1nope"), metadata=spoke.metadata)
        with pytest.raises(aio.AioRpcError) as err:
            await bad.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "watch of cluster late: age_recipient: malformed age recipient" in (err.value.details() or "")


async def test_a_plaintext_secret_under_sealed_only_is_a_render_error_and_the_last_bundle_stays(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    sealed_only = FLEET_YAML + "secrets: sealedOnly\n"
    first = fleet_repo.commit({"fleet.yaml": sealed_only}, "secrets: sealedOnly")
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        await _register(admin, ch, "c1", {})

        async def rendered() -> pb.ClusterSummary | None:
            row = await _summary(admin, "c1")
            return row if row is not None and row.desired_commit == first else None
        good = await poll(rendered, what="the first good bundle")

        plaintext = yaml.safe_dump(SECRET)
        fleet_repo.commit({"apps/web/namespace.yaml": NAMESPACE, "apps/web/kustomization.yaml": KUSTOMIZATION,
                           "apps/web/db.sops.yaml": plaintext}, "a plaintext Secret")
        await admin.call("SyncNow", pb.SyncNowRequest())

        async def refused() -> list[str] | None:
            row = await _summary(admin, "c1")
            return list(row.render_errors) if row is not None and row.render_errors else None
        errors = await poll(refused, what="the render error of the plaintext Secret")
        assert "Secret/shop/web-db: plaintext Secret, but fleet.yaml says secrets: sealedOnly" in errors[0], errors
        assert "web" in errors[0] and PASSWORD not in errors[0]
        row = await _summary(admin, "c1")
        assert row is not None and row.desired_commit == first and row.desired_digest == good.desired_digest

        # Without the setting, the same Secret renders (validate warns about it instead).
        third = fleet_repo.commit({"fleet.yaml": FLEET_YAML}, "secrets: warn")
        await admin.call("SyncNow", pb.SyncNowRequest())

        async def moved() -> pb.ClusterSummary | None:
            row = await _summary(admin, "c1")
            return row if row is not None and row.desired_commit == third and not row.render_errors else None
        await poll(moved, what="the bundle with the Secret")


async def test_keys_rotate_gives_the_cluster_a_new_key_and_files_sealed_for_the_old_one_still_open(
        tmp_path: Path, fleet_repo: FleetRepo, kube: tuple[Any, str], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kubesim_server, name = kube
    fleet_repo.commit({"apps/web/namespace.yaml": NAMESPACE, "apps/web/kustomization.yaml":
                       KUSTOMIZATION.replace(", db.sops.yaml", "")}, "the shop namespace")
    settings = hub_settings(tmp_path / "hub", fleet_repo, insecure=True, heartbeat_seconds=60)
    async with running_hub(settings) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        monkeypatch.setenv("CONVOY_CONFIG", str(hub.cli_config_path))
        runner = CliRunner()
        spoke_now = [dt.datetime(2026, 3, 1, tzinfo=dt.UTC)]   # the spoke's wall clock, moved by the test
        agent = Agent(SpokeSettings(hub=hub.grpc_address, cluster=name, token=await admin.token(), insecure=True,
                                    health_port=0, health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0,
                                    previous_age_key_grace=3 * 24 * 3600.0),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(name)),
                      clock=lambda: spoke_now[0])
        agent.start()
        reader = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))

        async def password() -> str | None:
            live = await asyncio.to_thread(reader.get, "v1", "Secret", "shop", "web-db")
            return base64.b64decode(live["data"]["password"]).decode() if live and live.get("data") else None

        async def recipient() -> str | None:
            row = await _summary(admin, name)
            return row.age_recipient if row is not None and row.age_recipient else None
        try:
            first = await poll(recipient, what="the cluster's first key at the hub")
            fleet_repo.commit({"apps/web/kustomization.yaml": KUSTOMIZATION,
                               "apps/web/db.sops.yaml": _sealed_file([first])}, "sealed for the first key")
            await admin.call("SyncNow", pb.SyncNowRequest())
            assert await poll(password, what="the sealed Secret applied") == PASSWORD

            rotated = await asyncio.to_thread(runner.invoke, cli, ["keys", "rotate", name])
            assert rotated.exit_code == 0, rotated.output
            assert f"cluster {name}: age key rotation requested" in rotated.output

            async def new_key() -> str | None:
                key = await recipient()
                return key if key != first else None
            second = await poll(new_key, what="the spoke's new key at the hub")
            # Both keys are in the spoke's state Secret, so a restarted spoke still opens old-key files.
            kept = await asyncio.to_thread(
                CredentialStore(reader, namespace="convoy-system", name="convoy-spoke-state").load)
            assert kept is not None and sops.recipient_of(kept.age_identity) == second
            assert sops.recipient_of(kept.age_identity_previous) == first
            assert kept.age_identity_previous_since == spoke_now[0]
            listed = await asyncio.to_thread(runner.invoke, cli, ["keys", "-o", "json"])
            row = next(r for r in json.loads(listed.output)["clusters"] if r["cluster"] == name)
            assert row["recipient"] == second and row["changed"]
            history = await asyncio.to_thread(runner.invoke, cli, ["history", name])
            assert "age key rotation requested" in history.output and "(rotated;" in history.output, history.output

            # A file still sealed for the old key: the hub renders it for the cluster, the spoke opens it.
            fleet_repo.commit({"apps/web/configmap.yaml":
                               "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n"
                               "  version: '2'\n"}, "a new bundle, the Secret not re-sealed yet")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def config_v2() -> bool | None:
                live = await asyncio.to_thread(reader.get, "v1", "ConfigMap", "shop", "web-config")
                return True if live and (live.get("data") or {}).get("version") == "2" else None
            await poll(config_v2, what="the bundle with the old-key Secret applied")
            summary = await _summary(admin, name)
            assert summary is not None and not summary.render_errors and not summary.errors, summary

            # Re-sealed for the new key only: it opens with the new key.
            new_secret = SECRET | {"stringData": {"password": "rotated-value"}}
            fleet_repo.commit({"apps/web/db.sops.yaml": yaml.safe_dump(sops.seal(new_secret, [second]),
                                                                       sort_keys=False)}, "re-sealed")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def rotated_value() -> str | None:
                value = await password()
                return value if value == "rotated-value" else None
            await poll(rotated_value, what="the re-sealed Secret applied")

            # Past --previous-age-key-grace the spoke drops the old key: a file sealed only for it is refused.
            spoke_now[0] += dt.timedelta(days=3, seconds=1)
            fleet_repo.commit({"apps/web/db.sops.yaml": _sealed_file([first])}, "sealed for the old key again")
            await admin.call("SyncNow", pb.SyncNowRequest())

            async def refused() -> list[str] | None:
                row = await _summary(admin, name)
                return [e for e in row.errors if "Secret/shop/web-db" in e] or None if row is not None else None
            errors = await poll(refused, what="the spoke to refuse the file sealed for its dropped key")
            assert "not sealed for this key" in errors[0] and "file apps/web/db.sops.yaml" in errors[0], errors
            assert await password() == "rotated-value", "what was applied last stays"
            kept = await asyncio.to_thread(
                CredentialStore(reader, namespace="convoy-system", name="convoy-spoke-state").load)
            assert kept is not None and sops.recipient_of(kept.age_identity) == second
            assert kept.age_identity_previous == "" and kept.age_identity_previous_since is None
            assert PASSWORD not in caplog.text and "rotated-value" not in caplog.text
            assert "AGE-SECRET-KEY" not in caplog.text
        finally:
            await asyncio.to_thread(agent.stop)
            agent.client.close()
            reader.close()
