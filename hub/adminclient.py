"""A small synchronous client of the hub's AdminService, for the CLI.

gRPC errors become :class:`AdminError` subclasses through one table, each with
a message that says what the user can do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from hub import cliconfig
from protos.convoy.v1 import convoy_pb2 as pb
from protos.convoy.v1 import convoy_pb2_grpc as pb_grpc

__all__ = [
    "AdminClient",
    "AdminError",
    "HubRejectedError",
    "HubUnreachableError",
    "HubUntrustedError",
    "NotFoundError",
    "UnauthenticatedError",
]

R = TypeVar("R", bound=Message)


class AdminError(Exception):
    """A failed admin call; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class HubUnreachableError(AdminError):
    exit_code = 3


class UnauthenticatedError(AdminError):
    exit_code = 4


class NotFoundError(AdminError):
    exit_code = 1


class HubRejectedError(AdminError):
    exit_code = 1


class HubUntrustedError(HubUnreachableError):
    """The TLS handshake failed: the hub's certificate does not check out against the configured CA."""


def _tls_failure(conn: cliconfig.HubConnection, detail: str) -> AdminError | None:
    """One line for a failed TLS handshake (gRPC's own message is a wall of OpenSSL internals), or None."""
    lowered = detail.lower()
    if "certificate_verify_failed" in lowered:
        where = f"the CA in {conn.ca}" if conn.ca is not None else "a CA this machine trusts (no `ca:` is set)"
        return HubUntrustedError(f"hub {conn.address}: the hub's certificate is not signed by {where} (set the "
                                 "right `ca:` for this hub in the CLI config, or CONVOY_HUB_CA)")
    if "peer name" in lowered and "not in peer certificate" in lowered:
        host = conn.address.rpartition(":")[0]
        return HubUntrustedError(f"hub {conn.address}: the hub's certificate is not valid for {host} (connect by a "
                                 "name the certificate lists: the hub's --advertise-address or its tls hosts)")
    if "handshake failed" in lowered or "wrong_version_number" in lowered:
        return HubUntrustedError(f"hub {conn.address}: the TLS handshake failed (is it a plaintext hub? then set "
                                 "`insecure: true` for a local sandbox; else check its `ca:`)")
    return None


def _unreachable(conn: cliconfig.HubConnection, detail: str) -> AdminError:
    tls = _tls_failure(conn, detail)
    if tls is not None:
        return tls
    return HubUnreachableError(
        f"hub {conn.address} is unreachable ({detail}); check that it runs and that the address, CA and "
        f"TLS settings of hub {conn.name!r} are right (`convoy config view`)")


_STATUS_TO_ERROR: dict[grpc.StatusCode, Callable[[cliconfig.HubConnection, str], AdminError]] = {
    grpc.StatusCode.UNAVAILABLE: _unreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: _unreachable,
    grpc.StatusCode.UNAUTHENTICATED: lambda conn, detail: UnauthenticatedError(
        f"hub {conn.address} refused the admin credential ({detail}); check `credential:` of hub "
        f"{conn.name!r} or CONVOY_CREDENTIAL_FILE"),
    grpc.StatusCode.PERMISSION_DENIED: lambda conn, detail: UnauthenticatedError(
        f"hub {conn.address} denied the request: {detail}"),
    grpc.StatusCode.NOT_FOUND: lambda conn, detail: NotFoundError(detail),
    grpc.StatusCode.UNIMPLEMENTED: lambda conn, detail: HubRejectedError(
        f"hub {conn.address} does not support this call ({detail}); is it an older version?"),
}


class AdminClient:
    """One typed method per AdminService RPC; gRPC failures come out as :class:`AdminError`."""

    def __init__(self, conn: cliconfig.HubConnection, *, timeout: float = 10.0) -> None:
        self.conn = conn
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {conn.credential_value()}"),)
        if conn.insecure:
            self._channel = grpc.insecure_channel(conn.address)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=conn.ca_pem())
            self._channel = grpc.secure_channel(conn.address, credentials)
        self.stub = pb_grpc.AdminServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def list_clusters(self, selector: str = "") -> pb.ListClustersResponse:
        return self._call("ListClusters", pb.ListClustersRequest(selector=selector), pb.ListClustersResponse)

    def get_cluster(self, name: str) -> pb.ClusterDetail:
        return self._call("GetCluster", pb.GetClusterRequest(name=name), pb.ClusterDetail)

    def history(self, request: pb.HistoryRequest) -> pb.HistoryResponse:
        return self._call("History", request, pb.HistoryResponse)

    def create_token(self, request: pb.CreateTokenRequest) -> pb.CreateTokenResponse:
        return self._call("CreateToken", request, pb.CreateTokenResponse)

    def list_tokens(self) -> pb.ListTokensResponse:
        return self._call("ListTokens", pb.ListTokensRequest(), pb.ListTokensResponse)

    def revoke_token(self, token_id: str) -> pb.RevokeTokenResponse:
        return self._call("RevokeToken", pb.RevokeTokenRequest(id=token_id), pb.RevokeTokenResponse)

    def set_paused(self, request: pb.SetPausedRequest) -> pb.SetPausedResponse:
        return self._call("SetPaused", request, pb.SetPausedResponse)

    def sync_now(self) -> pb.SyncNowResponse:
        return self._call("SyncNow", pb.SyncNowRequest(), pb.SyncNowResponse)

    def get_bundle_objects(self, digest: str) -> pb.GetBundleObjectsResponse:
        return self._call("GetBundleObjects", pb.GetBundleObjectsRequest(digest=digest), pb.GetBundleObjectsResponse)

    def rollout_status(self) -> pb.RolloutStatusResponse:
        return self._call("RolloutStatus", pb.RolloutStatusRequest(), pb.RolloutStatusResponse)

    def rollout_control(self, action: str) -> pb.RolloutStatusResponse:
        return self._call("RolloutControl", pb.RolloutControlRequest(action=action), pb.RolloutStatusResponse)

    def pin(self, request: pb.PinRequest) -> pb.PinResponse:
        return self._call("Pin", request, pb.PinResponse)

    def remove_cluster(self, name: str) -> pb.RemoveClusterResponse:
        return self._call("RemoveCluster", pb.RemoveClusterRequest(name=name), pb.RemoveClusterResponse)

    def rotate_credential(self, name: str) -> pb.RotateCredentialResponse:
        return self._call("RotateCredential", pb.RotateCredentialRequest(name=name), pb.RotateCredentialResponse)

    def get_version(self) -> pb.GetVersionResponse:
        return self._call("GetVersion", pb.GetVersionRequest(), pb.GetVersionResponse)

    def rotate_age_key(self, name: str) -> pb.RotateAgeKeyResponse:
        return self._call("RotateAgeKey", pb.RotateAgeKeyRequest(name=name), pb.RotateAgeKeyResponse)

    def rollout_approve(self, *, wave: str = "", comment: str = "") -> pb.RolloutStatusResponse:
        return self._call("RolloutApprove", pb.RolloutApproveRequest(wave=wave, comment=comment),
                          pb.RolloutStatusResponse)

    def create_admin_credential(self, name: str) -> pb.CreateAdminCredentialResponse:
        return self._call("CreateAdminCredential", pb.CreateAdminCredentialRequest(name=name),
                          pb.CreateAdminCredentialResponse)

    def list_admin_credentials(self) -> pb.ListAdminCredentialsResponse:
        return self._call("ListAdminCredentials", pb.ListAdminCredentialsRequest(), pb.ListAdminCredentialsResponse)

    def revoke_admin_credential(self, name: str) -> pb.RevokeAdminCredentialResponse:
        return self._call("RevokeAdminCredential", pb.RevokeAdminCredentialRequest(name=name),
                          pb.RevokeAdminCredentialResponse)

    def _call(self, method: str, request: Message, reply: type[R]) -> R:
        """Call one AdminService method, converting gRPC errors at this boundary.

        The generated stub is untyped; checking the reply's class here is what lets every method above
        promise its response type to the caller.
        """
        rpc = getattr(self.stub, method)
        try:
            response = rpc(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            detail = (exc.details() if isinstance(exc, grpc.Call) else None) or str(code)
            factory = _STATUS_TO_ERROR.get(code)
            if factory is not None:
                raise factory(self.conn, detail) from exc
            raise HubRejectedError(f"hub {self.conn.address}: {detail}") from exc
        if not isinstance(response, reply):
            raise HubRejectedError(f"hub {self.conn.address}: {method} answered with a "
                                   f"{type(response).__name__}, not a {reply.__name__}")
        return response
