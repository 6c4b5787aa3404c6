"""The hub's HTTP side port (aiohttp): ``/webhook``, ``/metrics``, ``/healthz``, ``/readyz``, and the
read side of the OCI Distribution API for the hub's bundles under ``/v2/`` (:mod:`hub.web.registry`).

The app knows nothing of the store or Git: it is given callables by the hub's
composition root, so it stays a thin edge. A webhook only *triggers* a sync;
the sync fetches and reads the branch itself and never trusts the payload.

Before the signature is known a webhook request is anyone's, so it is bounded in
this order: a secret is configured (403), the signature header has its shape
(401), the declared length fits (413), a slot among ``max_concurrent`` is free
(429), the body arrives within ``read_seconds`` (408) and within
``max_body_bytes`` (413); only then is the HMAC computed, and a delivery id seen
before is refused (409).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from hub import metrics as metrics_mod
from hub.source import webhooks
from hub.web import registry as registry_mod

__all__ = ["Readiness", "WebHooks", "create_app", "start_site"]

log = logging.getLogger(__name__)

#: Defaults of the webhook bounds (HubSettings webhook_max_bytes / webhook_max_concurrent).
#: Push payloads are a few KiB to a few hundred KiB; GitHub's own cap is 25 MB.
MAX_WEBHOOK_BYTES = 1024 * 1024
MAX_WEBHOOK_CONCURRENT = 8
#: How long a webhook body may take to arrive (a slow sender holds one of the few slots).
WEBHOOK_READ_SECONDS = 10.0


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
    max_body_bytes: int = MAX_WEBHOOK_BYTES                 #: larger bodies get 413, unread
    max_concurrent: int = MAX_WEBHOOK_CONCURRENT            #: webhook requests being read/checked at once (429)
    read_seconds: float = WEBHOOK_READ_SECONDS              #: a body slower than this gets 408
    deliveries_remembered: int = webhooks.DELIVERIES_REMEMBERED  #: delivery ids kept to refuse replays (409)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refusing it as soon as it passes ``limit`` (chunked bodies declare no length)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)


def create_app(hooks: WebHooks, metrics: metrics_mod.HubMetrics,
               registry: registry_mod.RegistryHooks | None = None) -> web.Application:
    app = web.Application(client_max_size=hooks.max_body_bytes)
    deliveries = webhooks.DeliveryLog(hooks.deliveries_remembered)
    in_flight = 0

    def refuse(outcome: str, status: int, error: str, request: web.Request,
               headers: Mapping[str, str] | None = None) -> web.Response:
        metrics.webhooks.labels(outcome=outcome).inc()
        log.warning("webhook from %s refused: %s", request.remote, error)
        return web.json_response({"error": error}, status=status, headers=headers)

    async def webhook(request: web.Request) -> web.Response:
        nonlocal in_flight
        if not hooks.webhook_secret:
            metrics.webhooks.labels(outcome="disabled").inc()
            return web.json_response({"error": "webhooks are disabled: the hub has no webhook secret"},
                                     status=403)
        try:
            webhooks.precheck(request.headers, hooks.webhook_secret)
        except webhooks.WebhookRejectedError as exc:
            return refuse("rejected", 401, str(exc), request)
        if request.content_length is not None and request.content_length > hooks.max_body_bytes:
            return refuse("too_large", 413, f"body of {request.content_length} bytes is over the hub's "
                                            f"webhook limit of {hooks.max_body_bytes}", request)
        if in_flight >= hooks.max_concurrent:
            return refuse("busy", 429, "too many webhook requests in flight; retry later", request,
                          headers={"Retry-After": "1"})
        in_flight += 1
        try:
            async with asyncio.timeout(hooks.read_seconds):
                body = await _read_body(request, hooks.max_body_bytes)
            event = webhooks.authenticate(request.headers, body, hooks.webhook_secret)
            delivery = webhooks.delivery_id(request.headers)
        except _BodyTooLarge:
            return refuse("too_large", 413, f"body is over the hub's webhook limit of {hooks.max_body_bytes} "
                                            "bytes", request)
        except TimeoutError:
            return refuse("timeout", 408, f"body not received within {hooks.read_seconds:g} s", request)
        except webhooks.WebhookRejectedError as exc:
            return refuse("rejected", 401, str(exc), request)
        finally:
            in_flight -= 1
        # Remembered only once authenticated, so nobody without the secret can burn a real delivery's id.
        if delivery is not None and deliveries.seen(delivery):
            return refuse("replayed", 409, f"delivery {delivery} was already received (a replayed request)",
                          request)
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
    if registry is not None:
        registry_mod.add_routes(app, registry)
    return app


def create_registry_app(registry: registry_mod.RegistryHooks) -> web.Application:
    """The OCI read API alone: what the TLS registry port serves."""
    app = web.Application()
    registry_mod.add_routes(app, registry)
    return app


async def start_site(app: web.Application, listen: str,
                     ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (port 0 picks a free one), over TLS with ``ssl_context``; returns the
    runner and the bound port."""
    host, _, port = listen.rpartition(":")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port), ssl_context=ssl_context)
    await site.start()
    return runner, int(runner.addresses[0][1])
