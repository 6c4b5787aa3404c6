"""The CLI as kubectl users expect it: output formats, a table that fits 80
columns, --watch through a pipe that ends on SIGTERM, history, config verbs, tokens, exit codes.

A real hub on port 0 with real Git, stand-in spokes that report, and the real CLI (click's runner in a worker
thread, or a subprocess where signals and pipes matter).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from hub.cli import cli
from hub.commands import hubserve
from hub.security import ca as ca_sec
from protos import version
from protos.codec import pb
from tests.integration.hub_harness import (
    FleetRepo,
    Spoke,
    channel,
    hub_settings,
    next_desired,
    registered_spoke,
    running_hub,
)
from tests.polling import poll


def cli_env(hub: hubserve.RunningHub, tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "hub-ca.pem"
    ca.write_bytes(hub.ca_pem)
    return {"CONVOY_CONFIG": str(tmp_path / "cli-config.yaml"), "CONVOY_HUB": hub.grpc_address,
            "CONVOY_HUB_CA": str(ca), "CONVOY_CREDENTIAL_FILE": str(hub.admin_credential_path)}


async def convoy(hub: hubserve.RunningHub, tmp_path: Path, *args: str, columns: int | None = None) -> Result:
    env = cli_env(hub, tmp_path)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env, catch_exceptions=False)


async def report_ready(spoke: Spoke, stream: object) -> pb.DesiredState:
    desired = await next_desired(stream)
    await spoke.report(phase=pb.PHASE_READY, applied_commit=desired.commit, applied_digest=desired.digest)
    return desired


LABELS = {"env": "production", "region": "europe-west-1", "team": "payments"}


async def test_status_formats_fit_80_columns_and_count_by_phase(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spokes = [await registered_spoke(hub, ch, f"production-europe-west-{i}", LABELS) for i in range(2)]
        streams = [spoke.watch() for spoke in spokes]
        await report_ready(spokes[0], streams[0])
        await next_desired(streams[1])
        await spokes[1].report(phase=pb.PHASE_PROGRESSING)

        names = await convoy(hub, tmp_path, "status", "-o", "name")
        assert names.exit_code == 0, names.output
        assert names.output.splitlines() == ["cluster/production-europe-west-0", "cluster/production-europe-west-1"]

        narrow = await convoy(hub, tmp_path, "status", columns=80)
        assert narrow.exit_code == 0, narrow.output
        lines = narrow.output.splitlines()
        assert all(len(line) <= 80 for line in lines), narrow.output
        assert "…" not in narrow.output
        table_header = next(line for line in lines if line.startswith("CLUSTER"))
        assert table_header.split()[:3] == ["CLUSTER", "PHASE", "READY"]
        assert any(line.split()[:2] == ["production-europe-west-1", "Progressing"] for line in lines), narrow.output
        assert "2 clusters: 1 Progressing, 1 Ready" in narrow.output

        wide = await convoy(hub, tmp_path, "status", "-o", "wide", columns=80)
        assert "LABELS" in wide.output and "env=production,region=europe-west-1,team=payments" in wide.output

        document = json.loads((await convoy(hub, tmp_path, "status", "-o", "json")).output)
        assert document["summary"] == {"total": 2, "phases": {"Progressing": 1, "Ready": 1}}

        one = await convoy(hub, tmp_path, "status", "-l", "env=nowhere")
        assert "0 clusters: none registered" in one.output
        for stream in streams:
            stream.cancel()


async def test_status_watch_through_a_pipe_prints_a_table_per_change_and_ends_on_sigterm(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "edge-1")
        stream = spoke.watch()
        await next_desired(stream)
        await spoke.report(phase=pb.PHASE_PROGRESSING)
        env = {**os.environ, **cli_env(hub, tmp_path)}
        env.pop("COLUMNS", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "status", "--watch", "--interval", "0.1", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        seen: list[str] = []

        async def line_with(text: str) -> str | None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()  # type: ignore[union-attr]
            assert line, "convoy status --watch ended early"
            seen.append(line)
            return line if text in line else None

        try:
            await poll(lambda: line_with("1 cluster: 1 Progressing"), timeout=20, what="the first table")
            await spoke.report(phase=pb.PHASE_READY)
            await poll(lambda: line_with("1 cluster: 1 Ready"), timeout=20, what="a second table after the change")
            proc.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()
        assert "Traceback" not in err.decode()
        assert sum(1 for line in seen if line.startswith("CLUSTER")) == 2, "".join(seen)  # unchanged: no reprint

        # Ctrl-C ends it as cleanly.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub", "status", "--watch", "--interval", "0.1", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        seen.clear()
        try:
            await poll(lambda: line_with("1 cluster: 1 Ready"), timeout=20, what="the table")
            proc.send_signal(signal.SIGINT)
            _out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
        assert proc.returncode == 0 and "Traceback" not in err.decode(), err.decode()
        stream.cancel()


async def test_history_has_a_header_rfc3339_seconds_and_filters(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "edge-1")
        stream = spoke.watch()
        await report_ready(spoke, stream)
        await poll(lambda: _has_event(hub, tmp_path, "applied"), timeout=20, what="an applied event")

        table = await convoy(hub, tmp_path, "history", "edge-1")
        assert table.exit_code == 0, table.output
        header, *rows = table.output.splitlines()
        assert header.split() == ["TIME", "CLUSTER", "TYPE", "COMMIT", "MESSAGE"]
        assert rows and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", row) for row in rows), table.output

        only = json.loads((await convoy(hub, tmp_path, "history", "edge-1", "--type", "registration",
                                        "--type", "applied", "-o", "json")).output)
        assert {event["kind"] for event in only} == {"registration", "applied"}
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["at"]) for event in only)
        limited = json.loads((await convoy(hub, tmp_path, "history", "--all", "--limit", "1", "-o", "json")).output)
        assert len(limited) == 1
        future = await convoy(hub, tmp_path, "history", "--all", "--since", "2999-01-01T00:00:00Z")
        assert future.exit_code == 0 and future.output.strip() == "no events"
        unknown = await convoy(hub, tmp_path, "history", "--all", "--type", "nonsense")
        assert unknown.exit_code == 1 and "nonsense" in unknown.output and "drift_corrected" in unknown.output
        stream.cancel()


async def _has_event(hub: hubserve.RunningHub, tmp_path: Path, kind: str) -> bool:
    result = await convoy(hub, tmp_path, "history", "--all", "-o", "json")
    return any(event["kind"] == kind for event in json.loads(result.output))


async def test_tokens_refuse_zero_and_say_what_happened(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub:
        no_uses = await convoy(hub, tmp_path, "token", "create", "--uses", "0")
        assert no_uses.exit_code == 2 and "--uses" in no_uses.output, no_uses.output
        no_time = await convoy(hub, tmp_path, "token", "create", "--ttl", "0s")
        assert no_time.exit_code == 2 and "--ttl" in no_time.output, no_time.output
        assert json.loads((await convoy(hub, tmp_path, "token", "list", "-o", "json")).output) == []

        created = await convoy(hub, tmp_path, "token", "create", "--uses", "1")
        assert created.exit_code == 0, created.output
        join = next(line.split()[-1] for line in created.output.splitlines() if line.startswith("join token:"))
        hint = created.output.splitlines()[-1].strip()
        assert hint == f"convoy spoke install --cluster NAME --hub {hub.grpc_address} --token {join} --apply"
        assert "uses: 1 use" in created.output

        listed = await convoy(hub, tmp_path, "token", "list")
        header, row = listed.output.splitlines()
        assert header.split()[:3] == ["ID", "EXPIRES", "USES"]
        assert " 1 use " in row + " "
        token_id = row.split()[0]
        first = await convoy(hub, tmp_path, "token", "revoke", token_id)
        assert first.exit_code == 0 and first.output == f"token {token_id} revoked\n"
        again = await convoy(hub, tmp_path, "token", "revoke", token_id)
        assert again.exit_code == 0 and again.output == f"token {token_id} was already revoked\n", again.output
        missing = await convoy(hub, tmp_path, "token", "revoke", "nosuchtoken")
        assert missing.exit_code == 1 and "nosuchtoken" in missing.output


async def test_diff_exit_code_says_whether_a_cluster_has_drift(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        spoke = await registered_spoke(hub, ch, "edge-1")
        stream = spoke.watch()
        desired = await report_ready(spoke, stream)
        clean = await convoy(hub, tmp_path, "diff", "edge-1", "--exit-code")
        assert clean.exit_code == 0 and "no drift" in clean.output, clean.output
        drift = pb.DriftItem(ref=pb.ObjectRef(kind="ConfigMap", namespace="shop", name="web-config"), app="web",
                             kind_of_drift="modified",
                             fields=[pb.FieldDrift(path=".data.REGION", desired='"eu"', live='"mars"')])
        await spoke.report(phase=pb.PHASE_DRIFTED, applied_commit=desired.commit, applied_digest=desired.digest,
                           drift=[drift])
        drifted = await convoy(hub, tmp_path, "diff", "edge-1", "--exit-code")
        assert drifted.exit_code == 1 and ".data.REGION" in drifted.output, drifted.output
        assert (await convoy(hub, tmp_path, "diff", "edge-1")).exit_code == 0  # without the flag: shown, exit 0
        stream.cancel()


async def test_a_hub_certificate_from_another_ca_is_one_clear_line(tmp_path: Path, fleet_repo: FleetRepo) -> None:
    other_ca = ca_sec.ensure_ca(tmp_path / "elsewhere").cert_pem
    wrong = tmp_path / "wrong-ca.pem"
    wrong.write_bytes(other_ca)
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub:
        env = {**os.environ, **cli_env(hub, tmp_path), "CONVOY_HUB_CA": str(wrong)}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub", "status", env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3, (out + err).decode()
    assert err.decode().splitlines() == [
        f"error: hub {hub.grpc_address}: the hub's certificate is not signed by the CA in {wrong} "
        "(set the right `ca:` for this hub in the CLI config, or CONVOY_HUB_CA)"], err.decode()


async def test_version_names_client_and_hub_and_completion_offers_cluster_names(
        tmp_path: Path, fleet_repo: FleetRepo) -> None:
    async with running_hub(hub_settings(tmp_path / "hub", fleet_repo)) as hub, channel(hub) as ch:
        for name in ("edge-1", "edge-2", "core-1"):
            await registered_spoke(hub, ch, name)
        shown = await convoy(hub, tmp_path, "version")
        assert shown.exit_code == 0, shown.output
        assert shown.output.splitlines() == [f"Client Version: {version.installed()}",
                                             f"Hub Version:    {version.installed()} ({hub.grpc_address})"]
        document = json.loads((await convoy(hub, tmp_path, "version", "-o", "json")).output)
        assert document == {"clientVersion": version.installed(), "hubVersion": version.installed(),
                            "hub": hub.grpc_address}

        env = {**os.environ, **cli_env(hub, tmp_path), "_CONVOY_COMPLETE": "bash_complete",
               "COMP_WORDS": "convoy describe ed", "COMP_CWORD": "2"}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub", env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert out.decode().splitlines() == ["plain,edge-1", "plain,edge-2"]
    # The hub gone: the client version still prints, then one error line and exit 3.
    gone = await convoy(hub, tmp_path, "version")
    assert gone.exit_code == 3 and gone.output.startswith(f"Client Version: {version.installed()}\nerror: hub ")
