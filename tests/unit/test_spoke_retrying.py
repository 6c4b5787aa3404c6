"""Which Kubernetes API failures are retried, and how long the spoke waits."""

from __future__ import annotations

import pytest

from spoke.cluster import errors, retrying

POLICY = retrying.RetryPolicy(attempts=4, base=0.1, cap=1.0)


def _api(status: int, retry_after: float | None = None, message: str = "boom") -> errors.ApiError:
    return errors.api_error("Deployment.apps/ns/web", status=status, reason="R", message=message,
                            retry_after=retry_after)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_until_success(status: int) -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _api(status)
        return "ok"

    assert retrying.call(flaky, policy=POLICY, sleep=waits.append) == "ok"
    assert len(calls) == 3 and len(waits) == 2


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_statuses_are_not_retried(status: int) -> None:
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise _api(status)

    with pytest.raises(errors.ApiError):
        retrying.call(failing, policy=POLICY, sleep=lambda _: None)
    assert len(calls) == 1


def test_gives_up_after_the_attempts_with_the_last_error() -> None:
    def down() -> None:
        raise errors.ConnectionFailedError("Namespace/x", "connection reset")

    with pytest.raises(errors.ConnectionFailedError, match="connection reset"):
        retrying.call(down, policy=POLICY, sleep=lambda _: None)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert retrying.delay_for(_api(429, retry_after=2.0), 0, POLICY) == 2.0
    assert retrying.delay_for(_api(429, retry_after=999.0), 0, POLICY) == POLICY.max_retry_after


def test_backoff_is_full_jitter_and_capped() -> None:
    assert retrying.delay_for(_api(500), 10, POLICY, rand=lambda: 1.0) == POLICY.cap
    assert retrying.delay_for(_api(500), 1, POLICY, rand=lambda: 0.5) == pytest.approx(0.1)
    assert retrying.delay_for(_api(500), 3, POLICY, rand=lambda: 0.0) == 0.0


def test_immutable_field_errors_are_typed() -> None:
    error = _api(422, message='Deployment.apps "web" is invalid: spec.selector: Invalid value: field is immutable')
    assert isinstance(error, errors.ImmutableFieldError)
    assert str(error).startswith("Deployment.apps/ns/web: ")
    assert isinstance(_api(422, message="spec.replicas: must be >= 0"), errors.InvalidError)
    assert not isinstance(_api(422, message="spec.replicas: must be >= 0"), errors.ImmutableFieldError)

