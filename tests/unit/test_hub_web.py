"""The HTTP side port over real HTTP: webhooks trigger only when signed, metrics and probes answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from hub import metrics as metrics_mod
from hub.source import webhooks
from hub.web import app as web_app
from tests.polling import poll

SECRET = b"s3cret"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "b" * 40}).encode()


class Hub:
    def __init__(self) -> None:
        self.triggers: list[str] = []
        self.ready = web_app.Readiness(False, "first sync of the fleet repository not done yet")

    def trigger(self, reason: str) -> None:
        self.triggers.append(reason)

    async def readiness(self) -> web_app.Readiness:
        return self.ready

    async def phase_counts(self) -> Mapping[str, int]:
        return {"Ready": 3, "Degraded": 1}


@pytest.fixture
async def served() -> AsyncIterator[tuple[Hub, str, metrics_mod.HubMetrics]]:
    hub = Hub()
    metrics = metrics_mod.HubMetrics()
    hooks = web_app.WebHooks(trigger=hub.trigger, readiness=hub.readiness, phase_counts=hub.phase_counts,
                             webhook_secret=SECRET, branch="main")
    runner, port = await web_app.start_site(web_app.create_app(hooks, metrics), "127.0.0.1:0")
    try:
        yield hub, f"http://127.0.0.1:{port}", metrics
    finally:
        await runner.cleanup()


async def test_signed_github_push_triggers_a_sync(served: tuple[Hub, str, metrics_mod.HubMetrics]) -> None:
    hub, base, _ = served
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(PUSH, SECRET)}
    async with aiohttp.ClientSession() as http, http.post(f"{base}/webhook", data=PUSH, headers=headers) as resp:
        assert resp.status == 202
        assert (await resp.json())["triggered"] is True
    assert hub.triggers == ["github webhook"]


@pytest.mark.parametrize("headers", [
    {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(PUSH, b"wrong")},
    {"X-GitHub-Event": "push"},
    {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"},
    {"X-Gitea-Event": "push", "X-Gitea-Signature": "00" * 32},
    {"X-Convoy-Signature": "sha256=" + "0" * 64},
])
async def test_bad_signature_is_401_and_triggers_nothing(served: tuple[Hub, str, metrics_mod.HubMetrics],
                                                         headers: dict[str, str]) -> None:
    hub, base, metrics = served
    async with aiohttp.ClientSession() as http, http.post(f"{base}/webhook", data=PUSH, headers=headers) as resp:
        assert resp.status == 401
        assert "error" in await resp.json()
    assert hub.triggers == []
    assert metrics.webhooks.labels(outcome="rejected")._value.get() == 1


async def test_gitlab_and_gitea_pushes_trigger(served: tuple[Hub, str, metrics_mod.HubMetrics]) -> None:
    hub, base, _ = served
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/webhook", data=PUSH,
                             headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode()}) as resp:
            assert resp.status == 202
        async with http.post(f"{base}/webhook", data=PUSH,
                             headers={"X-Gitea-Event": "push",
                                      "X-Gitea-Signature": webhooks.sign_hmac(PUSH, SECRET)}) as resp:
            assert resp.status == 202
    assert hub.triggers == ["gitlab webhook", "gitea webhook"]


async def test_push_to_another_branch_is_acknowledged_not_synced(
        served: tuple[Hub, str, metrics_mod.HubMetrics]) -> None:
    hub, base, _ = served
    body = json.dumps({"ref": "refs/heads/feature"}).encode()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(body, SECRET)}
    async with aiohttp.ClientSession() as http, http.post(f"{base}/webhook", data=body, headers=headers) as resp:
        assert resp.status == 202 and (await resp.json())["triggered"] is False
    assert hub.triggers == []


async def test_probes_and_metrics(served: tuple[Hub, str, metrics_mod.HubMetrics]) -> None:
    hub, base, metrics = served
    metrics.watch_streams(lambda: 7)
    metrics.render_seconds.observe(0.3)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            assert "first sync" in (await resp.json())["detail"]
        hub.ready = web_app.Readiness(True, "ready")
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            text = await resp.text()
    assert "convoy_hub_connected_spokes 7.0" in text
    assert 'convoy_hub_clusters{phase="Ready"} 3.0' in text
    assert 'convoy_hub_clusters{phase="Degraded"} 1.0' in text
    assert "convoy_hub_render_duration_seconds_count 1.0" in text


async def test_webhook_disabled_without_secret() -> None:
    hub = Hub()
    hooks = web_app.WebHooks(trigger=hub.trigger, readiness=hub.readiness, phase_counts=hub.phase_counts,
                             webhook_secret=None, branch="main")
    runner, port = await web_app.start_site(web_app.create_app(hooks, metrics_mod.HubMetrics()), "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/webhook", data=PUSH) as r:
            assert r.status == 403
    finally:
        await runner.cleanup()
    assert hub.triggers == []


# -- hostile webhook traffic: bounded before the signature is known --------------------------------------


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[Hub, str, int, metrics_mod.HubMetrics]]:
    hub = Hub()
    metrics = metrics_mod.HubMetrics()
    hooks = web_app.WebHooks(trigger=hub.trigger, readiness=hub.readiness, phase_counts=hub.phase_counts,
                             webhook_secret=SECRET, branch="main", max_body_bytes=64 * 1024, max_concurrent=2,
                             read_seconds=2.0)
    runner, port = await web_app.start_site(web_app.create_app(hooks, metrics), "127.0.0.1:0")
    try:
        yield hub, f"http://127.0.0.1:{port}", port, metrics
    finally:
        await runner.cleanup()


async def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode("utf-8") + b"\r\n" + body)
    await writer.drain()
    return reader, writer


async def _status_of(reader: asyncio.StreamReader) -> int:
    # A bound so a hang fails the test instead of blocking the suite; not a timing assertion.
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split()[1])


def _head(length: int | None, signature: str = "sha256=" + "0" * 64, extra: str = "") -> str:
    lines = ["POST /webhook HTTP/1.1", "Host: hub", "X-GitHub-Event: push", f"X-Hub-Signature-256: {signature}"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return "\r\n".join(lines) + "\r\n" + extra


async def test_non_ascii_signature_is_401_not_500(served: tuple[Hub, str, metrics_mod.HubMetrics]) -> None:
    hub, base, _ = served
    port = int(base.rsplit(":", 1)[1])
    reader, writer = await _raw_request(port, _head(len(PUSH), signature="sha256=é" + "0" * 63), PUSH)
    try:
        assert await _status_of(reader) == 401
    finally:
        writer.close()
    assert hub.triggers == []


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 63, "sha256=" + "g" * 64, "md5=" + "0" * 64, "x" * 5000])
async def test_malformed_signature_is_refused_before_the_body_is_read(
        guarded: tuple[Hub, str, int, metrics_mod.HubMetrics], signature: str) -> None:
    hub, _, port, metrics = guarded
    reader, writer = await _raw_request(port, _head(60_000, signature=signature))   # the body never comes
    try:
        assert await _status_of(reader) == 401
    finally:
        writer.close()
    assert hub.triggers == [] and metrics.webhooks.labels(outcome="rejected")._value.get() == 1


async def test_oversized_declared_body_is_413_without_reading_it(
        guarded: tuple[Hub, str, int, metrics_mod.HubMetrics]) -> None:
    hub, _, port, metrics = guarded
    reader, writer = await _raw_request(port, _head(24 * 1024 * 1024))   # 24 MiB declared, none sent
    try:
        assert await _status_of(reader) == 413
    finally:
        writer.close()
    assert hub.triggers == [] and metrics.webhooks.labels(outcome="too_large")._value.get() == 1


async def test_oversized_chunked_body_is_413(guarded: tuple[Hub, str, int, metrics_mod.HubMetrics]) -> None:
    hub, base, _, _ = guarded
    big = b"x" * (65 * 1024)
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(big, SECRET)}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    async with aiohttp.ClientSession() as http, http.post(f"{base}/webhook", data=chunks(), headers=headers) as resp:
        assert resp.status == 413
    assert hub.triggers == []


async def test_a_body_that_never_arrives_is_408(guarded: tuple[Hub, str, int, metrics_mod.HubMetrics]) -> None:
    _, _, port, _ = guarded
    reader, writer = await _raw_request(port, _head(1000), b"{")
    try:
        assert await _status_of(reader) == 408
    finally:
        writer.close()


async def test_unauthenticated_requests_in_flight_are_bounded(
        guarded: tuple[Hub, str, int, metrics_mod.HubMetrics]) -> None:
    hub, base, port, metrics = guarded
    held = [await _raw_request(port, _head(1000), b"{") for _ in range(2)]   # two slow bodies fill both slots
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/webhook", data=PUSH, headers=_github(PUSH)) as resp:
                assert resp.status == 429
                assert resp.headers.get("Retry-After")
            assert metrics.webhooks.labels(outcome="busy")._value.get() == 1
            for reader, writer in held:
                writer.close()
                await asyncio.wait_for(reader.read(), 30)

            async def accepted() -> int | None:
                async with http.post(f"{base}/webhook", data=PUSH, headers=_github(PUSH)) as resp:
                    return resp.status if resp.status != 429 else None

            # The slots free up once the server notices the closed connections.
            assert await poll(accepted, what="a webhook slot to free up") == 202
    finally:
        for _, writer in held:
            writer.close()
    assert hub.triggers == ["github webhook"]


def _github(body: bytes, delivery: str | None = None) -> dict[str, str]:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(body, SECRET)}
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return headers


@pytest.mark.parametrize("headers", [
    _github(PUSH, "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode(),
     "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"},
    {"X-Gitea-Event": "push", "X-Gitea-Signature": webhooks.sign_hmac(PUSH, SECRET), "X-Gitea-Delivery": "d-1"},
])
async def test_a_replayed_delivery_is_refused(guarded: tuple[Hub, str, int, metrics_mod.HubMetrics],
                                              headers: dict[str, str]) -> None:
    hub, base, _, metrics = guarded
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/webhook", data=PUSH, headers=headers) as resp:
            assert resp.status == 202
        async with http.post(f"{base}/webhook", data=PUSH, headers=headers) as resp:
            assert resp.status == 409
            assert "replayed" in (await resp.json())["error"]
    assert len(hub.triggers) == 1
    assert metrics.webhooks.labels(outcome="replayed")._value.get() == 1
