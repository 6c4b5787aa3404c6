"""Bundles as OCI artifacts (issue 19), against a real hub on port 0 and ``skopeo`` as an independent
OCI client: the hub's ``/v2/`` read API serves each cluster its own bundles under the cluster's
credential, ``skopeo inspect`` reads them, ``skopeo copy`` writes an OCI layout that
``convoy bundle verify`` accepts with the hub's public key, and tampering is caught.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from hub import metrics as metrics_mod
from hub.cli import cli
from hub.commands import hubserve
from hub.publish import pushing
from hub.security import signing
from hub.store import repository as store
from protos import bundle as bundles
from protos import oci
from spoke import pulling
from spoke.agent import Agent
from spoke.cluster import ClusterClient
from spoke.settings import SpokeSettings
from tests.integration.hub_harness import (
    FleetRepo,
    admin_of,
    channel,
    configmap,
    convoy,
    docker_registry,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
    standard_fleet,
)
from tests.polling import poll

SKOPEO = shutil.which("skopeo") or "skopeo"  # .ci/run installs it; a missing one fails, never skips


async def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [str(SKOPEO), *args], capture_output=True, text=True,
                                   timeout=60, check=False)


def _ref(hub: hubserve.RunningHub, tag: str) -> str:
    """On the plain HTTP port: only a hub with oci_plain_http (a sandbox) serves /v2/ there."""
    return f"docker://127.0.0.1:{hub.http_port}/convoy/bundles:{tag}"


def _tls_ref(hub: hubserve.RunningHub, tag: str) -> str:
    return f"docker://127.0.0.1:{hub.registry_port}/convoy/bundles:{tag}"


def _cert_dir(hub: hubserve.RunningHub, tmp_path: Path) -> Path:
    """A skopeo ``--cert-dir``: the hub's CA as ``ca.crt``."""
    certs = tmp_path / "certs"
    certs.mkdir(exist_ok=True)
    (certs / "ca.crt").write_bytes(hub.ca_pem)
    return certs


def _public_key(hub: hubserve.RunningHub, tmp_path: Path) -> Path:
    key = signing.load_or_create_signing_key(Path(hub.settings.data_dir))
    path = tmp_path / "hub-signing.pub"
    path.write_bytes(signing.public_key_bytes(key))
    return path


async def test_skopeo_inspects_and_copies_a_bundle_the_hub_serves_and_convoy_verifies_it(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo)
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        desired = await next_desired(alpha.watch())
        short = desired.commit[:7]
        certs = _cert_dir(hub, tmp_path)

        # /v2/ is served over TLS with the hub's certificate (the CA spokes pin), not on the plain port.
        inspected = await _skopeo("inspect", "--raw", "--cert-dir", str(certs), "--creds", f"alpha:{alpha.credential}",
                                  _tls_ref(hub, "alpha-latest"))
        assert inspected.returncode == 0, inspected.stderr
        manifest: dict[str, Any] = json.loads(inspected.stdout)
        assert manifest["artifactType"] == oci.ARTIFACT_TYPE
        assert manifest["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] == desired.digest
        assert manifest["annotations"]["org.opencontainers.image.revision"] == desired.commit
        [layer] = manifest["layers"]
        assert layer["mediaType"] == oci.LAYER_MEDIA_TYPE

        plain = await _skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"alpha:{alpha.credential}",
                              _ref(hub, "alpha-latest"))
        assert plain.returncode != 0
        untrusted = await _skopeo("inspect", "--raw", "--creds", f"alpha:{alpha.credential}",
                                  _tls_ref(hub, "alpha-latest"))
        assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower()

        config = await _skopeo("inspect", "--config", "--raw", "--cert-dir", str(certs), "--creds",
                               f"alpha:{alpha.credential}", _tls_ref(hub, f"alpha-{short}"))
        assert config.returncode == 0, config.stderr
        assert json.loads(config.stdout) | {"created": ""} == {
            "cluster": "alpha", "commit": desired.commit, "source": str(fleet_repo.path), "apps": ["web"],
            "objects": 1, "created": "", "bundleDigest": desired.digest}

        layout = tmp_path / "layout"
        copied = await _skopeo("copy", "--src-cert-dir", str(certs), "--src-creds", f"alpha:{alpha.credential}",
                               _tls_ref(hub, "alpha-latest"), f"oci:{layout}:alpha-latest")
        assert copied.returncode == 0, copied.stderr

        key = _public_key(hub, tmp_path)
        result = CliRunner().invoke(cli, ["bundle", "verify", str(layout), "--public-key", str(key)])
        assert result.exit_code == 0, result.output
        assert f"alpha {short} {desired.digest}" in result.output and "signature good" in result.output

        # One byte of the layer changed: the digest check refuses it, naming the blob.
        [layer_file] = [p for p in (layout / "blobs" / "sha256").iterdir()
                        if p.name == layer["digest"].removeprefix("sha256:")]
        data = bytearray(layer_file.read_bytes())
        data[-1] ^= 1
        layer_file.write_bytes(bytes(data))
        tampered = CliRunner().invoke(cli, ["bundle", "verify", str(layout), "--public-key", str(key)])
        assert tampered.exit_code == 1
        assert f"blob {layer['digest']}" in tampered.output and "does not match its digest" in tampered.output


async def test_a_cluster_reads_only_its_own_bundles_and_the_admin_reads_all(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, oci_plain_http=True)  # the sandbox's plain /v2/
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        beta = await registered_spoke(hub, ch, "beta")
        alpha_desired = await next_desired(alpha.watch())
        await next_desired(beta.watch())
        base = f"http://127.0.0.1:{hub.http_port}/v2/convoy/bundles"
        admin_credential = hub.admin_credential_path.read_text().strip()

        async with aiohttp.ClientSession() as http:
            async def tags(credential: str) -> list[str]:
                async with http.get(f"{base}/tags/list",
                                    headers={"Authorization": f"Bearer {credential}"}) as response:
                    assert response.status == 200
                    return list((await response.json())["tags"])

            assert await tags(alpha.credential) == ["alpha-" + alpha_desired.commit[:7], "alpha-latest"]
            assert sorted(await tags(admin_credential)) == sorted(
                [f"{name}-{alpha_desired.commit[:7]}" for name in ("alpha", "beta")] + ["alpha-latest", "beta-latest"])

            async with http.get(f"{base}/manifests/alpha-latest") as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Basic")
            async with http.get(f"{base}/manifests/alpha-latest",
                                headers={"Authorization": "Bearer not-a-credential"}) as response:
                assert response.status == 401
                assert "not-a-credential" not in await response.text()

        # beta's credential does not see alpha's tag, through a real client too.
        refused = await _skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"beta:{beta.credential}",
                                _ref(hub, "alpha-latest"))
        assert refused.returncode != 0 and "manifest unknown" in refused.stderr.lower()

        # The signature artifact refers to the bundle manifest (OCI 1.1 referrers).
        inspected = await _skopeo("inspect", "--raw", "--tls-verify=false", "--creds", f"alpha:{alpha.credential}",
                                  _ref(hub, "alpha-latest"))
        manifest_digest = oci.Blob(oci.MANIFEST_MEDIA_TYPE, inspected.stdout.encode()).digest
        async with aiohttp.ClientSession() as http, http.get(
                f"{base}/referrers/{manifest_digest}",
                headers={"Authorization": f"Bearer {alpha.credential}"}) as response:
            assert response.status == 200
            index = json.loads(await response.read())
        [referrer] = index["manifests"]
        assert referrer["artifactType"] == oci.SIGNATURE_ARTIFACT_TYPE
        signature_manifest = await _skopeo("inspect", "--raw", "--tls-verify=false", "--creds",
                                           f"alpha:{alpha.credential}",
                                           f"docker://127.0.0.1:{hub.http_port}/convoy/bundles@{referrer['digest']}")
        assert signature_manifest.returncode == 0, signature_manifest.stderr
        assert json.loads(signature_manifest.stdout)["subject"]["digest"] == manifest_digest


async def test_convoy_bundle_export_writes_a_layout_that_skopeo_reads_and_verify_accepts(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, oci_plain_http=True)
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        desired = await next_desired(alpha.watch())
        # The TLS registry port, verified with the CA in the CLI config the hub wrote.
        env = {"CONVOY_CONFIG": str(hub.cli_config_path), "CONVOY_REGISTRY": f"https://127.0.0.1:{hub.registry_port}"}
        runner = CliRunner()  # the CLI blocks on HTTP to this very event loop: it runs in a thread

        listed = await asyncio.to_thread(runner.invoke, cli, ["bundle", "ls", "alpha"], env=env)
        assert listed.exit_code == 0, listed.output
        lines = listed.output.splitlines()
        assert [line.split()[0] for line in lines] == [f"alpha-{desired.commit[:7]}", "alpha-latest"]
        assert all(desired.digest[:19] in line and line.endswith(f"/convoy/bundles:{line.split()[0]}")
                   for line in lines)

        layout = tmp_path / "exported"
        exported = await asyncio.to_thread(runner.invoke, cli,
                                           ["bundle", "export", "alpha", "--commit", desired.commit[:10], str(layout)],
                                           env=env)
        assert exported.exit_code == 0, exported.output
        assert desired.digest in exported.output

        read_back = await _skopeo("inspect", "--raw", f"oci:{layout}:alpha-{desired.commit[:7]}")
        assert read_back.returncode == 0, read_back.stderr
        assert json.loads(read_back.stdout)["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] == desired.digest
        verified = await asyncio.to_thread(runner.invoke, cli, ["bundle", "verify", str(layout), "--public-key",
                                       str(Path(hub.settings.data_dir) / "signing.pub")])
        assert verified.exit_code == 0, verified.output
        assert f"alpha {desired.commit[:7]} {desired.digest}: 1 objects, digest good, signature good" in verified.output

        # A key that is not the hub's: refused, naming the bundle.
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        other = tmp_path / "other.pub"
        other.write_bytes(ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        wrong = await asyncio.to_thread(runner.invoke, cli,
                                        ["bundle", "verify", str(layout), "--public-key", str(other)])
        assert wrong.exit_code == 1
        assert f"bundle {desired.digest}: signature does not verify with the hub's key" in wrong.output

        # The hub's own /v2/ by reference, with a credential file.
        by_ref = await asyncio.to_thread(runner.invoke, cli, [
            "bundle", "verify", f"127.0.0.1:{hub.http_port}/convoy/bundles:alpha-latest", "--insecure",
            "--credential-file", str(hub.admin_credential_path), "--public-key",
            str(Path(hub.settings.data_dir) / "signing.pub")])
        assert by_ref.exit_code == 0, by_ref.output
        # ...and over TLS on the registry port, checked with the hub's CA.
        ca = tmp_path / "hub-ca.pem"
        ca.write_bytes(hub.ca_pem)
        over_tls = await asyncio.to_thread(runner.invoke, cli, [
            "bundle", "verify", f"127.0.0.1:{hub.registry_port}/convoy/bundles:alpha-latest", "--ca-file", str(ca),
            "--credential-file", str(hub.admin_credential_path), "--public-key",
            str(Path(hub.settings.data_dir) / "signing.pub")])
        assert over_tls.exit_code == 0, over_tls.output
        assert "signature good" in over_tls.output
        missing = await asyncio.to_thread(runner.invoke, cli,
                                          ["bundle", "export", "alpha", "--commit", "0000000", str(tmp_path / "x")],
                                          env=env)
        assert missing.exit_code == 1 and "no tag 'alpha-0000000'" in missing.output


# -- --oci-push to a real registry (CNCF Distribution, Debian's docker-registry) ------------------------

async def test_the_hub_pushes_bundles_and_signatures_to_a_real_registry_idempotently(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    with docker_registry(tmp_path / "registry") as registry:
        target = f"{registry}/fleet/bundles"
        settings = hub_settings(tmp_path / "hub", fleet_repo, oci_push=target, oci_push_insecure=True,
                                oci_push_interval=0.2)
        async with running_hub(settings) as hub, channel(hub) as ch:
            alpha = await registered_spoke(hub, ch, "alpha")
            desired = await next_desired(alpha.watch())

            async def pushed(tag: str) -> subprocess.CompletedProcess[str] | None:
                result = await _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}:{tag}")
                return result if result.returncode == 0 else None

            inspected = await poll(lambda: pushed("alpha-latest"), timeout=20, what="alpha-latest in the registry")
            manifest = json.loads(inspected.stdout)
            assert manifest["annotations"][oci.ANNOTATION_BUNDLE_DIGEST] == desired.digest
            assert await pushed(f"alpha-{desired.commit[:7]}") is not None
            # Distribution 2.8 has no referrers API: the signature is listed under the fallback tag.
            manifest_digest = oci.Blob(oci.MANIFEST_MEDIA_TYPE, inspected.stdout.encode()).digest
            fallback = await pushed(manifest_digest.replace(":", "-"))
            assert fallback is not None
            [referrer] = json.loads(fallback.stdout)["manifests"]
            assert referrer["artifactType"] == oci.SIGNATURE_ARTIFACT_TYPE

            # skopeo copies it out of the registry; convoy verifies the copy offline.
            layout = tmp_path / "from-registry"
            copied = await _skopeo("copy", "--src-tls-verify=false", f"docker://{target}:alpha-latest",
                                   f"oci:{layout}:alpha-latest")
            assert copied.returncode == 0, copied.stderr
            verified = CliRunner().invoke(cli, ["bundle", "verify", str(layout), "--public-key",
                                                str(Path(hub.settings.data_dir) / "signing.pub")])
            assert verified.exit_code == 0, verified.output
            # ...and straight from the registry by reference.
            by_ref = await asyncio.to_thread(CliRunner().invoke, cli, [
                "bundle", "verify", f"{target}:alpha-latest", "--insecure", "--public-key",
                str(Path(hub.settings.data_dir) / "signing.pub")])
            assert by_ref.exit_code == 0, by_ref.output
            assert (f"alpha {desired.commit[:7]} {desired.digest}: 1 objects, digest good, signature good"
                    in by_ref.output)

            # Watch now names the pushed manifest, by digest, in the registry the hub pushed to.
            again = await next_desired(alpha.watch())
            assert again.oci_reference == f"{target}@{manifest_digest}"

            beta = await registered_spoke(hub, ch, "beta")
            await next_desired(beta.watch())
            await poll(lambda: pushed("beta-latest"), timeout=20, what="beta-latest in the registry")
            assert hub.metrics.oci_push_lag._value.get() == 0
            # convoy status says the pushes are done, in the header and in -o json.
            table = await convoy(hub, tmp_path, "status")
            assert f"OCI push to {target}: up to date" in table.output, table.output
            document = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
            assert document["ociPush"] == {"target": target, "pending": 0, "oldestSeconds": 0}
            # A pusher of a new leader reads what was pushed from the database: nothing to do.
            fresh_metrics = metrics_mod.HubMetrics()
            fresh = hubserve._pusher(settings, hub.db, fresh_metrics)
            assert fresh is not None
            assert (await asyncio.to_thread(fresh.push_once)).pushed == 0
            # Even one that remembers nothing at all (an emptied ledger) re-sends no blob.
            fresh.ledger = pushing.MemoryLedger()
            outcome = await asyncio.to_thread(fresh.push_once)
            assert outcome.failed == () and outcome.pushed == 2
            assert fresh_metrics.oci_blobs.labels(outcome="sent")._value.get() == 0
            assert fresh_metrics.oci_blobs.labels(outcome="skipped")._value.get() == 8

            # A new commit of clusters pushed before: their new blobs go up without a HEAD first (none
            # would have found them), and the new manifest's fallback index lists its signature.
            sent = hub.metrics.oci_blobs.labels(outcome="sent")._value.get()
            commit = fleet_repo.commit({"apps/web/configmap.yaml": configmap("2")}, message="web v2")
            await hub.service.sync_once(reason="test", force=True)
            newer = await poll(lambda: pushed(f"alpha-{commit[:7]}"), timeout=20, what="alpha's new commit pushed")
            await poll(lambda: pushed(f"beta-{commit[:7]}"), timeout=20, what="beta's new commit pushed")

            async def latest_moved() -> bool:
                latest = await pushed("alpha-latest")
                return latest is not None and latest.stdout == newer.stdout
            await poll(latest_moved, timeout=20, what="alpha-latest moved to the new commit")
            assert hub.metrics.oci_blobs.labels(outcome="sent")._value.get() == sent + 6  # config, layer, signature
            newer_digest = oci.Blob(oci.MANIFEST_MEDIA_TYPE, newer.stdout.encode()).digest
            newer_fallback = await pushed(newer_digest.replace(":", "-"))
            assert newer_fallback is not None
            [referrer] = json.loads(newer_fallback.stdout)["manifests"]
            assert referrer["artifactType"] == oci.SIGNATURE_ARTIFACT_TYPE


async def test_status_shows_the_push_backlog_and_watch_tells_the_spoke_after_the_wait(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    with socket.socket() as probe:  # a registry nobody runs
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    target = f"127.0.0.1:{dead}/fleet/bundles"
    settings = hub_settings(tmp_path / "hub", fleet_repo, oci_push=target, oci_push_insecure=True,
                            oci_push_interval=0.2, inline_bundle_bytes=0, oci_announce_wait=1.0)
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        started = asyncio.get_running_loop().time()
        # The bundle is not inlined and its push never lands: the notice waits oci_announce_wait, then
        # comes without a registry reference (the spoke uses GetBundle).
        desired = await next_desired(alpha.watch())
        assert asyncio.get_running_loop().time() - started >= 0.5
        assert desired.digest and desired.oci_reference == ""
        table = await convoy(hub, tmp_path, "status")
        assert f"OCI push to {target}: 1 pending, oldest " in table.output, table.output
        document = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
        assert document["ociPush"]["pending"] == 1 and document["ociPush"]["oldestSeconds"] > 0


# -- spokes with --bundle-source oci:// -----------------------------------------------------------------

async def _converge_with_source(tmp_path: Path, fleet_repo: FleetRepo, kubesim_server: Any, name: str,
                                source: Callable[[hubserve.RunningHub], str | None], **hub: Any) -> Agent:
    """A real spoke on a kubesim cluster, told to fetch bundles from ``source(hub)``; returns it after the
    hub's ConfigMap is in the cluster (the hub sends no bundle inline, so nothing comes for free)."""
    settings = hub_settings(tmp_path / "hub", fleet_repo, insecure=True, inline_bundle_bytes=0, **hub)
    setup = ClusterClient.from_config_dict(kubesim_server.kubeconfig(name))
    try:  # the standard fleet's app lives in a namespace it does not create
        setup.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, manager="test")
    finally:
        setup.close()
    async with running_hub(settings) as hub, channel(hub) as ch:
        token = await admin_of(hub, ch).token()
        agent = Agent(SpokeSettings(hub=hub.grpc_address, cluster=name, token=token, insecure=True, health_port=0,
                                    health_host="127.0.0.1", heartbeat=1.0, reconnect_cap=1.0,
                                    bundle_source=source(hub), bundle_source_insecure=True),
                      cluster=ClusterClient.from_config_dict(kubesim_server.kubeconfig(name)))
        agent.start()
        try:
            async def applied() -> dict[str, Any] | None:
                return await asyncio.to_thread(agent.client.get, "v1", "ConfigMap", "shop", "web-config")
            configmap = await poll(applied, timeout=30, what="the bundle's ConfigMap in the cluster")
            assert configmap["data"]["cluster"] == name
        finally:
            await asyncio.to_thread(agent.stop)
            agent.client.close()
        return agent


async def test_a_spoke_with_an_oci_bundle_source_converges_from_the_registry(
        tmp_path: Path, fleet_repo: FleetRepo, kubesim_server: Any, kube_cluster: str) -> None:
    # The hub's own /v2/ is the registry here: always consistent with Watch, so the pull cannot lose a race
    # against a push; the spoke's credential goes to it because it is the hub's host.
    agent = await _converge_with_source(tmp_path, fleet_repo, kubesim_server, kube_cluster,
                                        lambda hub: f"oci://127.0.0.1:{hub.http_port}/convoy/bundles")
    assert agent.bundle_pulls == {True: 1, False: 0}


async def test_a_spoke_without_a_bundle_source_pulls_from_the_registry_the_hub_announces(
        tmp_path: Path, fleet_repo: FleetRepo, kubesim_server: Any, kube_cluster: str) -> None:
    # No --bundle-source: the hub pushed the bundle, held the notice until then (oci_announce_wait) and
    # named the manifest; the spoke pulls it by digest from that registry with no credential of the hub's.
    with docker_registry(tmp_path / "registry") as registry:
        agent = await _converge_with_source(tmp_path, fleet_repo, kubesim_server, kube_cluster, lambda hub: None,
                                            oci_push=f"{registry}/fleet/bundles", oci_push_insecure=True,
                                            oci_push_interval=0.2, oci_announce_wait=30.0)
    assert agent.bundle_pulls == {True: 1, False: 0}


async def test_bundle_source_none_ignores_the_announced_registry(
        tmp_path: Path, fleet_repo: FleetRepo, kubesim_server: Any, kube_cluster: str) -> None:
    with docker_registry(tmp_path / "registry") as registry:
        agent = await _converge_with_source(tmp_path, fleet_repo, kubesim_server, kube_cluster, lambda hub: "none",
                                            oci_push=f"{registry}/fleet/bundles", oci_push_insecure=True,
                                            oci_push_interval=0.2, oci_announce_wait=30.0)
    assert agent.bundle_pulls == {True: 0, False: 0}  # GetBundle only


async def test_a_spoke_falls_back_to_getbundle_when_the_registry_fails(
        tmp_path: Path, fleet_repo: FleetRepo, kubesim_server: Any, kube_cluster: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    agent = await _converge_with_source(tmp_path, fleet_repo, kubesim_server, kube_cluster,
                                        lambda hub: f"oci://127.0.0.1:{dead}/convoy/bundles")
    assert agent.bundle_pulls[True] == 0 and agent.bundle_pulls[False] >= 1


async def test_retention_deletes_pushed_manifests_of_pruned_bundles(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    with docker_registry(tmp_path / "registry") as registry:
        target = f"{registry}/fleet/bundles"
        settings = hub_settings(tmp_path / "hub", fleet_repo, oci_push=target, oci_push_insecure=True,
                                oci_push_interval=0.2, bundle_retention=1)
        async with running_hub(settings) as hub, channel(hub) as ch:
            alpha = await registered_spoke(hub, ch, "alpha")
            watch = alpha.watch()
            first = await next_desired(watch)

            async def tags() -> list[str]:
                result = await _skopeo("list-tags", "--tls-verify=false", f"docker://{target}")
                return list(json.loads(result.stdout)["Tags"]) if result.returncode == 0 else []

            first_tag = f"alpha-{first.commit[:7]}"
            await poll(lambda: _has(tags, first_tag), timeout=20, what=f"{first_tag} pushed")
            for version in ("2", "3"):
                fleet_repo.commit({"apps/web/configmap.yaml": configmap(version)}, message=f"web v{version}")
                await hub.service.sync_once(reason="test", force=True)
            last = await next_desired(watch)
            while not last.commit.startswith(fleet_repo.head()[:7]):
                last = await next_desired(watch)
            # alpha ran nothing and keeps 1: bundles 1 and 2 are pruned, so are their pushed manifests.
            last_tag = f"alpha-{last.commit[:7]}"
            await poll(lambda: _has(tags, last_tag), timeout=20, what=f"{last_tag} pushed")
            async def gone(tag: str) -> bool:
                result = await _skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}:{tag}")
                return result.returncode != 0 and "manifest unknown" in result.stderr.lower()
            await poll(lambda: gone(first_tag), timeout=20, what=f"{first_tag} deleted from the registry")
            left = await tags()
            # The live bundle's tags and its signature's referrers fallback tag; nothing of the pruned ones.
            assert {tag for tag in left if not tag.startswith("sha256-")} == {last_tag, "alpha-latest"}
            assert len([tag for tag in left if tag.startswith("sha256-")]) == 1
            # The history keeps the digests.
            history = await asyncio.to_thread(_history_digests, hub, "alpha")
            assert first.digest in history and last.digest in history


async def _has(tags: Callable[[], Any], tag: str) -> bool:
    return tag in await tags()


def _history_digests(hub: hubserve.RunningHub, cluster: str) -> set[str]:
    with hub.db.session(write=False) as session:
        return {entry.digest for entry in store.desired_history(session, cluster, 100)}


async def test_bundle_retention_age_keeps_young_bundles(tmp_path: Path) -> None:
    async def stored_after_two_commits(age: float, where: str) -> set[str]:
        repo = FleetRepo(tmp_path / where / "fleet")
        standard_fleet(repo)
        settings = hub_settings(tmp_path / where / "hub", repo, bundle_retention=1, bundle_retention_age=age)
        async with running_hub(settings) as hub, channel(hub) as ch:
            alpha = await registered_spoke(hub, ch, "alpha")
            first = await next_desired(alpha.watch())
            for version in ("2", "3"):
                repo.commit({"apps/web/configmap.yaml": configmap(version)}, message=f"web v{version}")
                await hub.service.sync_once(reason="test", force=True)
            refs = await asyncio.to_thread(_history_digests, hub, "alpha")
            assert first.digest in refs  # the history keeps the digest either way
            with hub.db.session(write=False) as session:
                return {ref.digest for ref in store.bundle_refs(session, "alpha")} | (
                    {first.digest} if store.get_bundle(session, first.digest) else set())

    assert len(await stored_after_two_commits(3600, "young")) == 3   # younger than an hour: all kept
    assert len(await stored_after_two_commits(0, "pruned")) == 1     # only the desired one


# -- convoy bundle verify against a registry with the token flow and a credential helper ----------------

def _helper(tmp_path: Path, name: str, answer: dict[str, str]) -> Path:
    """A ``docker-credential-<name>`` on a private PATH directory; it logs the server it was asked for."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 3\ncat >> {tmp_path}/asked\necho >> {tmp_path}/asked\n"
                      f"echo '{json.dumps(answer)}'\n")
    script.chmod(0o755)
    return bin_dir


async def test_bundle_verify_uses_a_credential_helper_and_the_registry_token_flow(
        tmp_path: Path, monkeypatch: Any) -> None:
    from aiohttp import web
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    raw = bundles.encode({"apiVersion": bundles.API_VERSION, "kind": "Bundle", "apps": [{"name": "web"}],
                          "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]})
    digest = bundles.digest_of(raw)
    artifact = oci.build_from_stored(cluster="alpha", commit="c" * 40, source="https://git.example/fleet",
                                     bundle_digest=digest, compressed=bundles.compress(raw),
                                     signature=bundles.sign(key, digest),
                                     created=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    blobs = {blob.digest: blob.data for blob in (artifact.config, artifact.layer)}
    token_requests: list[dict[str, str]] = []

    async def token(request: web.Request) -> web.Response:
        token_requests.append(dict(request.query))
        expected = "Basic " + base64.b64encode(b"robot:s3cret").decode()
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        return web.json_response({"token": "pull-token"})

    def challenge(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == "Bearer pull-token":
            return None
        realm = f"http://{request.host}/token"
        return web.Response(status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="fake",'
                                                                     'scope="repository:fleet/bundles:pull"'})

    async def manifest(request: web.Request) -> web.Response:
        if (refused := challenge(request)) is not None:
            return refused
        assert request.match_info["reference"] == "alpha-latest"
        return web.Response(body=artifact.manifest.data, content_type=oci.MANIFEST_MEDIA_TYPE)

    async def blob(request: web.Request) -> web.Response:
        if (refused := challenge(request)) is not None:
            return refused
        return web.Response(body=blobs[request.match_info["digest"]])

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/fleet/bundles/manifests/{reference}", manifest)
    app.router.add_get("/v2/fleet/bundles/blobs/{digest}", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        registry = f"127.0.0.1:{port}"
        public = tmp_path / "signing.pub"
        public.write_bytes(signing.public_key_bytes(key))
        monkeypatch.setenv("PATH", f"{_helper(tmp_path, 'fake', {'Username': 'robot', 'Secret': 's3cret'})}"
                                   f":{os.environ['PATH']}")
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"credHelpers": {registry: "fake"}}))
        verify = ["bundle", "verify", f"{registry}/fleet/bundles:alpha-latest", "--insecure", "--public-key",
                  str(public)]

        anonymous = await asyncio.to_thread(CliRunner().invoke, cli, verify)
        assert anonymous.exit_code == 1 and "token request" in anonymous.output and "401" in anonymous.output

        verified = await asyncio.to_thread(CliRunner().invoke, cli, [*verify, "--docker-config", str(config)])
        assert verified.exit_code == 0, verified.output
        assert f"alpha ccccccc {digest}: 1 objects, digest good, signature good" in verified.output
        assert "s3cret" not in verified.output
        assert (tmp_path / "asked").read_text().split() == [registry]  # the helper was asked for this host
        assert token_requests[-1] == {"service": "fake", "scope": "repository:fleet/bundles:pull"}

        # credsStore is the fallback for every registry; a helper that is not installed is named.
        config.write_text(json.dumps({"credsStore": "absent"}))
        missing = await asyncio.to_thread(CliRunner().invoke, cli, [*verify, "--docker-config", str(config)])
        assert missing.exit_code == 1 and "docker-credential-absent" in missing.output
    finally:
        await runner.cleanup()


# -- the spoke's --registry-config: credential helpers, Basic and the token flow ------------------------

async def test_the_spoke_pulls_with_a_credential_helper_through_basic_or_the_token_flow(
        tmp_path: Path, monkeypatch: Any, caplog: Any) -> None:
    from aiohttp import web
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    raw = bundles.encode({"apiVersion": bundles.API_VERSION, "kind": "Bundle", "apps": [{"name": "web"}],
                          "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]})
    digest = bundles.digest_of(raw)
    artifact = oci.build_from_stored(cluster="alpha", commit="c" * 40, source="https://git.example/fleet",
                                     bundle_digest=digest, compressed=bundles.compress(raw),
                                     signature=bundles.sign(key, digest),
                                     created=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    basic = "Basic " + base64.b64encode(b"robot:s3cret").decode()
    mode = {"scheme": "bearer"}

    async def token(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != basic:
            return web.Response(status=401)
        return web.json_response({"token": "pull-token"})

    def challenge(request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == ("Bearer pull-token" if mode["scheme"] == "bearer" else basic):
            return None
        header = (f'Bearer realm="http://{request.host}/token",service="fake"' if mode["scheme"] == "bearer"
                  else 'Basic realm="fake"')
        return web.Response(status=401, headers={"WWW-Authenticate": header})

    async def manifest(request: web.Request) -> web.Response:
        if (refused := challenge(request)) is not None:
            return refused
        return web.Response(body=artifact.manifest.data, content_type=oci.MANIFEST_MEDIA_TYPE)

    async def blob(request: web.Request) -> web.Response:
        if (refused := challenge(request)) is not None:
            return refused
        return web.Response(body=artifact.layer.data)

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/fleet/bundles/manifests/{reference}", manifest)
    app.router.add_get("/v2/fleet/bundles/blobs/{digest}", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    registry = f"127.0.0.1:{runner.addresses[0][1]}"
    monkeypatch.setenv("PATH", f"{_helper(tmp_path, 'fake', {'Username': 'robot', 'Secret': 's3cret'})}"
                               f":{os.environ['PATH']}")
    config = tmp_path / "config.json"
    source = pulling.BundleSource(registry=registry, repository="fleet/bundles", insecure=True)

    def fetch(puller: pulling.Puller) -> bytes:
        return puller.fetch(digest=digest, commit="c" * 40, max_size=1 << 20,
                            manifest_digest=artifact.manifest.digest)

    try:
        caplog.set_level("DEBUG")
        with pytest.raises(pulling.PullError, match=r"token request to .* HTTP 401"):
            await asyncio.to_thread(fetch, pulling.Puller(source, cluster="alpha"))  # anonymous

        config.write_text(json.dumps({"credHelpers": {registry: "fake"}}))
        puller = pulling.Puller(source, cluster="alpha", docker_config=config)
        assert await asyncio.to_thread(fetch, puller) == raw
        assert await asyncio.to_thread(fetch, puller) == raw  # the token is kept: the helper is not run again
        assert (tmp_path / "asked").read_text().split() == [registry]

        mode["scheme"] = "basic"  # a registry with HTTP Basic; credsStore names the helper for every registry
        config.write_text(json.dumps({"credsStore": "fake"}))
        assert await asyncio.to_thread(fetch, pulling.Puller(source, cluster="alpha", docker_config=config)) == raw

        config.write_text(json.dumps({"credHelpers": {registry: "../../bin/sh"}}))
        with pytest.raises(pulling.PullError, match="is not a plain name"):
            await asyncio.to_thread(fetch, pulling.Puller(source, cluster="alpha", docker_config=config))
        assert "s3cret" not in caplog.text
    finally:
        await runner.cleanup()
