"""Push-webhook authentication: GitHub, GitLab, Gitea and a generic HMAC sender.

A webhook only ever *triggers* a fetch; the hub never trusts the payload's
commit id, it fetches and reads the branch itself. So all this module decides is
whether the request comes from someone holding the shared secret, and which ref
it is about (for logging and to skip pushes to other branches).

:func:`precheck` judges the headers alone (provider, signature shape), so the
HTTP edge can refuse a malformed request before it reads a byte of the body;
:func:`delivery_id` and :class:`DeliveryLog` refuse a replayed delivery where
the Git host sends an id.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Mapping

__all__ = ["DeliveryLog", "PushEvent", "WebhookProvider", "WebhookRejectedError", "authenticate", "delivery_id",
           "precheck", "sign_hmac"]

_HEX_HMAC = re.compile(r"[0-9a-fA-F]{64}\Z")
#: GitLab sends the secret itself; anything longer or not printable ASCII is not a token we set.
_TOKEN = re.compile(r"[\x21-\x7e]{1,1024}\Z")
#: Delivery ids are UUIDs or short opaque strings.
_DELIVERY = re.compile(r"[\x21-\x7e]{1,128}\Z")
#: provider -> the header carrying its per-delivery id (GitHub, GitLab, Gitea; a generic sender may too).
_DELIVERY_HEADERS = {"github": "X-GitHub-Delivery", "gitlab": "X-Gitlab-Event-UUID", "gitea": "X-Gitea-Delivery",
                     "generic": "X-Convoy-Delivery"}
#: How many delivery ids :class:`DeliveryLog` remembers by default (about 1 MiB at most).
DELIVERIES_REMEMBERED = 4096


class WebhookProvider(enum.StrEnum):
    GITHUB = "github"    #: X-Hub-Signature-256: sha256=<hmac hex>
    GITLAB = "gitlab"    #: X-Gitlab-Token: <secret>
    GITEA = "gitea"      #: X-Gitea-Signature: <hmac hex> (also Gogs, Forgejo)
    GENERIC = "generic"  #: X-Convoy-Signature: sha256=<hmac hex>


class WebhookRejectedError(Exception):
    """The request is not an authenticated push; the message says why (never the secret)."""


@dataclasses.dataclass(frozen=True)
class PushEvent:
    provider: WebhookProvider
    event: str          #: provider's event name ("push", "ping", "Push Hook", ...)
    ref: str | None     #: e.g. "refs/heads/main", when the payload says
    after: str | None   #: the pushed commit, informational only

    def concerns_branch(self, branch: str) -> bool:
        return self.ref is None or self.ref in {branch, f"refs/heads/{branch}", f"refs/tags/{branch}"}


def sign_hmac(body: bytes, secret: bytes) -> str:
    """Hex HMAC-SHA256 of ``body``: what GitHub, Gitea and generic senders put in their header."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _signature(headers: Mapping[str, str], *, prefix: str, header: str) -> str:
    """The hex HMAC a header carries, its shape checked (no body needed)."""
    presented = _header(headers, header)
    if not presented:
        raise WebhookRejectedError(f"missing {header} header")
    if prefix and not presented.startswith(prefix):
        raise WebhookRejectedError(f"{header} must start with {prefix!r}")
    value = presented[len(prefix):].strip()
    if not _HEX_HMAC.match(value):
        raise WebhookRejectedError(f"{header} is malformed (expected {prefix}<64 hex digits>)")
    return value.lower()


def _check_hmac(body: bytes, presented: str, secret: bytes, *, header: str) -> None:
    if not hmac.compare_digest(presented, sign_hmac(body, secret)):
        raise WebhookRejectedError(f"{header} does not match the payload (wrong secret or altered body)")


def _provider(headers: Mapping[str, str]) -> tuple[WebhookProvider, str, str]:
    """(provider, its signature header, the prefix of that header's value)."""
    if _header(headers, "X-Gitlab-Event") is not None or _header(headers, "X-Gitlab-Token") is not None:
        return WebhookProvider.GITLAB, "X-Gitlab-Token", ""
    if _header(headers, "X-Gitea-Signature") is not None:
        return WebhookProvider.GITEA, "X-Gitea-Signature", ""
    if _header(headers, "X-Gogs-Signature") is not None:
        return WebhookProvider.GITEA, "X-Gogs-Signature", ""
    if _header(headers, "X-GitHub-Event") is not None or _header(headers, "X-Hub-Signature-256") is not None:
        return WebhookProvider.GITHUB, "X-Hub-Signature-256", "sha256="
    return WebhookProvider.GENERIC, "X-Convoy-Signature", "sha256="


def precheck(headers: Mapping[str, str], secret: bytes | None) -> WebhookProvider:
    """Everything that can be judged before reading the body: a secret is set, the signature has its shape.

    Raises :class:`WebhookRejectedError`; never raises anything else for any header value.
    """
    if not secret:
        raise WebhookRejectedError("the hub has no webhook secret configured; webhooks are disabled")
    provider, header, prefix = _provider(headers)
    if provider is WebhookProvider.GITLAB:
        token = _header(headers, header)
        if not token:
            raise WebhookRejectedError("missing X-Gitlab-Token header")
        if not _TOKEN.match(token):
            raise WebhookRejectedError("X-Gitlab-Token is malformed (expected up to 1024 printable ASCII characters)")
    else:
        _signature(headers, prefix=prefix, header=header)
    return provider


def authenticate(headers: Mapping[str, str], body: bytes, secret: bytes) -> PushEvent:
    """Check a webhook request's signature and return what it is about.

    Raises :class:`WebhookRejectedError` when the signature is missing, malformed or wrong.
    """
    provider = precheck(headers, secret)
    _, header, prefix = _provider(headers)
    if provider is WebhookProvider.GITLAB:
        if not hmac.compare_digest((_header(headers, header) or "").encode(), secret):
            raise WebhookRejectedError("X-Gitlab-Token does not match the hub's webhook secret")
        event = _header(headers, "X-Gitlab-Event") or "push"
    else:
        _check_hmac(body, _signature(headers, prefix=prefix, header=header), secret, header=header)
        event = {
            WebhookProvider.GITEA: _header(headers, "X-Gitea-Event") or _header(headers, "X-Gogs-Event"),
            WebhookProvider.GITHUB: _header(headers, "X-GitHub-Event"),
            WebhookProvider.GENERIC: _header(headers, "X-Convoy-Event"),
        }[provider] or "push"
    ref, after = _ref_and_after(body)
    return PushEvent(provider=provider, event=event, ref=ref, after=after)


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """``"<provider>:<id>"`` of this delivery when the Git host sends one (None otherwise)."""
    provider, _, _ = _provider(headers)
    value = _header(headers, _DELIVERY_HEADERS[provider.value])
    if value is None:
        return None
    if not _DELIVERY.match(value):
        raise WebhookRejectedError(f"{_DELIVERY_HEADERS[provider.value]} is malformed")
    return f"{provider.value}:{value}"


class DeliveryLog:
    """The most recent delivery ids, bounded: a replayed delivery is seen again, memory stays flat.

    Not a signature: most hosts do not sign the id header. It stops a captured request being
    replayed as is; what a replay could do anyway is only trigger a fetch.
    """

    def __init__(self, capacity: int = DELIVERIES_REMEMBERED) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def seen(self, delivery: str) -> bool:
        """Record ``delivery``; True when it was already recorded (a replay)."""
        if delivery in self._ids:
            self._ids.move_to_end(delivery)
            return True
        self._ids[delivery] = None
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False


def _ref_and_after(body: bytes) -> tuple[str | None, str | None]:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    ref = payload.get("ref")
    after = payload.get("after") or payload.get("checkout_sha")
    return (ref if isinstance(ref, str) else None, after if isinstance(after, str) else None)
