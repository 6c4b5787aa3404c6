"""Fuzz target: the hub's spoke-facing request handling, pure parts: decode guard, request checks, and
what an accepted status report becomes for the store.

The first byte picks the method; the rest are the request bytes. Bytes go through
:class:`~hub.api.decoding.DecodeGuard`'s deserializer (a :class:`~hub.api.decoding.Malformed` marker or a
message, never an exception), then through the checks the servicer runs (``hub.api.limits``), which may
only refuse with :class:`~hub.api.limits.RequestRejected`; an accepted report must convert to the
store's input and encode as JSON. Longer run: ``.venv/bin/python tests/fuzz/fuzz_requests.py
-max_total_time=600 /tmp/requests-corpus tests/fuzz/corpus/requests``.
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import atheris
import grpc

with atheris.instrument_imports(include=["hub.api", "protos"]):
    from hub.api import decoding, limits
    from hub.api import spoke as spoke_api
    from protos.codec import pb
    from tests.fuzz import _support


def _register(request: Any) -> None:
    limits.check_registration(cluster_name=request.cluster_name, labels=dict(request.labels),
                              token=request.bootstrap_token)


def _watch(request: Any) -> None:
    limits.check_digest(request.applied_digest, where="watch of cluster fuzz", allow_empty=True)


def _get_bundle(request: Any) -> None:
    limits.check_digest(request.digest, where="get bundle for cluster fuzz")


def _report(request: Any) -> None:
    limits.check_report(request, limits.ReportLimits(), cluster="fuzz")
    # Accepted: the conversion the batch writer makes, and the JSON the store writes.
    status_input = spoke_api._status_input("fuzz", request)
    json.dumps([status_input.objects, status_input.drift, status_input.drift_events, status_input.errors],
               allow_nan=False)


_METHODS: list[tuple[str, Any, Callable[[Any], None]]] = [
    ("/convoy.v1.SpokeService/Register", pb.RegisterRequest, _register),
    ("/convoy.v1.SpokeService/Watch", pb.WatchRequest, _watch),
    ("/convoy.v1.SpokeService/GetBundle", pb.GetBundleRequest, _get_bundle),
    ("/convoy.v1.SpokeService/ReportStatus", pb.StatusReport, _report),
]


async def _unused(request: Any, context: Any) -> None:
    raise AssertionError("never called: only the deserializer runs here")


_GUARD = decoding.DecodeGuard()
_DESERIALIZERS = [
    _GUARD._guard(method, grpc.unary_unary_rpc_method_handler(_unused, request_deserializer=message.FromString))
    .request_deserializer
    for method, message, _check in _METHODS
]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    index = data[0] % len(_METHODS)
    request = _DESERIALIZERS[index](data[1:])
    if isinstance(request, decoding.Malformed):
        assert request.size == len(data) - 1
        return
    try:
        _METHODS[index][2](request)
    except limits.RequestRejected:
        return


if __name__ == "__main__":
    _support.main(test_one_input)
