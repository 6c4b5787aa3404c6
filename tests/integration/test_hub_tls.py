"""The hub's gRPC port as a client first sees it: TLS on, health and reflection served, the CA in the chain.

These are also the promises the other integration tests rely on when they use ``hub_harness``.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from hub.security import ca as ca_sec
from tests.integration.hub_harness import FleetRepo, channel, hub_settings, registered_spoke, running_hub


async def test_health_and_reflection_over_tls(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub:
        assert hub.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
        async with channel(hub) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            for service in ("", "convoy.v1.SpokeService", "convoy.v1.AdminService"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflect = reflection_pb2_grpc.ServerReflectionStub(ch)
            replies = [r async for r in reflect.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]))]
            names = {s.name for s in replies[0].list_services_response.service}
            assert {"convoy.v1.SpokeService", "convoy.v1.AdminService", "grpc.health.v1.Health"} <= names
        # The handshake carries the CA after the serving certificate, for pinning at first contact.
        shown = await asyncio.to_thread(
            subprocess.run, ["openssl", "s_client", "-connect", hub.grpc_address, "-showcerts", "-alpn", "h2"],
            input=b"", capture_output=True, timeout=30)
        presented = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", shown.stdout, re.S)
        assert len(presented) == 2 and ca_sec.fingerprint_of(presented[1]) == hub.ca_fingerprint
        # Plaintext against the TLS port fails: TLS is really on.
        async with aio.insecure_channel(hub.grpc_address) as plain:
            with pytest.raises(aio.AioRpcError) as caught:
                await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_operator_supplied_tls_material(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    """--tls-cert/--tls-key/--tls-ca: the hub serves that certificate and hands that CA to spokes."""
    company = ca_sec.ensure_ca(tmp_path / "company-pki")
    cert, key = company.issue_server_cert(hosts=["localhost", "127.0.0.1"])
    (tmp_path / "hub.crt").write_bytes(cert)
    (tmp_path / "hub.key").write_bytes(key)
    settings = hub_settings(tmp_path / "hub", fleet_repo, tls_cert=tmp_path / "hub.crt",
                            tls_key=tmp_path / "hub.key", tls_ca=company.cert_path)
    async with running_hub(settings) as hub, channel(hub) as ch:
        assert hub.ca_pem == company.cert_pem
        assert hub.ca_fingerprint == ca_sec.fingerprint_of(company.cert_pem)
        assert not (tmp_path / "hub" / "tls").exists()  # no CA of its own was made
        spoke = await registered_spoke(hub, ch, "alpha")
        assert spoke.name == "alpha"
