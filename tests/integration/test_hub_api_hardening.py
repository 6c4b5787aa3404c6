"""A spoke (or anyone) cannot disturb the others (issue 13 items 8, 10, 13), against a real hub
(TLS, port 0, real Git, SQLite and PostgreSQL):

* one cluster's bad report fails that report alone, never the reports of other clusters;
* request bytes that do not parse get INVALID_ARGUMENT, a bounded log, and the Register rate limit;
* unknown credentials cost the database a bounded number of reads per peer; re-fetching one
  bundle and reopening Watch streams are bounded per cluster.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from grpc import aio

from hub.security import secrets
from protos import jointoken
from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    Spoke,
    admin_of,
    channel,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)

#: Year 10000: a valid int64 on the wire, but no date the hub can store.
FAR_FUTURE = timestamp_pb2.Timestamp(seconds=253402300800 + 86400)


async def _code(call: Any) -> grpc.StatusCode:
    try:
        await call
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# -- item 8: one bad report ------------------------------------------------------------------------

async def test_a_bad_report_fails_alone_and_never_the_other_clusters_reports(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, report_rate=1000.0,
                            report_burst=1000)
    async with running_hub(settings) as hub, channel(hub) as ch:
        good = await registered_spoke(hub, ch, "alpha")
        bad = await registered_spoke(hub, ch, "beta")
        desired = await next_desired(good.watch())
        bad_reports: list[dict[str, Any]] = [
            {"observed_at": FAR_FUTURE},
            {"drift": [pb.DriftItem(ref=pb.ObjectRef(kind="ConfigMap", name="c"), detected_at=FAR_FUTURE)]},
            {"observed_at": timestamp_pb2.Timestamp(seconds=1, nanos=-5)},
            # PostgreSQL stores no NUL in text or JSON.
            {"message": "nul \x00 inside"},
            {"objects": [pb.ObjectResult(ref=pb.ObjectRef(kind="ConfigMap", name="x\x00"))]},
            {"spoke_version": "v" * 100},  # wider than the column
        ]
        for _round in range(3):
            calls = [good.report(phase=pb.PHASE_READY, applied_commit=desired.commit,
                                 applied_digest=desired.digest, message=f"report {i}") for i in range(20)]
            calls[5:5] = [bad.report(phase=pb.PHASE_READY, **fields) for fields in bad_reports]
            codes = await asyncio.gather(*(_code(call) for call in calls))
            bad_codes = codes[5:5 + len(bad_reports)]
            good_codes = codes[:5] + codes[5 + len(bad_reports):]
            assert good_codes == [grpc.StatusCode.OK] * 20
            assert bad_codes == [grpc.StatusCode.INVALID_ARGUMENT] * len(bad_reports)
        with pytest.raises(aio.AioRpcError) as caught:
            await bad.report(phase=pb.PHASE_READY, observed_at=FAR_FUTURE)
        assert "status report from cluster beta: observed_at is not a valid timestamp" in (caught.value.details()
                                                                                             or "")
        detail = await admin_of(hub, ch).call("GetCluster", pb.GetClusterRequest(name="alpha"))
        assert detail.summary.phase == pb.PHASE_READY and detail.message.startswith("report ")


# -- item 10: malformed request bytes ----------------------------------------------------------------

GARBAGE = [b"\x0a\xff", b"\xff\xff\xff\xff\xff", b"\x0a\x05abc", b"\x08"]


def _hub_records(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name.startswith(("hub", "grpc")) and r.levelno >= logging.WARNING]


async def test_malformed_bytes_get_invalid_argument_a_bounded_log_and_the_register_limit(
        tmp_path: Path, fleet_repo: FleetRepo, caplog: pytest.LogCaptureFixture) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, register_burst=20, register_rate=0.01)
    caplog.set_level(logging.INFO)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        caplog.clear()
        register = ch.unary_unary("/convoy.v1.SpokeService/Register", request_serializer=None,
                                  response_deserializer=None)
        with pytest.raises(aio.AioRpcError) as caught:
            await register(b"\x0a\xff")
        details = caught.value.details() or ""
        assert "Register" in details and "not a valid protobuf message" in details and "Error" not in details
        codes = [await _code(register(GARBAGE[i % len(GARBAGE)])) for i in range(199)]
        # Bytes that do not parse are refused like a bad field, and count against the Register limit.
        assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert codes[:18] == [grpc.StatusCode.INVALID_ARGUMENT] * 18
        assert codes[-100:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 100
        # Every kind of method: unary and streamed responses, streamed requests.
        watch = ch.unary_stream("/convoy.v1.SpokeService/Watch", request_serializer=None,
                                response_deserializer=None)
        with pytest.raises(aio.AioRpcError) as caught:
            async for _ in watch(b"\x0a\xff", metadata=spoke.metadata):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stream = ch.stream_stream("/convoy.v1.SpokeService/StreamStatus", request_serializer=None,
                                  response_deserializer=None)
        call = stream(metadata=spoke.metadata)
        await call.write(b"\x0a\xff")
        with pytest.raises(aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        admin = ch.unary_unary("/convoy.v1.AdminService/ListClusters", request_serializer=None,
                               response_deserializer=None)
        assert await _code(admin(b"\xff")) == grpc.StatusCode.INVALID_ARGUMENT
        # One warning per peer per interval, no traceback, no protobuf internals.
        logged = _hub_records(caplog.records)
        assert 1 <= len(logged) <= 3, [r.getMessage() for r in logged]
        assert all(r.exc_info is None and "DecodeError" not in r.getMessage() for r in logged)
        assert "not a valid message" in logged[0].getMessage()
        # The hub still serves well-formed requests.
        assert (await spoke.report(phase=pb.PHASE_READY)).accepted


# -- item 13: unauthenticated work, re-fetching, reopening -------------------------------------------

_BY_CREDENTIAL = re.compile(r"^\s*SELECT\b.*\bWHERE\b.*\bcredential_hash\s*=", re.IGNORECASE | re.DOTALL)


class _CredentialReads:
    """Counts the database's credential lookups (what an unknown credential costs the hub)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _BY_CREDENTIAL.search(statement):
            self.count += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


async def test_unknown_credentials_cost_a_bounded_number_of_database_reads_per_peer(
        tmp_path: Path, fleet_repo: FleetRepo, database_url: str | None) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, database_url=database_url, auth_failure_burst=10,
                            auth_failure_rate=0.01)
    async with running_hub(settings) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "alpha")
        await next_desired(spoke.watch())  # its credential is now known (and remembered)
        reads = _CredentialReads(hub.db.engine)
        try:
            stranger = Spoke(ch, credential="never-issued")
            same = [await _code(stranger.report(phase=pb.PHASE_READY)) for _ in range(30)]
            assert same == [grpc.StatusCode.UNAUTHENTICATED] * 30
            assert reads.count == 1  # the same unknown credential is answered from memory

            codes = []
            for _ in range(100):
                guesser = Spoke(ch, credential=secrets.new_credential())
                codes.append(await _code(guesser.report(phase=pb.PHASE_READY)))
            assert codes[:9] == [grpc.StatusCode.UNAUTHENTICATED] * 9
            assert codes[-80:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 80
            assert reads.count <= 11  # the burst, then refused before the database
            # A spoke with a valid credential from the same address is not disturbed.
            assert (await spoke.report(phase=pb.PHASE_READY)).accepted
        finally:
            reads.close()


async def test_refetching_one_bundle_and_reopening_watch_are_bounded_per_cluster(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    settings = hub_settings(tmp_path / "hub", fleet_repo, bundle_fetches_per_minute=3, watch_burst=4,
                            watch_rate=0.01)
    async with running_hub(settings) as hub, channel(hub) as ch:
        alpha = await registered_spoke(hub, ch, "alpha")
        beta = await registered_spoke(hub, ch, "beta")
        digest = (await next_desired(alpha.watch())).digest  # one Watch of alpha's 4
        for _ in range(3):
            await alpha.bundle(digest)
        with pytest.raises(aio.AioRpcError) as caught:
            await alpha.bundle(digest)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"bundle {digest} fetched more than 3 times in a minute" in (caught.value.details() or "")
        # Another cluster's fetches are its own.
        beta_digest = (await next_desired(beta.watch())).digest
        await beta.bundle(beta_digest)

        for _ in range(3):
            await next_desired(alpha.watch())
        with pytest.raises(aio.AioRpcError) as caught:
            await next_desired(alpha.watch())
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "watch of cluster alpha" in (caught.value.details() or "")
        await next_desired(beta.watch())


# -- item 7, the hub's side: its chain lets a spoke check the pin before it sends anything ----------

@pytest.mark.parametrize("pki", ["the hub's own CA", "the operator's --tls-cert/--tls-ca"])
async def test_a_real_hub_presents_the_ca_a_join_token_pins(tmp_path: Path, fleet_repo: FleetRepo,
                                                            pki: str) -> None:
    from hub.security import ca as ca_sec
    from spoke import hubclient

    overrides: dict[str, Any] = {}
    if pki != "the hub's own CA":
        company = ca_sec.ensure_ca(tmp_path / "company-pki")
        cert, key = company.issue_server_cert(hosts=["localhost", "127.0.0.1"])
        (tmp_path / "hub.crt").write_bytes(cert)  # the leaf alone, as operators often have it
        (tmp_path / "hub.key").write_bytes(key)
        overrides = {"tls_cert": tmp_path / "hub.crt", "tls_key": tmp_path / "hub.key",
                     "tls_ca": company.cert_path}
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo, **overrides)) as hub, channel(hub) as ch:
        token = await admin_of(hub, ch).token()
        contact = await asyncio.to_thread(hubclient.first_contact, hub.grpc_address, hub.ca_fingerprint)
        assert jointoken.fingerprint_of(contact.root_pem) == hub.ca_fingerprint
        client = hubclient.HubClient(hub.grpc_address, ca_pem=contact.root_pem)
        try:
            reg = await asyncio.to_thread(client.register, token=token, cluster="alpha", labels={})
        finally:
            client.close()
        assert reg.cluster == "alpha"


# -- item 9, end to end: a trailing newline is no second cluster ------------------------------------

async def test_a_name_label_or_digest_with_a_trailing_newline_is_refused(tmp_path: Path,
                                                                         fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        admin = admin_of(hub, ch)
        alpha = await registered_spoke(hub, ch, "sp-alpha")
        for name, labels in (("sp-alpha\n", {}), ("sp-beta", {"env": "prod\n"}), ("sp-beta", {"env\n": "prod"})):
            with pytest.raises(aio.AioRpcError) as caught:
                await Spoke(ch).register(await admin.token(), name, labels)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, labels)
        digest = (await next_desired(alpha.watch())).digest
        with pytest.raises(aio.AioRpcError) as caught:
            await alpha.bundle(digest + "\n")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        listed = await admin.call("ListClusters", pb.ListClustersRequest())
        assert [c.name for c in listed.clusters] == ["sp-alpha"]
