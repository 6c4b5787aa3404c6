"""The HTTP side port over real HTTP: webhooks trigger only when signed, metrics and probes answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest

from hub.source import webhooks
from hub.web import app as web_app
from hub.web import metrics as metrics_mod

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
