"""Push-webhook authentication: GitHub, GitLab, Gitea and a generic HMAC sender.

A webhook only ever *triggers* a fetch; the hub never trusts the payload's
commit id, it fetches and reads the branch itself. So all this module decides is
whether the request comes from someone holding the shared secret, and which ref
it is about (for logging and to skip pushes to other branches).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac
import json
from collections.abc import Mapping

__all__ = ["PushEvent", "WebhookProvider", "WebhookRejectedError", "authenticate", "sign_hmac"]


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


def _check_hmac(body: bytes, presented: str | None, secret: bytes, *, prefix: str, header: str) -> None:
    if not presented:
        raise WebhookRejectedError(f"missing {header} header")
    if prefix and not presented.startswith(prefix):
        raise WebhookRejectedError(f"{header} must start with {prefix!r}")
    if not hmac.compare_digest(presented[len(prefix):].strip().lower(), sign_hmac(body, secret)):
        raise WebhookRejectedError(f"{header} does not match the payload (wrong secret or altered body)")


def authenticate(headers: Mapping[str, str], body: bytes, secret: bytes) -> PushEvent:
    """Check a webhook request's signature and return what it is about.

    Raises :class:`WebhookRejectedError` when the signature is missing or wrong.
    """
    if not secret:
        raise WebhookRejectedError("the hub has no webhook secret configured; webhooks are disabled")
    if _header(headers, "X-Gitlab-Event") is not None or _header(headers, "X-Gitlab-Token") is not None:
        provider = WebhookProvider.GITLAB
        token = _header(headers, "X-Gitlab-Token")
        if not token:
            raise WebhookRejectedError("missing X-Gitlab-Token header")
        if not hmac.compare_digest(token.encode(), secret):
            raise WebhookRejectedError("X-Gitlab-Token does not match the hub's webhook secret")
        event = _header(headers, "X-Gitlab-Event") or "push"
    elif _header(headers, "X-Gitea-Signature") is not None or _header(headers, "X-Gogs-Signature") is not None:
        provider = WebhookProvider.GITEA
        name = "X-Gitea-Signature" if _header(headers, "X-Gitea-Signature") is not None else "X-Gogs-Signature"
        _check_hmac(body, _header(headers, name), secret, prefix="", header=name)
        event = _header(headers, "X-Gitea-Event") or _header(headers, "X-Gogs-Event") or "push"
    elif _header(headers, "X-GitHub-Event") is not None or _header(headers, "X-Hub-Signature-256") is not None:
        provider = WebhookProvider.GITHUB
        _check_hmac(body, _header(headers, "X-Hub-Signature-256"), secret, prefix="sha256=",
                    header="X-Hub-Signature-256")
        event = _header(headers, "X-GitHub-Event") or "push"
    else:
        provider = WebhookProvider.GENERIC
        _check_hmac(body, _header(headers, "X-Convoy-Signature"), secret, prefix="sha256=",
                    header="X-Convoy-Signature")
        event = _header(headers, "X-Convoy-Event") or "push"
    ref, after = _ref_and_after(body)
    return PushEvent(provider=provider, event=event, ref=ref, after=after)


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
