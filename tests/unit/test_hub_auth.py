"""Bearer metadata parsing and the admin view's Secret redaction (pure helpers of the API edge)."""

from __future__ import annotations

import pytest

from hub.api import admin, auth


@pytest.mark.parametrize(("metadata", "expected"), [
    ((("authorization", "Bearer abc"),), "abc"),
    ((("Authorization", "bearer  abc "),), "abc"),
    ((("x-other", "1"), ("authorization", b"Bearer bytes-ok")), "bytes-ok"),
    ((("authorization", "Basic abc"),), None),
    ((("authorization", "Bearer "),), None),
    ((), None),
    (None, None),
])
def test_bearer_token(metadata: object, expected: str | None) -> None:
    assert auth.bearer_token(metadata) == expected  # type: ignore[arg-type]


def test_secret_values_are_redacted_and_nothing_else() -> None:
    document = {"apiVersion": "convoy.dev/v1alpha1", "kind": "Bundle", "apps": [], "objects": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
         "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t0ps3cret"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"password": "visible"}},
    ]}
    shown = admin.redact_secrets(document)
    secret, config = shown["objects"]
    assert secret["data"] == {"password": "<redacted>"} and secret["stringData"] == {"token": "<redacted>"}
    assert config["data"] == {"password": "visible"}
    assert document["objects"][0]["data"] == {"password": "aHVudGVyMg=="}  # the input is not changed
