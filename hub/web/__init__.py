"""The hub's HTTP side port.

* :mod:`hub.web.app` — aiohttp application: ``/webhook`` (push webhooks, signature-checked),
  ``/metrics``, ``/healthz``, ``/readyz``; :func:`~hub.web.app.start_site` binds it.

The metric families it serves live in :mod:`hub.metrics`, below the service that feeds them.
"""
