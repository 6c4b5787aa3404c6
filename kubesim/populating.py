"""The controllers that fill namespaces and ServiceAccount token Secrets, as a real control plane does.

* the serviceaccount controller: every new namespace gets a ``default`` ServiceAccount;
* the root-ca-cert publisher: every new namespace gets the ``kube-root-ca.crt`` ConfigMap;
* the token controller: a ``kubernetes.io/service-account-token`` Secret naming an existing account
  (annotation ``kubernetes.io/service-account.name``) gets ``data.token``, ``data.ca.crt`` and
  ``data.namespace`` (the token authenticates as that account: ``kubesim.authorizing``).

Like the garbage collector, each runs on the loop right after the write that woke it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import copy
from collections.abc import Sequence

from kubesim import authorizing, errors, registry, resources
from kubesim.clusters import Cluster
from kubesim.store import Event

__all__ = ["ROOT_CA_CONFIGMAP", "SA_TOKEN_TYPE", "Populator"]

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
_NS = ("", "namespaces")
_SECRETS = ("", "secrets")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Populator:
    """Fills new namespaces and token Secrets (see the module docstring)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def on_event(self, event: Event) -> None:
        if event.key == _NS and event.type == "ADDED":
            name = event.obj["metadata"]["name"]
            asyncio.get_running_loop().call_soon(self._fill_namespace, name, context=contextvars.Context())
        elif (event.key == _SECRETS and event.type != "DELETED" and event.obj.get("type") == SA_TOKEN_TYPE
              and "token" not in (event.obj.get("data") or {})):
            meta = event.obj["metadata"]
            asyncio.get_running_loop().call_soon(self._fill_token, meta.get("namespace") or "", meta["name"],
                                                 context=contextvars.Context())

    def fill_now(self, namespaces: Sequence[str], plural: str) -> None:
        """Give ``namespaces`` (those made at boot) their ServiceAccount or their ConfigMap now."""
        for name in namespaces:
            self._fill_namespace(name, only=plural)

    def _fill_namespace(self, name: str, *, only: str = "") -> None:
        core = resources.builtin_types()[("", "v1")]
        ns = self.cluster.store.get(_NS, "", name)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        for rt, body, manager in (
            (core["serviceaccounts"], {"metadata": {"name": "default"}}, "kube-controller-manager"),
            (core["configmaps"], {"metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver "
                                             "when using internal endpoints such as the internal service IP or "
                                             "kubernetes.default.svc. No other usage is guaranteed across "
                                             "distributions of Kubernetes clusters."}},
             "data": {"ca.crt": self.cluster.options.ca_pem}}, "kube-controller-manager"),
        ):
            if only and rt.plural != only:
                continue
            # Already there (a user made it first) or the namespace is going away: nothing to do.
            with contextlib.suppress(errors.ApiError):
                registry.create(self.cluster, rt, name, body, manager=manager)

    def _fill_token(self, namespace: str, name: str) -> None:
        secret = self.cluster.store.get(_SECRETS, namespace, name)
        if secret is None or "token" in (secret.get("data") or {}):
            return
        annotations = secret["metadata"].get("annotations") or {}
        account = annotations.get(SA_NAME_ANNOTATION, "")
        try:
            token = authorizing.issue_token(self.cluster, namespace, account)
        except errors.ApiError:
            return  # no such account (yet): the real controller waits too
        sa = self.cluster.store.get(("", "serviceaccounts"), namespace, account)
        assert sa is not None
        new = copy.deepcopy(secret)
        new["metadata"]["annotations"] = dict(annotations, **{SA_UID_ANNOTATION: sa["metadata"]["uid"]})
        new["data"] = dict(new.get("data") or {}, token=_b64(token), namespace=_b64(namespace),
                           **{"ca.crt": _b64(self.cluster.options.ca_pem)})
        rt = resources.builtin_types()[("", "v1")]["secrets"]
        registry.update(self.cluster, rt, namespace, name, new, manager="kube-controller-manager")
