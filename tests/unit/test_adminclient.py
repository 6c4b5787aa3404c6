"""The CLI's AdminService client has one typed method per RPC, named after it."""

from __future__ import annotations

import inspect
import re
import typing

from hub import adminclient
from protos.convoy.v1 import convoy_pb2 as pb


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_admin_rpc_has_a_method_that_returns_its_response_type() -> None:
    service = pb.DESCRIPTOR.services_by_name["AdminService"]
    for rpc in service.methods:
        method = getattr(adminclient.AdminClient, _snake(rpc.name), None)
        assert method is not None, f"AdminClient has no method {_snake(rpc.name)}() for {rpc.name}"
        returned = typing.get_type_hints(method)["return"]
        assert returned.DESCRIPTOR.full_name == rpc.output_type.full_name, rpc.name


def test_no_method_takes_or_returns_any() -> None:
    for name, method in inspect.getmembers(adminclient.AdminClient, inspect.isfunction):
        hints = typing.get_type_hints(method)
        assert typing.Any not in hints.values(), f"AdminClient.{name} erases a type"
