"""The hub's HTTP side port.

* :mod:`hub.web.app` — aiohttp application: ``/webhook`` (push webhooks, signature-checked),
  ``/metrics``, ``/healthz``, ``/readyz``; :func:`~hub.web.app.start_site` binds it.
* :mod:`hub.web.metrics` — the Prometheus metric families of one hub process.
"""
