"""Webhook authentication for each provider: good signatures pass, anything else is refused."""

from __future__ import annotations

import json

import pytest

from hub.source import webhooks

SECRET = b"webhook-secret"
BODY = json.dumps({"ref": "refs/heads/main", "after": "a" * 40}).encode()


def test_github_signature() -> None:
    good = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(BODY, SECRET)}
    event = webhooks.authenticate(good, BODY, SECRET)
    assert event.provider is webhooks.WebhookProvider.GITHUB
    assert event.ref == "refs/heads/main" and event.concerns_branch("main")
    assert not event.concerns_branch("release")
    bad = {**good, "X-Hub-Signature-256": "sha256=" + webhooks.sign_hmac(BODY, b"wrong")}
    with pytest.raises(webhooks.WebhookRejectedError, match="does not match"):
        webhooks.authenticate(bad, BODY, SECRET)
    with pytest.raises(webhooks.WebhookRejectedError, match="does not match"):
        webhooks.authenticate(good, BODY + b" ", SECRET)
    with pytest.raises(webhooks.WebhookRejectedError, match="missing X-Hub-Signature-256"):
        webhooks.authenticate({"X-GitHub-Event": "push"}, BODY, SECRET)


def test_gitlab_token() -> None:
    event = webhooks.authenticate({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "webhook-secret"}, BODY, SECRET)
    assert event.provider is webhooks.WebhookProvider.GITLAB and event.event == "Push Hook"
    with pytest.raises(webhooks.WebhookRejectedError, match="X-Gitlab-Token does not match"):
        webhooks.authenticate({"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, BODY, SECRET)


def test_gitea_signature() -> None:
    headers = {"X-Gitea-Event": "push", "X-Gitea-Signature": webhooks.sign_hmac(BODY, SECRET)}
    assert webhooks.authenticate(headers, BODY, SECRET).provider is webhooks.WebhookProvider.GITEA
    with pytest.raises(webhooks.WebhookRejectedError):
        webhooks.authenticate({**headers, "X-Gitea-Signature": "00" * 32}, BODY, SECRET)


def test_generic_hmac_and_header_case() -> None:
    headers = {"x-convoy-signature": "sha256=" + webhooks.sign_hmac(BODY, SECRET)}
    assert webhooks.authenticate(headers, BODY, SECRET).provider is webhooks.WebhookProvider.GENERIC
    with pytest.raises(webhooks.WebhookRejectedError, match="missing X-Convoy-Signature"):
        webhooks.authenticate({}, BODY, SECRET)


def test_no_secret_configured_refuses_everything() -> None:
    with pytest.raises(webhooks.WebhookRejectedError, match="no webhook secret"):
        webhooks.authenticate({"X-Gitlab-Token": ""}, BODY, b"")


@pytest.mark.parametrize(("headers", "problem"), [
    ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=é" + "0" * 63}, "malformed"),
    ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 40}, "malformed"),
    ({"X-Gitea-Signature": "zz" * 32}, "malformed"),
    ({"X-Convoy-Signature": "sha1=" + "0" * 64}, "must start with"),
    ({"X-Gitlab-Token": "t" * 5000}, "malformed"),
    ({"X-Gitlab-Token": "tok\x00en"}, "malformed"),
])
def test_header_shape_is_checked_without_the_body(headers: dict[str, str], problem: str) -> None:
    with pytest.raises(webhooks.WebhookRejectedError, match=problem):
        webhooks.precheck(headers, SECRET)
    with pytest.raises(webhooks.WebhookRejectedError, match=problem):
        webhooks.authenticate(headers, BODY, SECRET)


def test_delivery_ids_are_read_per_provider_and_bounded() -> None:
    assert webhooks.delivery_id({"X-GitHub-Event": "push", "X-GitHub-Delivery": "abc"}) == "github:abc"
    assert webhooks.delivery_id({"x-gitlab-event-uuid": "u-1", "X-Gitlab-Token": "t"}) == "gitlab:u-1"
    assert webhooks.delivery_id({"X-Gitea-Signature": "00", "X-Gitea-Delivery": "g-1"}) == "gitea:g-1"
    assert webhooks.delivery_id({"X-Convoy-Signature": "sha256=00"}) is None
    with pytest.raises(webhooks.WebhookRejectedError, match="malformed"):
        webhooks.delivery_id({"X-GitHub-Event": "push", "X-GitHub-Delivery": "x" * 500})
    log = webhooks.DeliveryLog(capacity=3)
    assert [log.seen(name) for name in ("a", "b", "a", "c", "d")] == [False, False, True, False, False]
    assert len(log) == 3
    assert log.seen("a") is True          # recently seen, so kept
    assert log.seen("b") is False         # the oldest, forgotten first
