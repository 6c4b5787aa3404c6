"""``ClusterClient``: the spoke's one door to the Kubernetes API.

Built on the official ``kubernetes`` client: its ``ApiClient`` carries the kubeconfig or in-cluster
credentials and the connection pool, and its ``DynamicClient`` (with a discovery cache file in a
private temporary directory) maps apiVersion/kind to resources. Requests go through
``ApiClient.call_api`` directly rather than through ``DynamicClient``'s verbs: those wrap every
answer in ``ResourceInstance`` trees, which costs more than the request itself on a 300-object
bundle, and the spoke wants plain dicts anyway (its pure core works on dicts).

Every verb retries transient failures (``retrying``) and raises only ``errors.ClusterError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
from kubernetes.watch import watch as _k8s_watch

from protos.objects import ObjectRef, group_of
from spoke.cluster import errors, retrying

# The kubernetes package ships partial annotations; these are the untyped entry points we call.
_kconfig: Any = kubernetes.config
_iter_resp_lines: Any = _k8s_watch.iter_resp_lines
_Dynamic: Any = DynamicClient

__all__ = ["ClientOptions", "ClusterClient", "ListResult", "ResourceInfo", "WatchEvent", "WatchStream"]

_APPLY_PATCH = "application/apply-patch+yaml"
#: seconds of silence past a watch's ``timeoutSeconds`` after which its stream counts as stalled
WATCH_READ_SLACK = 5.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """Connection behaviour of a ``ClusterClient``."""

    request_timeout: float = 30.0   #: seconds for one request (watches use their own)
    pool_size: int = 32             #: connections kept: parallel applies plus one per watched kind
    retry: retrying.RetryPolicy = dataclasses.field(default_factory=retrying.RetryPolicy)


@dataclasses.dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        group = group_of(self.api_version)
        base = f"/apis/{self.api_version}" if group else f"/api/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


@dataclasses.dataclass(frozen=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: str                  #: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    object: dict[str, Any]


class WatchStream:
    """An open watch; iterate for events, ``close()`` from any thread to end it."""

    def __init__(self, response: Any, *, api_version: str, kind: str) -> None:
        self._response = response
        self._api_version = api_version
        self._kind = kind
        self._closed = False   #: closed by ``close()`` (the spoke stopping the watch), not broken

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            for line in _iter_resp_lines(self._response):
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") != "ERROR":
                    obj.setdefault("apiVersion", self._api_version)
                    obj.setdefault("kind", self._kind)
                yield WatchEvent(type=str(event.get("type", "")), object=obj)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
            if self._closed:
                return
            raise errors.ConnectionFailedError(
                f"{self._kind} watch", f"stream broke: {type(exc).__name__}: {exc}") from exc
        except AttributeError:
            if self._closed:
                return  # closed from another thread mid-read: http.client trips over its own closed file
            raise
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        # close() alone does not wake a thread blocked in recv(); shutting the socket down does.
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        try:
            self._response.close()
            self._response.release_conn()
        except Exception:  # closing a dead socket may fail in any way; nothing to do
            pass


def _ref(api_version: str, kind: str, namespace: str, name: str) -> ObjectRef:
    return ObjectRef(group=group_of(api_version), kind=kind, namespace=namespace, name=name)


class ClusterClient:
    """Plain-dict verbs over one cluster's API, with retries and typed errors."""

    def __init__(self, api_client: kubernetes.client.ApiClient, *,
                 options: ClientOptions | None = None) -> None:
        self._api = api_client
        self._options = options or ClientOptions()
        self._cache_dir = tempfile.mkdtemp(prefix="convoy-discovery-")
        self._dynamic: Any = None
        self._lock = threading.Lock()
        self._resources: dict[tuple[str, str], ResourceInfo] = {}

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None,
                options: ClientOptions | None = None) -> ClusterClient:
        """From a kubeconfig (and context), or the in-cluster service account when neither is given."""
        options = options or ClientOptions()
        configuration = kubernetes.client.Configuration()
        try:
            if kubeconfig is None and context is None:
                _kconfig.load_incluster_config(client_configuration=configuration)
            else:
                _kconfig.load_kube_config(config_file=kubeconfig, context=context,
                                                   client_configuration=configuration)
        except (kubernetes.config.ConfigException, OSError) as exc:
            where = kubeconfig or "in-cluster configuration"
            raise errors.ClusterError(where, f"cannot load Kubernetes configuration: {exc}") from exc
        configuration.connection_pool_maxsize = options.pool_size
        return cls(kubernetes.client.ApiClient(configuration), options=options)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, *, context: str | None = None,
                        options: ClientOptions | None = None) -> ClusterClient:
        """From a kubeconfig file, ``$KUBECONFIG`` or ``~/.kube/config`` when None: never the in-cluster
        service account (an operator's command, unlike the agent, runs outside the cluster)."""
        options = options or ClientOptions()
        configuration = kubernetes.client.Configuration()
        try:
            _kconfig.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise errors.ClusterError(kubeconfig or "kubeconfig",
                                      f"cannot load Kubernetes configuration: {exc}") from exc
        configuration.connection_pool_maxsize = options.pool_size
        return cls(kubernetes.client.ApiClient(configuration), options=options)

    @classmethod
    def from_config_dict(cls, config: Mapping[str, Any], *, context: str | None = None,
                         options: ClientOptions | None = None) -> ClusterClient:
        """From a kubeconfig already parsed into a dict."""
        options = options or ClientOptions()
        configuration = kubernetes.client.Configuration()
        _kconfig.load_kube_config_from_dict(dict(config), context=context,
                                                     client_configuration=configuration)
        configuration.connection_pool_maxsize = options.pool_size
        return cls(kubernetes.client.ApiClient(configuration), options=options)

    def close(self) -> None:
        shutil.rmtree(self._cache_dir, ignore_errors=True)
        api: Any = self._api
        api.close()

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    # -- discovery ----------------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> ResourceInfo:
        """The resource serving ``kind`` in ``api_version``; re-discovers once on a miss (new CRDs)."""
        found = self._resources.get((api_version, kind))
        if found is not None:
            return found
        info: ResourceInfo = self._call(lambda: self._discover(api_version, kind))
        return info

    def _discover(self, api_version: str, kind: str) -> ResourceInfo:
        what = f"{kind} ({api_version})"
        with self._lock:
            try:
                if self._dynamic is None:
                    self._dynamic = _Dynamic(self._api, cache_file=os.path.join(self._cache_dir, "discovery.json"))
                res = self._dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError as exc:
                raise errors.UnknownKindError(
                    what, "the API server serves no such kind (is its CustomResourceDefinition applied and "
                          "Established?)") from exc
            except (DynamicApiError, ApiException) as exc:
                status = int(getattr(exc, "status", 0) or 0)
                if status:
                    raise errors.api_error(what, status=status, reason=str(getattr(exc, "reason", "")),
                                           message=f"discovery failed: {getattr(exc, 'reason', exc)}") from exc
                raise errors.ConnectionFailedError(what, f"discovery failed: {exc}") from exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise errors.ConnectionFailedError(what, f"discovery failed: {exc}") from exc
            info = ResourceInfo(api_version=api_version, kind=kind, plural=str(res.name),
                                namespaced=bool(res.namespaced))
            self._resources[(api_version, kind)] = info
            return info

    def listable_kinds(self) -> list[ResourceInfo]:
        """Every kind the API server lists, at its group's preferred version (subresources left out).

        Raw discovery documents (``/api/v1``, ``/apis``, ``/apis/{group}/{version}``), one request per
        group; what is found is also remembered for ``resource``.
        """
        found: list[ResourceInfo] = []
        versions = ["v1"]
        groups: dict[str, Any] = self._call(self._bind_get("/apis", "discovery", []))
        for group in groups.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            if preferred:
                versions.append(str(preferred))
        for api_version in versions:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing: dict[str, Any] = self._call(self._bind_get(path, f"discovery of {api_version}", []))
            except errors.NotFoundError:  # a group removed between the two requests
                continue
            for res in listing.get("resources") or []:
                name = str(res.get("name") or "")
                if not name or "/" in name or "list" not in (res.get("verbs") or []):
                    continue
                info = ResourceInfo(api_version=api_version, kind=str(res.get("kind") or ""), plural=name,
                                    namespaced=bool(res.get("namespaced")))
                found.append(info)
                with self._lock:
                    self._resources.setdefault((api_version, info.kind), info)
        return found

    def forget_discovery(self) -> None:
        """Drop cached resource lookups (after CRDs changed)."""
        with self._lock:
            self._resources.clear()
            if self._dynamic is not None:
                self._dynamic.resources.invalidate_cache()

    # -- the raw request ----------------------------------------------------------------------

    def _request(self, method: str, path: str, *, what: ObjectRef | str,
                 query: Sequence[tuple[str, str]] = (), body: Any = None,
                 content_type: str | None = None, timeout: float | None = None,
                 read_timeout: float | None = None, stream: bool = False, with_status: bool = False) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        request = self._api.param_serialize(method, path, query_params=list(query), header_params=headers,
                                            body=body, auth_settings=["BearerToken"])
        # A total timeout bounds the whole answer; a stream gets a read timeout instead: the most
        # seconds between two bytes, so a stream that stalled mid-way is noticed however long it ran.
        limit: float | tuple[float, float] = timeout or self._options.request_timeout
        if read_timeout is not None:
            limit = (self._options.request_timeout, read_timeout)
        try:
            response: Any = self._api.call_api(*request, _request_timeout=limit)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.ConnectionFailedError(what, f"{method} failed: {type(exc).__name__}: {exc}") from exc
        except ApiException as exc:  # the client's wrapper for TLS failures
            raise errors.ConnectionFailedError(what, f"{method} failed: {exc.reason}") from exc
        if not 200 <= response.status <= 299:
            raise self._error_from(response, what)
        if stream:
            return response.response
        try:
            body_out = json.loads(response.read())
        except ValueError as exc:
            raise errors.ConnectionFailedError(what, f"{method} answered with non-JSON: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # Headers arrived but the body stalled or was cut: as transient as no answer at all.
            raise errors.ConnectionFailedError(what, f"{method} failed reading the answer: "
                                                     f"{type(exc).__name__}: {exc}") from exc
        return (int(response.status), body_out) if with_status else body_out

    @staticmethod
    def _error_from(response: Any, what: ObjectRef | str) -> errors.ApiError:
        raw = b""
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            raw = response.read() or b""
        message = raw.decode("utf-8", "replace")[:2000]
        reason = str(response.reason or "")
        try:
            status_body = json.loads(raw)
            if isinstance(status_body, dict):
                message = str(status_body.get("message") or message)
                reason = str(status_body.get("reason") or reason)
        except ValueError:
            pass
        retry_after: float | None = None
        header = response.headers.get("Retry-After") if response.headers is not None else None
        if header:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return errors.api_error(what, status=int(response.status), reason=reason, message=message,
                                retry_after=retry_after)

    def _bind_get(self, path: str, what: str, query: list[tuple[str, str]]) -> Callable[[], Any]:
        return lambda: self._request("GET", path, what=what, query=query)

    def _call(self, fn: Callable[[], Any]) -> Any:
        return retrying.call(fn, policy=self._options.retry)

    # -- verbs ----------------------------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        res = self.resource(api_version, kind)
        ref = _ref(api_version, kind, namespace if res.namespaced else "", name)
        try:
            obj: dict[str, Any] = self._call(
                lambda: self._request("GET", res.path(namespace, name), what=ref))
        except errors.NotFoundError:
            return None
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        return obj

    def list(self, api_version: str, kind: str, *, label_selector: str | None = None,
             namespace: str = "") -> ListResult:
        """Every object of a kind (across namespaces unless ``namespace``), paged."""
        res = self.resource(api_version, kind)
        items: list[dict[str, Any]] = []
        cont = ""
        while True:
            query = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if cont:
                query.append(("continue", cont))
            page: dict[str, Any] = self._call(self._bind_get(res.path(namespace), f"{kind} list", query))
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = page.get("metadata") or {}
            cont = str(meta.get("continue") or "")
            if not cont:
                return ListResult(items=items, resource_version=str(meta.get("resourceVersion") or ""))

    def apply(self, obj: Mapping[str, Any], *, manager: str, force: bool = True,
              dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply ``obj`` as ``manager``."""
        return self.apply_status(obj, manager=manager, force=force, dry_run=dry_run)[1]

    def apply_status(self, obj: Mapping[str, Any], *, manager: str, force: bool = True,
                     dry_run: bool = False) -> tuple[bool, dict[str, Any]]:
        """Server-side apply; also says whether it created the object (HTTP 201)."""
        ref = ObjectRef.of(obj)
        res = self.resource(str(obj["apiVersion"]), ref.kind)
        query = [("fieldManager", manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        status, result = self._call(lambda: self._request(
            "PATCH", res.path(ref.namespace, ref.name), what=ref, query=query, body=dict(obj),
            content_type=_APPLY_PATCH, with_status=True))
        return status == 201, result

    def create(self, obj: Mapping[str, Any], *, manager: str) -> dict[str, Any]:
        ref = ObjectRef.of(obj)
        res = self.resource(str(obj["apiVersion"]), ref.kind)
        result: dict[str, Any] = self._call(lambda: self._request(
            "POST", res.path(ref.namespace), what=ref, query=[("fieldManager", manager)], body=dict(obj)))
        return result

    def replace(self, obj: Mapping[str, Any], *, manager: str) -> dict[str, Any]:
        """PUT ``obj``; a stale ``metadata.resourceVersion`` raises ``ConflictError``."""
        ref = ObjectRef.of(obj)
        res = self.resource(str(obj["apiVersion"]), ref.kind)
        result: dict[str, Any] = self._call(lambda: self._request(
            "PUT", res.path(ref.namespace, ref.name), what=ref, query=[("fieldManager", manager)],
            body=dict(obj)))
        return result

    def update_with(self, api_version: str, kind: str, namespace: str, name: str,
                    mutate: Callable[[dict[str, Any] | None], dict[str, Any]], *, manager: str,
                    attempts: int = 5) -> dict[str, Any]:
        """Read, ``mutate`` and write back (create when absent); a 409 re-reads and tries again."""
        last: errors.ConflictError | None = None
        for _ in range(attempts):
            live = self.get(api_version, kind, namespace, name)
            desired = mutate(None if live is None else json.loads(json.dumps(live)))
            try:
                if live is None:
                    return self.create(desired, manager=manager)
                desired.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
                return self.replace(desired, manager=manager)
            except errors.ConflictError as exc:
                last = exc
        assert last is not None
        raise last

    def delete(self, api_version: str, kind: str, namespace: str, name: str, *,
               propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        res = self.resource(api_version, kind)
        ref = _ref(api_version, kind, namespace if res.namespaced else "", name)
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            self._call(lambda: self._request("DELETE", res.path(namespace, name), what=ref, body=body))
        except errors.NotFoundError:
            return False
        return True

    def watch(self, api_version: str, kind: str, *, label_selector: str | None = None,
              resource_version: str = "", timeout_seconds: int = 60) -> WatchStream:
        """Open a watch across namespaces from ``resource_version``.

        The server ends the stream after ``timeoutSeconds``; a stream silent for ``WATCH_READ_SLACK``
        seconds more than that (no event, bookmark or end) has stalled: reading it raises
        ``ConnectionFailedError``."""
        res = self.resource(api_version, kind)
        query = [("watch", "true"), ("timeoutSeconds", str(timeout_seconds)),
                 ("allowWatchBookmarks", "true")]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._call(lambda: self._request(
            "GET", res.path(), what=f"{kind} watch", query=query, stream=True,
            read_timeout=timeout_seconds + WATCH_READ_SLACK))
        return WatchStream(response, api_version=api_version, kind=kind)
