"""The pure rules of Kubernetes RBAC: who a request is, what it asks, and which rules allow it.

Ported from the upstream API server (``k8s.io/kubernetes``):

* rule matching — ``pkg/apis/rbac/v1/evaluation_helpers.go`` (``VerbMatches``, ``APIGroupMatches``,
  ``ResourceMatches`` with ``*/subresource``, ``ResourceNameMatches``, ``NonResourceURLMatches``);
* subjects — ``plugin/pkg/auth/authorizer/rbac/subject_locator.go`` ``appliesToUser`` (a
  ServiceAccount subject without a namespace takes the binding's);
* escalation — ``pkg/registry/rbac/validation/policy_comparator.go`` ``Covers``: every rule a
  subject grants must be held by the subject itself (split into one verb/group/resource/name each);
* the Forbidden message — ``staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters``
  ``forbiddenMessage``.

Nothing here reads a store: callers pass the roles and bindings (``kubesim.authorizing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubesim import errors

__all__ = [
    "ADMIN",
    "Attributes",
    "UserInfo",
    "binding_applies",
    "covers",
    "forbidden",
    "label_selector_matches",
    "rule_allows",
    "service_account_user",
    "uncovered",
]

Obj = dict[str, Any]
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated requester, as ``user.Info`` carries it."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def privileged(self) -> bool:
        # The privileged-group authorizer runs before RBAC: system:masters may do anything.
        return MASTERS in self.groups


#: Who the kubeconfig kubesim writes authenticates as (a kubeadm cluster's admin user).
ADMIN = UserInfo("kubernetes-admin", (MASTERS, AUTHENTICATED))


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{SA_PREFIX}{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED), uid)


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request asks (``authorizer.Attributes``); ``path`` is set for non-resource requests."""

    verb: str
    resource_request: bool = True
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _resource_matches(rule_resources: Any, combined: str, subresource: str) -> bool:
    for res in rule_resources if isinstance(rule_resources, list) else ():
        if res in ("*", combined):
            return True
        if subresource and res == f"*/{subresource}":
            return True
    return False


def _url_matches(rule_urls: Any, path: str) -> bool:
    for url in rule_urls if isinstance(rule_urls, list) else ():
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """``RuleAllows``: whether one PolicyRule grants the request."""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule.get("nonResourceURLs"), attrs.path)
    names = rule.get("resourceNames") or []
    return (_has(rule.get("apiGroups"), attrs.group)
            and _resource_matches(rule.get("resources"), attrs.combined_resource, attrs.subresource)
            and (not names or attrs.name in names))


def binding_applies(binding: Mapping[str, Any], user: UserInfo) -> bool:
    """``appliesToUser`` for each subject of a (Cluster)RoleBinding."""
    default_ns = (binding.get("metadata") or {}).get("namespace") or ""
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        name = subject.get("name", "")
        if kind == "User" and name == user.name:
            return True
        if kind == "Group" and name in user.groups:
            return True
        if kind == "ServiceAccount":
            ns = subject.get("namespace") or default_ns
            if ns and user.name == f"{SA_PREFIX}{ns}:{name}":
                return True
    return False


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` (matchLabels and matchExpressions); an empty one matches everything."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# -- escalation -------------------------------------------------------------------------------------


def _split(rule: Mapping[str, Any]) -> Iterable[Obj]:
    """``BreakdownRule``: one rule per group/resource/verb (and name, and URL)."""
    verbs = rule.get("verbs") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                names = rule.get("resourceNames") or []
                for name in names or [None]:
                    small: Obj = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                    if name is not None:
                        small["resourceNames"] = [name]
                    yield small
    for url in rule.get("nonResourceURLs") or []:
        for verb in verbs:
            yield {"nonResourceURLs": [url], "verbs": [verb]}


def _covers_one(owner: Mapping[str, Any], servant: Mapping[str, Any]) -> bool:
    """``ruleCovers``: the owner rule grants at least what the (broken-down) servant rule does."""
    verbs = owner.get("verbs") or []
    if not ("*" in verbs or all(v in verbs for v in servant["verbs"])):
        return False
    if "nonResourceURLs" in servant:
        return all(_url_covers(owner.get("nonResourceURLs") or [], url) for url in servant["nonResourceURLs"])
    groups = owner.get("apiGroups") or []
    if not ("*" in groups or all(g in groups for g in servant["apiGroups"])):
        return False
    resources = owner.get("resources") or []
    for res in servant["resources"]:
        sub = res.split("/", 1)[1] if "/" in res else ""
        if not ("*" in resources or res in resources or (sub and f"*/{sub}" in resources)):
            return False
    owner_names = owner.get("resourceNames") or []
    return not owner_names or all(n in owner_names for n in servant.get("resourceNames") or [])


def _url_covers(owner_urls: Sequence[str], url: str) -> bool:
    return any(own == url or own == "*" or (own.endswith("*") and url.startswith(own[:-1]))
               for own in owner_urls)


def uncovered(owner_rules: Sequence[Mapping[str, Any]], servant_rules: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """The broken-down servant rules no owner rule covers (empty: the owner holds them all)."""
    missing: list[Obj] = []
    for rule in servant_rules:
        for small in _split(rule):
            if not any(_covers_one(owner, small) for owner in owner_rules):
                missing.append(small)
    return missing


def covers(owner_rules: Sequence[Mapping[str, Any]], servant_rules: Sequence[Mapping[str, Any]]) -> bool:
    return not uncovered(owner_rules, servant_rules)


def format_rule(rule: Mapping[str, Any]) -> str:
    """A rule as ``PolicyRule.CompactString`` prints it in escalation errors."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("resourceNames", "ResourceNames"),
                       ("nonResourceURLs", "NonResourceURLs"), ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:[" + " ".join(f'"{v}"' for v in rule[key]) + "]")
    return "{" + ", ".join(parts) + "}"


# -- answers ----------------------------------------------------------------------------------------


def forbidden_message(user: UserInfo, attrs: Attributes) -> str:
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return (f'User "{user.name}" cannot {attrs.verb} resource "{attrs.combined_resource}" '
            f'in API group "{attrs.group}" {where}')


def forbidden(user: UserInfo, attrs: Attributes, reason: str = "") -> errors.ApiError:
    """The 403 the API server answers with (``responsewriters.Forbidden`` → ``NewForbidden``)."""
    message = forbidden_message(user, attrs)
    if reason:
        message = f"{message}: {reason}"
    gr = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    if not attrs.resource_request or (not gr and not attrs.name):
        text = f"forbidden: {message}"
    elif attrs.name:
        text = f'{gr} "{attrs.name}" is forbidden: {message}'
    else:
        text = f"{gr} is forbidden: {message}"
    details = {"name": attrs.name, "group": attrs.group, "kind": attrs.resource} if attrs.resource_request else {}
    return errors.ApiError(403, "Forbidden", text, details)
