"""Authentication and the RBAC authorizer of one cluster, over its stored roles and bindings.

* :func:`authenticate`: a bearer token is the server's admin token (or none, when the server has
  none: the kubeconfig kubesim writes stays cluster-admin) or a ServiceAccount token this cluster
  issued (TokenRequest or a ``kubernetes.io/service-account-token`` Secret); ``Impersonate-*``
  headers then switch the user when the requester may ``impersonate``.
* :func:`authorize`: system:masters, then ClusterRoleBindings, then the RoleBindings of the
  request's namespace (``rbac.go`` ``VisitRulesFor``), with the reason the real authorizer gives.
* :func:`check_escalation`: a Role/ClusterRole write or a binding is refused when it grants more
  than the writer holds, unless the writer may ``escalate``/``bind``.
* :func:`review`: SelfSubjectAccessReview, SubjectAccessReview and SelfSubjectRulesReview.
* :class:`AggregationController`: ClusterRoles with an ``aggregationRule`` get the union of the
  rules of the ClusterRoles it selects.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from kubesim import errors, rbac, registry, resources
from kubesim.clusters import Cluster
from kubesim.rbac import Attributes, UserInfo
from kubesim.store import Event

__all__ = [
    "AggregationController",
    "authenticate",
    "authorize",
    "check_escalation",
    "issue_token",
    "require",
    "review",
    "rules_for",
]

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
_ROLES = (RBAC, "roles")
_CLUSTER_ROLES = (RBAC, "clusterroles")
_BINDINGS = (RBAC, "rolebindings")
_CLUSTER_BINDINGS = (RBAC, "clusterrolebindings")
_SA = ("", "serviceaccounts")
_UNAUTHORIZED = errors.ApiError(401, "Unauthorized", "Unauthorized")


# -- authentication ---------------------------------------------------------------------------------


def issue_token(cluster: Cluster, namespace: str, name: str, *, expires_at: float | None = None) -> str:
    """A fresh bearer token for ServiceAccount ``namespace/name``.

    Valid while that account exists and, when ``expires_at`` is given (a TokenRequest's), until
    :meth:`Cluster.wall_time` reaches it; a token Secret's (None) never expires.
    """
    sa = cluster.store.get(_SA, namespace, name)
    if sa is None:
        raise errors.not_found("", "serviceaccounts", name)
    token = "kubesim-sa." + secrets.token_urlsafe(32)
    cluster.tokens[token] = (namespace, name, sa["metadata"]["uid"], expires_at)
    return token


def authenticate(cluster: Cluster, authorization: str, admin_token: str | None, *, as_user: str = "",
                 as_groups: Sequence[str] = ()) -> UserInfo:
    """The user of a request (401 for an unknown token), after impersonation."""
    given = authorization[7:] if authorization.startswith("Bearer ") else ""
    no_token_needed = not authorization and admin_token is None
    if no_token_needed or (admin_token is not None and secrets.compare_digest(given.encode(), admin_token.encode())):
        user = rbac.ADMIN
    else:
        owner = cluster.tokens.get(given) if given else None
        if owner is None:
            raise _UNAUTHORIZED
        namespace, name, uid, expires_at = owner
        if expires_at is not None and cluster.wall_time() >= expires_at:
            raise _UNAUTHORIZED  # the JWT authenticator refuses an expired token with a bare 401
        sa = cluster.store.get(_SA, namespace, name)
        if sa is None or sa["metadata"]["uid"] != uid:
            raise _UNAUTHORIZED  # the account was deleted (or re-created): its tokens died with it
        user = rbac.service_account_user(namespace, name, uid)
    if not as_user:
        return user
    return _impersonate(cluster, user, as_user, as_groups)


def _impersonate(cluster: Cluster, user: UserInfo, as_user: str, groups: Sequence[str]) -> UserInfo:
    if as_user.startswith(rbac.SA_PREFIX) and as_user.count(":") == 3:
        namespace, name = as_user[len(rbac.SA_PREFIX):].split(":", 1)
        attrs = Attributes(verb="impersonate", resource="serviceaccounts", namespace=namespace, name=name)
        target = rbac.service_account_user(namespace, name)
    else:
        attrs = Attributes(verb="impersonate", resource="users", name=as_user)
        target = UserInfo(as_user, (rbac.AUTHENTICATED,) if as_user != "system:anonymous" else ())
    require(cluster, user, attrs)
    for group in groups:
        require(cluster, user, Attributes(verb="impersonate", resource="groups", name=group))
    if groups:
        extra = tuple(g for g in target.groups if g not in groups and g == rbac.AUTHENTICATED)
        target = UserInfo(target.name, tuple(groups) + extra, target.uid)
    return target


# -- authorization ----------------------------------------------------------------------------------


def _role_rules(cluster: Cluster, ref: Mapping[str, Any], namespace: str) -> tuple[list[Obj], str]:
    kind, name = ref.get("kind"), ref.get("name", "")
    role = (cluster.store.get(_CLUSTER_ROLES, "", name) if kind == "ClusterRole"
            else cluster.store.get(_ROLES, namespace, name))
    if role is None:
        what = "clusterrole" if kind == "ClusterRole" else "role"
        return [], f'{what}.{RBAC} "{name}" not found'
    return list(role.get("rules") or []), ""


def _visit(cluster: Cluster, user: UserInfo, namespace: str) -> Any:
    """``VisitRulesFor``: (source description, rules, error) for every binding that applies to ``user``."""
    store = cluster.store
    for binding in store.list(_CLUSTER_BINDINGS):
        if rbac.binding_applies(binding, user):
            ref = binding.get("roleRef") or {}
            rules, error = _role_rules(cluster, ref, "")
            yield (f'ClusterRoleBinding "{binding["metadata"]["name"]}" of ClusterRole "{ref.get("name")}"',
                   rules, error)
    if namespace:
        for binding in store.list(_BINDINGS, namespace):
            if rbac.binding_applies(binding, user):
                ref = binding.get("roleRef") or {}
                rules, error = _role_rules(cluster, ref, namespace)
                yield (f'RoleBinding "{binding["metadata"]["name"]}/{namespace}" of {ref.get("kind")} '
                       f'"{ref.get("name")}"', rules, error)


def _subject_text(user: UserInfo) -> str:
    if user.name.startswith(rbac.SA_PREFIX):
        namespace, name = user.name[len(rbac.SA_PREFIX):].split(":", 1)
        return f'ServiceAccount "{name}/{namespace}"'
    return f'User "{user.name}"'


def authorize(cluster: Cluster, user: UserInfo, attrs: Attributes) -> tuple[bool, str]:
    """(allowed, reason) as the RBAC authorizer decides; the reason names the granting binding."""
    if user.privileged:
        return True, ""
    failures: list[str] = []
    for source, rules, error in _visit(cluster, user, attrs.namespace):
        if error:
            failures.append(error)
        if any(rbac.rule_allows(rule, attrs) for rule in rules):
            return True, f"RBAC: allowed by {source} to {_subject_text(user)}"
    if not failures:
        return False, ""
    text = failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]"
    return False, f"RBAC: {text}"


def require(cluster: Cluster, user: UserInfo, attrs: Attributes) -> None:
    """Raise the real 403 unless ``user`` may do ``attrs``."""
    allowed, reason = authorize(cluster, user, attrs)
    if not allowed:
        raise rbac.forbidden(user, attrs, reason)


def rules_for(cluster: Cluster, user: UserInfo, namespace: str) -> list[Obj]:
    """Every rule that applies to ``user`` in ``namespace`` (cluster-wide ones included)."""
    if user.privileged:
        return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]
    out: list[Obj] = []
    for _source, rules, _error in _visit(cluster, user, namespace):
        out.extend(rules)
    return out


# -- escalation -------------------------------------------------------------------------------------


def check_escalation(cluster: Cluster, user: UserInfo, plural: str, namespace: str, body: Any) -> None:
    """Refuse a Role/ClusterRole or binding write that would grant what ``user`` does not hold."""
    if user.privileged or not isinstance(body, dict):
        return
    name = str((body.get("metadata") or {}).get("name") or "")
    if plural in ("roles", "clusterroles"):
        if authorize(cluster, user, Attributes(verb="escalate", group=RBAC, resource=plural, namespace=namespace,
                                               name=name))[0]:
            return
        servant = list(body.get("rules") or [])
    elif plural in ("rolebindings", "clusterrolebindings"):
        ref = body.get("roleRef") or {}
        role_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        if authorize(cluster, user, Attributes(verb="bind", group=RBAC, resource=role_plural,
                                               namespace=namespace,
                                               name=str(ref.get("name", ""))))[0]:
            return
        servant, error = _role_rules(cluster, ref, namespace)
        if error:
            raise errors.not_found(RBAC, role_plural, str(ref.get("name", "")))
    else:
        return
    missing = rbac.uncovered(rules_for(cluster, user, namespace), servant)
    if missing:
        held = "\n".join(rbac.format_rule(r) for r in missing)
        groups = "[" + " ".join(f'"{g}"' for g in user.groups) + "]"
        raise errors.forbidden(RBAC, plural, name,
                               f'user "{user.name}" (groups={groups}) is attempting to grant RBAC permissions '
                               f"not currently held:\n{held}")


# -- reviews ----------------------------------------------------------------------------------------


def _review_attrs(spec: Mapping[str, Any]) -> Attributes:
    res = spec.get("resourceAttributes")
    if isinstance(res, dict):
        return Attributes(verb=str(res.get("verb", "")), group=str(res.get("group", "")),
                          resource=str(res.get("resource", "")), subresource=str(res.get("subresource", "")),
                          namespace=str(res.get("namespace", "")), name=str(res.get("name", "")))
    non = spec.get("nonResourceAttributes") or {}
    return Attributes(verb=str(non.get("verb", "")), resource_request=False, path=str(non.get("path", "")))


def review(cluster: Cluster, user: UserInfo, plural: str, body: Any) -> Obj:
    """Answer a (Self)SubjectAccessReview or SelfSubjectRulesReview posted by ``user``."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    out = copy.deepcopy(body)
    out.setdefault("metadata", {}).setdefault("creationTimestamp", None)
    spec = out.get("spec") or {}
    if plural == "selfsubjectrulesreviews":
        namespace = str(spec.get("namespace") or "")
        rules = rules_for(cluster, user, namespace)
        out["status"] = {
            "resourceRules": [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in r}
                              for r in rules if "nonResourceURLs" not in r],
            "nonResourceRules": [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                                 for r in rules if "nonResourceURLs" in r],
            "incomplete": False,
        }
        return out
    if plural == "subjectaccessreviews":
        subject = UserInfo(str(spec.get("user", "")), tuple(spec.get("groups") or ()), str(spec.get("uid", "")))
    else:
        subject = user
    allowed, reason = authorize(cluster, subject, _review_attrs(spec))
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    out["status"] = status
    return out


# -- aggregation ------------------------------------------------------------------------------------


class AggregationController:
    """``clusterrole-aggregation-controller``: aggregated ClusterRoles follow the roles they select."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._scheduled = False

    def on_event(self, event: Event) -> None:
        if event.key != _CLUSTER_ROLES or self._scheduled:
            return
        self._scheduled = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a write outside the server (a test driving the registry): settle at once
            self._run()
            return
        loop.call_soon(self._run, context=contextvars.Context())

    def _run(self) -> None:
        self._scheduled = False
        store = self.cluster.store
        roles = store.list(_CLUSTER_ROLES)
        for role in roles:
            rule = role.get("aggregationRule")
            if not isinstance(rule, dict):
                continue
            selectors = rule.get("clusterRoleSelectors") or []
            wanted: list[Obj] = []
            for other in sorted(roles, key=lambda r: str(r["metadata"]["name"])):
                if other["metadata"]["name"] == role["metadata"]["name"]:
                    continue
                labels = other["metadata"].get("labels") or {}
                if any(rbac.label_selector_matches(s, labels) for s in selectors):
                    for r in other.get("rules") or []:
                        if r not in wanted:
                            wanted.append(r)
            if (role.get("rules") or []) != wanted:
                rt = resources.builtin_types()[(RBAC, "v1")]["clusterroles"]
                registry.update(self.cluster, rt, "", role["metadata"]["name"], dict(copy.deepcopy(role), rules=wanted),
                                manager="clusterrole-aggregation-controller")
