"""The HTTP edge: an aiohttp app hosting many clusters under ``/clusters/<name>/...``.

Parses requests (path, query, body) into registry calls and encodes answers as the API server does:
exact ``Status`` bodies, ``Content-Type: application/json``, chunked watch streams. Also serves
``/kubesim/v1/clusters/<name>[/faults]`` to add/remove clusters and switch faults at run time, and
enforces the optional bearer token. Every cluster request is authenticated (the admin token, or none
when the server has none: system:masters; or a ServiceAccount token) and, unless the user is
system:masters, authorized by RBAC (``kubesim.authorizing``) before it reaches the registry.

``start(options)`` runs the server on the current event loop and returns a :class:`RunningServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import functools
import hmac
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from kubesim import (
    authorizing,
    deleting,
    discovery,
    errors,
    faults,
    openapi,
    protobufs,
    rbac,
    registry,
    selectors,
    tables,
    unknownfields,
    watching,
    wiring,
)
from kubesim.clusters import Cluster, ClusterOptions, ClusterSet
from kubesim.resources import ResourceType
from kubesim.tlsutil import ServerTLS, make_server_tls

__all__ = ["RunningServer", "ServerOptions", "make_app", "start"]

Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_NOT_FOUND_TEXT = "404 page not found\n"
CLUSTERS_KEY = web.AppKey("clusters", ClusterSet)
KUBE_VERSION_KEY = web.AppKey("kube_version", str)
ADMIN_TOKEN_KEY = web.AppKey("admin_token", str)
_REVIEWS = {"selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews"}
_RBAC_WRITES = {"roles", "clusterroles", "rolebindings", "clusterrolebindings"}


@dataclass(frozen=True)
class ServerOptions:
    """How to run a kubesim server.

    ``clusters``: names created at start (more can be added later). ``tls``: serve HTTPS with a
    fresh CA. ``token``: require ``Authorization: Bearer <token>`` (401 otherwise).
    ``kube_version``: the ``MAJOR.MINOR`` that ``/version`` reports; None: the version of the kubectl
    on PATH (kubectl warns about a server more than one minor away), else
    :data:`kubesim.discovery.DEFAULT_KUBE_VERSION`.
    """

    host: str = "127.0.0.1"
    port: int = 0
    clusters: Sequence[str] = ()
    tls: bool = False
    token: str | None = None
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    kube_version: str | None = None


_KUBE_VERSION_RE = re.compile(r"(\d+)\.(\d+)")


def parse_kube_version(text: str) -> str:
    """``1.32``, ``v1.32.4`` or ``1.32+`` as ``1.32``; ValueError otherwise."""
    match = _KUBE_VERSION_RE.match(text.strip().removeprefix("v"))
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes version like 1.32")
    return f"{match.group(1)}.{match.group(2)}"


@functools.cache  # asked once per process: tests start many servers
def kubectl_version() -> str | None:
    """The ``MAJOR.MINOR`` of the kubectl on PATH, or None when there is none or it cannot say."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    try:
        out = subprocess.run([kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
        client = json.loads(out)["clientVersion"]
        return parse_kube_version(f"{client['major']}.{client['minor']}")
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


class RunningServer:
    """A started server: its port, URLs, clusters and CA; ``await stop()`` shuts it down."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, port: int, clusters: ClusterSet,
                 tls: ServerTLS | None, options: ServerOptions) -> None:
        self._runner = runner
        self._site = site
        self.port = port
        self.clusters = clusters
        self.tls = tls
        self.options = options

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.options.host}:{self.port}"

    def url(self, cluster: str) -> str:
        return f"{self.base_url}/clusters/{cluster}"

    @property
    def ca_pem(self) -> bytes | None:
        return None if self.tls is None else self.tls.ca_pem

    async def stop(self) -> None:
        self.clusters.close()
        await self._runner.cleanup()


async def start(options: ServerOptions) -> RunningServer:
    tls = make_server_tls() if options.tls else None
    cluster_options = options.cluster
    if tls is not None:
        cluster_options = dataclasses.replace(cluster_options, ca_pem=tls.ca_pem.decode())
    clusters = wiring.cluster_set(cluster_options)
    for name in options.clusters:
        clusters.add(name)
    tls = make_server_tls() if options.tls else None
    kube_version = options.kube_version or kubectl_version() or discovery.DEFAULT_KUBE_VERSION
    app = make_app(clusters, token=options.token, kube_version=kube_version)
    # handler_cancellation: a watch whose client went away ends at once (and unsubscribes) instead
    # of idling until its timeout.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                           handler_cancellation=True)
    await runner.setup()
    context: ssl.SSLContext | None = tls.ssl_context() if tls is not None else None
    site = web.TCPSite(runner, options.host, options.port, ssl_context=context, backlog=1024)
    await site.start()
    port = int(runner.addresses[0][1]) if runner.addresses else options.port
    return RunningServer(runner, site, port, clusters, tls, options)


# -- app --------------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    out = {"Content-Type": "application/json"}
    if headers:
        out.update(headers)
    # The API server's JSON serializer is encoding/json's Encoder: compact, one trailing newline.
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode() + b"\n", status=status,
                        headers=out)


def _error(exc: errors.ApiError) -> web.Response:
    return _json(exc.body, exc.code, exc.headers)


def _not_found_text() -> web.Response:
    return web.Response(text=_NOT_FOUND_TEXT, status=404, content_type="text/plain")


_RESOURCE_NOT_FOUND = errors.ApiError(404, "NotFound", "the server could not find the requested resource",
                                      body={"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Failure",
                                            "message": "the server could not find the requested resource",
                                            "reason": "NotFound", "details": {}, "code": 404})


def make_app(clusters: ClusterSet, *, token: str | None = None,
             kube_version: str = discovery.DEFAULT_KUBE_VERSION) -> web.Application:
    app = web.Application(middlewares=[_auth_middleware(token)], client_max_size=64 * 1024 * 1024)
    app[CLUSTERS_KEY] = clusters
    app[KUBE_VERSION_KEY] = kube_version
    app[ADMIN_TOKEN_KEY] = token or ""
    app.router.add_route("*", "/clusters/{cluster}/{tail:.*}", _cluster_request)
    app.router.add_route("*", "/clusters/{cluster}", _cluster_request)
    app.router.add_route("*", "/kubesim/v1/clusters/{cluster}/faults", _faults_request)
    app.router.add_route("*", "/kubesim/v1/clusters/{cluster}", _cluster_admin)
    app.router.add_get("/kubesim/v1/clusters", _cluster_names)
    app.router.add_get("/healthz", _healthz)
    return app


def _auth_middleware(token: str | None) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Cluster requests authenticate per cluster (ServiceAccount tokens too): _cluster_request.
        if token is not None and request.path != "/healthz" and not request.path.startswith("/clusters/"):
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _json(errors.status_body(401, "Unauthorized", "Unauthorized"), 401)
        return await handler(request)

    return auth


async def _healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


async def _cluster_names(request: web.Request) -> web.StreamResponse:
    return _json({"clusters": request.app[CLUSTERS_KEY].names()})


async def _cluster_admin(request: web.Request) -> web.StreamResponse:
    clusters: ClusterSet = request.app[CLUSTERS_KEY]
    name = request.match_info["cluster"]
    if request.method == "PUT":
        clusters.add(name)
        return _json({"cluster": name})
    if request.method == "DELETE":
        clusters.remove(name)
        return _json({"cluster": name})
    if request.method == "GET":
        return _json({"cluster": name}) if clusters.get(name) else _not_found_text()
    return _json(errors.status_body(405, "MethodNotAllowed", "the server does not allow this method"), 405)


async def _faults_request(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTERS_KEY].get(request.match_info["cluster"])
    if cluster is None:
        return _not_found_text()
    if request.method == "GET":
        return _json(cluster.faults.to_json())
    if request.method == "DELETE":
        cluster.faults = faults.Faults()
        return _json(cluster.faults.to_json())
    if request.method == "PUT":
        try:
            cluster.faults = faults.Faults.from_json(await request.json())
        except (ValueError, faults.FaultsError) as exc:
            return _json(errors.status_body(400, "BadRequest", f"cluster {cluster.name}: {exc}"), 400)
        return _json(cluster.faults.to_json())
    return _json(errors.status_body(405, "MethodNotAllowed", "the server does not allow this method"), 405)


async def _cluster_request(request: web.Request) -> web.StreamResponse:
    cluster: Cluster | None = request.app[CLUSTERS_KEY].get(request.match_info["cluster"])
    if cluster is None:
        return _not_found_text()
    injected = await _inject_faults(request, cluster)
    if injected is not None:
        return injected
    warnings: list[str] = []
    token = unknownfields.REQUEST.set((request.query.get("fieldValidation") or "Warn", warnings))
    try:
        as_user = request.headers.get("Impersonate-User", "")
        user = authorizing.authenticate(
            cluster, request.headers.get("Authorization", ""), request.app[ADMIN_TOKEN_KEY] or None,
            as_user=as_user, as_groups=request.headers.getall("Impersonate-Group", []) if as_user else ())
        response = await _dispatch(request, cluster, request.match_info.get("tail", "").strip("/"), user)
    except errors.ApiError as exc:
        response = _error(exc)
    finally:
        unknownfields.REQUEST.reset(token)
    if warnings and not response.prepared:
        for warning in warnings:
            response.headers.add("Warning", unknownfields.warning_header(warning))
    return response


async def _inject_faults(request: web.Request, cluster: Cluster) -> web.StreamResponse | None:
    active = cluster.faults
    if not active.active:
        return None
    if active.latency:
        await asyncio.sleep(active.latency)
    if active.draw_drop():
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPServiceUnavailable()  # never reaches the client: the connection is gone
    code = active.draw_error()
    if code == 429:
        return _json(errors.status_body(429, "TooManyRequests", "Too many requests, please try again later.",
                                        {"retryAfterSeconds": active.retry_after}), 429,
                     {"Retry-After": str(active.retry_after)})
    if code == 500:
        return _json(errors.status_body(500, "InternalError",
                                        "Internal error occurred: kubesim injected fault"), 500)
    if code == 503:
        return _json(errors.status_body(503, "ServiceUnavailable", "the server is currently unable to handle "
                                        "the request"), 503, {"Retry-After": str(active.retry_after)})
    if code in (502, 504):  # answered by a proxy, not the API server: no Kubernetes Status body
        reason = "Bad Gateway" if code == 502 else "Gateway Timeout"
        return web.Response(status=code, text=f"<html><body><h1>{code} {reason}</h1></body></html>\n",
                            content_type="text/html")
    if active.draw_stall():
        return await _stall(request, active.stall_for)
    return None


async def _stall(request: web.Request, seconds: float) -> web.StreamResponse:
    """Headers and the start of a body, then silence, then the connection cut (never a whole answer)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = 1 << 20
    await response.prepare(request)
    await response.write(b'{"kind":')
    await asyncio.sleep(seconds)
    if request.transport is not None:
        request.transport.abort()
    return response


async def _dispatch(request: web.Request, cluster: Cluster, tail: str, user: rbac.UserInfo) -> web.StreamResponse:
    segs = [s for s in tail.split("/") if s] if tail else []
    method = request.method
    non_resource = not segs or segs[0] not in ("api", "apis") or len(segs) < (3 if segs[0] == "api" else 4)
    if non_resource and not user.privileged:
        # A non-resource request (discovery, version, health, OpenAPI): authorized by its path.
        authorizing.require(cluster, user, rbac.Attributes(
            verb=method.lower() if method != "HEAD" else "get", resource_request=False, path="/" + tail))
    if not segs:
        return _not_found_text()
    head = segs[0]
    if head in ("healthz", "livez", "readyz") and method == "GET":
        return web.Response(text="ok")
    if head == "version" and len(segs) == 1:
        return _json(discovery.version_info(request.app[KUBE_VERSION_KEY]))
    if segs[:2] == ["openapi", "v3"]:
        return _openapi_v3(request, cluster, segs[2:])
    if head == "api":
        if len(segs) == 1:
            return _discovery_root(request, cluster, legacy=True)
        group, version, rest = "", segs[1], segs[2:]
    elif head == "apis":
        if len(segs) == 1:
            return _discovery_root(request, cluster, legacy=False)
        if len(segs) == 2:
            versions = discovery.group_versions(cluster, segs[1])
            return _json(discovery.api_group(segs[1], versions)) if versions else _not_found_text()
        group, version, rest = segs[1], segs[2], segs[3:]
    else:
        return _not_found_text()
    if not rest:
        listing = discovery.resource_list(cluster, group, version)
        return _json(listing) if listing is not None else _not_found_text()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        inner = cluster.resolve(group, version, rest[2])
        if inner is not None and inner.namespaced:
            namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise _RESOURCE_NOT_FOUND
    rt = cluster.resolve(group, version, rest[0])
    if rt is None:
        if discovery.resource_list(cluster, group, version) is None and not cluster.custom.get((group, version)):
            return _not_found_text()
        raise _RESOURCE_NOT_FOUND
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and not _has_subresource(rt, sub):
        raise _RESOURCE_NOT_FOUND
    if rt.namespaced and namespace is None and name is not None:
        raise _RESOURCE_NOT_FOUND
    if not user.privileged:
        attrs = _attributes(request, rt, namespace, name, sub)
        authorizing.require(cluster, user, attrs)
        if (method == "PATCH" and name is not None and sub is None
                and request.headers.get("Content-Type", "").startswith("application/apply-patch")
                and cluster.store.get(rt.key, namespace or "", name) is None):
            # An apply that creates is authorized for `create` too: the patch handler wraps its create
            # validation in withAuthorization with verb "create" (apiserver endpoints/handlers/patch.go,
            # createAuthorizerAttributes). The real 403 then carries only the authorizer's reason
            # (often empty); kubesim's names the user and the missing verb, as the request-level one does.
            authorizing.require(cluster, user, dataclasses.replace(attrs, verb="create"))
    if rt.group == "authorization.k8s.io" and rt.plural in _REVIEWS and method == "POST" and name is None:
        return _json(authorizing.review(cluster, user, rt.plural, await _body(request)), 201)
    if sub == "token" and method == "POST" and namespace is not None and name is not None:
        return _json(_token_request(cluster, namespace, name, await _body(request)), 201)
    if rt.group == authorizing.RBAC and rt.plural in _RBAC_WRITES and not user.privileged:
        # aiohttp keeps the read body, so the verb below reads the same bytes again.
        if method in ("POST", "PUT"):
            authorizing.check_escalation(cluster, user, rt.plural, namespace or "", await _body(request))
        elif method == "PATCH" and name is not None:
            # A patch is checked on what it would write: the same patch, dry-run, first.
            _code, result = await _patch(request, cluster, rt, namespace or "", name, sub, dry_run=True)
            authorizing.check_escalation(cluster, user, rt.plural, namespace or "", result)
    return await _resource(request, cluster, rt, namespace, name, sub)


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
_MIN_TOKEN_SECONDS = 600


def _attributes(request: web.Request, rt: ResourceType, namespace: str | None, name: str | None,
                sub: str | None) -> rbac.Attributes:
    """The request as the authorizer sees it (``RequestInfoFactory``): a namespace is its own namespace."""
    method = request.method
    if method in ("GET", "HEAD"):
        verb = "get" if name is not None else ("watch" if _bool(request, "watch") else "list")
    elif method == "DELETE":
        verb = "delete" if name is not None else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    ns = namespace or ""
    if rt.key == ("", "namespaces") and name is not None:
        ns = name
    return rbac.Attributes(verb=verb, group=rt.group, resource=rt.plural, subresource=sub or "",
                           namespace=ns, name=name or "")


def _token_request(cluster: Cluster, namespace: str, name: str, body: Any) -> Obj:
    """POST serviceaccounts/<name>/token: a TokenRequest answered with a token for that account."""
    spec = (body or {}).get("spec") if isinstance(body, dict) else None
    raw = (spec or {}).get("expirationSeconds")
    try:
        seconds = int(raw) if raw not in (None, "") else 3600  # the API's default
    except (TypeError, ValueError) as exc:
        raise errors.bad_request(f"error decoding body: spec.expirationSeconds: {raw!r} is not an integer") from exc
    # pkg/apis/authentication/validation ValidateTokenRequest (the name in the message is always "").
    if seconds < _MIN_TOKEN_SECONDS:
        raise errors.invalid("authentication.k8s.io", "TokenRequest", "", [
            ("FieldValueInvalid", "spec.expirationSeconds",
             f"Invalid value: {seconds}: may not specify a duration less than 10 minutes")])
    if seconds > 1 << 32:
        raise errors.invalid("authentication.k8s.io", "TokenRequest", "", [
            ("FieldValueInvalid", "spec.expirationSeconds",
             f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds")])
    issued = cluster.wall_time()
    token = authorizing.issue_token(cluster, namespace, name, expires_at=issued + seconds)
    expires = datetime.datetime.fromtimestamp(int(issued) + seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {"audiences": list((spec or {}).get("audiences") or ["https://kubernetes.default.svc"]),
                     "expirationSeconds": seconds, "boundObjectRef": (spec or {}).get("boundObjectRef")},
            "status": {"token": token, "expirationTimestamp": expires}}


def _openapi_v3(request: web.Request, cluster: Cluster, rest: list[str]) -> web.StreamResponse:
    if not rest:
        return _json(openapi.root_document(cluster, f"/clusters/{cluster.name}"))
    if rest[0] == "api" and len(rest) == 2:
        doc = openapi.group_version_document(cluster, "", rest[1])
    elif rest[0] == "apis" and len(rest) == 3:
        doc = openapi.group_version_document(cluster, rest[1], rest[2])
    else:
        doc = None
    return _json(doc) if doc is not None else _not_found_text()


def _has_subresource(rt: ResourceType, sub: str) -> bool:
    return ((sub == "status" and rt.status) or (sub == "scale" and rt.scale)
            or (sub == "finalize" and rt.key == ("", "namespaces"))
            or (sub == "token" and rt.key == ("", "serviceaccounts")))


def _discovery_root(request: web.Request, cluster: Cluster, *, legacy: bool) -> web.StreamResponse:
    if discovery.wants_aggregated(request.headers.get("Accept", "")):
        body = discovery.aggregated(cluster, legacy=legacy)
        tag = discovery.etag(body)
        headers = {"Content-Type": discovery.AGGREGATED_CONTENT_TYPE, "ETag": tag, "Vary": "Accept",
                   "Cache-Control": "public"}
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), headers=headers)
    if legacy:
        host = request.host or "127.0.0.1"
        return _json(discovery.api_versions(host))
    return _json(discovery.api_group_list(cluster))


# -- resources --------------------------------------------------------------------------------------


def _bool(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw in _TRUE or raw == "":
        return True
    if raw in _FALSE:
        return False
    raise errors.bad_request(f'invalid boolean value for {name}: "{raw}"')


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.ApiError(
                422, "Invalid",
                f'dryRun: Unsupported value: "{value}": supported values: "All"',
                {"causes": [{"reason": "FieldValueNotSupported", "field": "dryRun",
                             "message": f'Unsupported value: "{value}": supported values: "All"'}]})
    return bool(values)


def _manager(request: web.Request) -> str:
    given = request.query.get("fieldManager")
    if given:
        return given
    agent = request.headers.get("User-Agent", "")
    return agent.split("/", 1)[0] or "unknown"


_UNSUPPORTED_MEDIA = errors.ApiError(415, "UnsupportedMediaType",
                                     "the body of the request was in an unknown format - accepted media types "
                                     "include: application/json, application/yaml")


def _refuse_protobuf(request: web.Request) -> None:
    if "protobuf" in request.headers.get("Content-Type", ""):
        raise _UNSUPPORTED_MEDIA


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if "protobuf" in request.headers.get("Content-Type", ""):
        # Typed client-go clients (kubectl create namespace/configmap, auth can-i) send protobuf. The
        # kinds they write are decoded; for any other kind kubesim answers as a server that accepts
        # only JSON and YAML does.
        try:
            return protobufs.decode(raw)
        except protobufs.UnknownKind as exc:
            raise _UNSUPPORTED_MEDIA from exc
        except protobufs.ProtobufError as exc:
            raise errors.bad_request(f"error decoding body: {exc}") from exc
    return _decode(raw)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        try:
            return yaml.load(raw.decode("utf-8"), Loader=yaml.CSafeLoader)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"error decoding body: {exc}") from exc


def _present_list(rt: ResourceType, items: list[Obj]) -> list[Obj]:
    if rt.custom:
        return [registry.present(rt, obj) for obj in items]
    # Built-in list items carry no apiVersion/kind, as the real server encodes them.
    return [{k: v for k, v in obj.items() if k not in ("apiVersion", "kind")} for obj in items]


async def _resource(request: web.Request, cluster: Cluster, rt: ResourceType, namespace: str | None,
                    name: str | None, sub: str | None) -> web.StreamResponse:
    method = request.method
    ns = namespace or ""
    if name is None:
        if method == "GET":
            return await _list_or_watch(request, cluster, rt, namespace)
        if method == "POST":
            body = await _body(request)
            obj = registry.create(cluster, rt, ns, body, manager=_manager(request), dry_run=_dry_run(request))
            return _json(registry.present(rt, obj), 201)
        if method == "DELETE":
            options = await _delete_options(request)
            labels = selectors.parse_label_selector(request.query.get("labelSelector"))
            fields = selectors.parse_field_selector(request.query.get("fieldSelector"), rt.selectable_fields)
            items, _rv, _next = registry.list_objects(cluster, rt, namespace, labels=labels, fields=fields)
            return _json(deleting.delete_collection(cluster, rt, namespace, items, options,
                                                    dry_run=_dry_run(request)))
        return _method_not_allowed(method)
    if sub == "scale" and method in ("GET", "PUT", "PATCH"):
        _refuse_protobuf(request)
        return _json(registry.scale(cluster, rt, ns, name, method=method, raw=await request.read(),
                                    content_type=request.headers.get("Content-Type", ""),
                                    manager=_manager(request), dry_run=_dry_run(request)))
    if method == "GET":
        obj = registry.get(cluster, rt, ns, name)
        if "as=Table" in request.headers.get("Accept", ""):
            # `kubectl get deploy web` asks for a table too; without it kubectl shows only NAME and AGE.
            return _json(tables.table(rt.group, rt.kind, [obj],
                                      {"resourceVersion": obj["metadata"].get("resourceVersion", "")}))
        if _wants_metadata(request):
            return _json(_partial(obj))
        return _json(registry.present(rt, obj))
    if method == "PUT":
        body = await _body(request)
        if sub == "finalize":
            return _json(_finalize(cluster, rt, name, body))
        obj = registry.update(cluster, rt, ns, name, body, manager=_manager(request), dry_run=_dry_run(request),
                              subresource=sub)
        return _json(registry.present(rt, obj))
    if method == "PATCH":
        code, obj = await _patch(request, cluster, rt, ns, name, sub, dry_run=_dry_run(request))
        return _json(registry.present(rt, obj), code)
    if method == "DELETE" and sub is None:
        options = await _delete_options(request)
        code, body = deleting.delete(cluster, rt, ns, name, options, dry_run=_dry_run(request))
        return _json(registry.present(rt, body) if body.get("kind") == rt.kind else body, code)
    return _method_not_allowed(method)


async def _patch(request: web.Request, cluster: Cluster, rt: ResourceType, ns: str, name: str, sub: str | None,
                 *, dry_run: bool) -> tuple[int, Obj]:
    raw = await request.read()
    return registry.patch(
        cluster, rt, ns, name, raw, request.headers.get("Content-Type", ""),
        manager=request.query.get("fieldManager") or (
            None if request.headers.get("Content-Type", "").startswith("application/apply-patch")
            else _manager(request)),
        force=_bool(request, "force"), dry_run=dry_run, subresource=sub)


def _method_not_allowed(method: str) -> web.Response:
    return _json(errors.status_body(405, "MethodNotAllowed", f"the server does not allow this method on the "
                                    f"requested resource ({method})"), 405)


def _finalize(cluster: Cluster, rt: ResourceType, name: str, body: Any) -> Obj:
    old = registry.get(cluster, rt, "", name)
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    new = dict(old, spec={"finalizers": list((body.get("spec") or {}).get("finalizers") or [])})
    if not new["spec"]["finalizers"] and old["metadata"].get("deletionTimestamp") \
            and not old["metadata"].get("finalizers"):
        gone = cluster.store.remove(rt.key, "", name)
        assert gone is not None
        return gone
    return cluster.store.put(rt.key, new)


async def _delete_options(request: web.Request) -> dict[str, Any]:
    options: dict[str, Any] = {}
    policy = request.query.get("propagationPolicy")
    if policy:
        options["propagationPolicy"] = policy
    orphan = _bool(request, "orphanDependents")
    if orphan is not None:
        options["orphanDependents"] = orphan
    body = await _body(request)
    if isinstance(body, dict):
        # A non-empty DeleteOptions body takes precedence over the query.
        options.update({k: v for k, v in body.items() if v is not None and k not in ("kind", "apiVersion")})
        if body.get("dryRun"):
            for value in body["dryRun"]:
                if value != "All":
                    raise errors.bad_request(f'dryRun: Unsupported value: "{value}"')
    return options


async def _list_or_watch(request: web.Request, cluster: Cluster, rt: ResourceType,
                         namespace: str | None) -> web.StreamResponse:
    query = request.query
    labels = selectors.parse_label_selector(query.get("labelSelector"))
    fields = selectors.parse_field_selector(query.get("fieldSelector"), rt.selectable_fields)
    rv = query.get("resourceVersion", "")
    rv_match = query.get("resourceVersionMatch")
    watching_now = bool(_bool(request, "watch"))
    if rv_match is not None and not rv and not watching_now:
        raise errors.ApiError(
            422, "Invalid",
            'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is '
            "forbidden unless resourceVersion is provided",
            {"group": "meta.k8s.io", "kind": "ListOptions",
             "causes": [{"reason": "FieldValueForbidden", "field": "resourceVersionMatch",
                         "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is "
                                    "provided"}]})
    if watching_now:
        send_initial = bool(_bool(request, "sendInitialEvents"))
        bookmarks = bool(_bool(request, "allowWatchBookmarks"))
        if send_initial and rv_match != "NotOlderThan":
            raise errors.ApiError(
                422, "Invalid",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents '
                "requires setting resourceVersionMatch to NotOlderThan",
                {"group": "meta.k8s.io", "kind": "ListOptions"})
        timeout_raw = query.get("timeoutSeconds")
        try:
            timeout = float(timeout_raw) if timeout_raw else 0.0
            if timeout <= 0:  # unset or 0: the server's own watch length
                timeout = cluster.options.watch_timeout
        except ValueError as exc:
            raise errors.bad_request(f"invalid timeoutSeconds: {timeout_raw}") from exc
        watch = watching.WatchRequest(rt=rt, namespace=namespace, labels=labels, fields=fields,
                                      resource_version=rv, send_initial=send_initial, bookmarks=bookmarks,
                                      timeout=timeout, metadata_only=_wants_metadata(request))
        return await watching.serve(request, cluster, watch)
    limit_raw = query.get("limit")
    try:
        limit = int(limit_raw) if limit_raw else 0
    except ValueError as exc:
        raise errors.bad_request(f"invalid limit: {limit_raw}") from exc
    items, list_rv, token = registry.list_objects(cluster, rt, namespace, labels=labels, fields=fields,
                                                  limit=max(limit, 0), continue_token=query.get("continue", ""))
    meta: Obj = {"resourceVersion": list_rv}
    if token:
        meta["continue"] = token
    body = {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
            "items": _present_list(rt, items)}
    if "as=Table" in request.headers.get("Accept", ""):
        return _json(tables.table(rt.group, rt.kind, items, meta))
    if _wants_metadata(request):
        return _json({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                      "items": [_partial(obj) for obj in items]})
    return _json(body)


def _wants_metadata(request: web.Request) -> bool:
    # client-go's metadata client: `application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`.
    accept = request.headers.get("Accept", "")
    return "as=PartialObjectMetadata" in accept and "g=meta.k8s.io" in accept


def _partial(obj: Obj) -> Obj:
    """``meta.AsPartialObjectMetadata``: the object's metadata alone, typed as the server types it."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


async def serve_forever(options: ServerOptions, ready: Callable[[RunningServer], None] | None = None) -> None:
    """Run until cancelled (the CLI wires SIGTERM/SIGINT to cancellation)."""
    server = await start(options)
    try:
        if ready is not None:
            ready(server)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    finally:
        await server.stop()
