"""The hub's HTTP side port (aiohttp): ``/webhook``, ``/metrics``, ``/healthz``, ``/readyz``.

The app knows nothing of the store or Git: it is given callables by the hub's
composition root, so it stays a thin edge. A webhook only *triggers* a sync;
the sync fetches and reads the branch itself and never trusts the payload.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from hub.source import webhooks
from hub.web import metrics as metrics_mod

__all__ = ["Readiness", "WebHooks", "create_app", "start_site"]

log = logging.getLogger(__name__)

#: Largest webhook body read (GitHub caps payloads at 25 MB; pushes are far smaller).
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class WebHooks:
    """What the HTTP side needs from the hub."""

    trigger: Callable[[str], None]                          #: ask for a sync now (argument: why)
    readiness: Callable[[], Awaitable[Readiness]]           #: DB reachable and first sync done
    phase_counts: Callable[[], Awaitable[Mapping[str, int]]]  #: clusters by reported phase, for /metrics
    webhook_secret: bytes | None                            #: None disables /webhook (403)
    branch: str                                             #: pushes to other refs are acknowledged, ignored


def create_app(hooks: WebHooks, metrics: metrics_mod.HubMetrics) -> web.Application:
    app = web.Application(client_max_size=MAX_WEBHOOK_BYTES)

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        if not hooks.webhook_secret:
            metrics.webhooks.labels(outcome="disabled").inc()
            return web.json_response({"error": "webhooks are disabled: the hub has no webhook secret"},
                                     status=403)
        try:
            event = webhooks.authenticate(request.headers, body, hooks.webhook_secret)
        except webhooks.WebhookRejectedError as exc:
            metrics.webhooks.labels(outcome="rejected").inc()
            log.warning("webhook from %s refused: %s", request.remote, exc)
            return web.json_response({"error": str(exc)}, status=401)
        if event.event.lower() in {"ping", "system hook"} or not event.concerns_branch(hooks.branch):
            metrics.webhooks.labels(outcome="ignored").inc()
            return web.json_response({"triggered": False, "reason": f"not a push to {hooks.branch}"},
                                     status=202)
        metrics.webhooks.labels(outcome="accepted").inc()
        log.info("%s webhook (%s, ref %s): syncing now", event.provider, event.event, event.ref or "?")
        hooks.trigger(f"{event.provider} webhook")
        return web.json_response({"triggered": True}, status=202)

    async def metrics_handler(request: web.Request) -> web.Response:
        try:
            metrics.set_phases(await hooks.phase_counts())
        except Exception:  # a scrape must still answer when the database is away
            log.exception("metrics: cannot count clusters by phase")
        return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics_mod.CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        state = await hooks.readiness()
        return web.json_response({"ready": state.ready, "detail": state.detail},
                                 status=200 if state.ready else 503)

    app.router.add_post("/webhook", webhook)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_site(app: web.Application, listen: str) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (port 0 picks a free one); returns the runner and the bound port."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port))
    await site.start()
    return runner, int(runner.addresses[0][1])
