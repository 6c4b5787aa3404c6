"""Label and field selector parsing (pure)."""

from __future__ import annotations

import pytest

from kubesim import errors
from kubesim.selectors import parse_field_selector, parse_label_selector


def _obj(**labels: str) -> dict[str, object]:
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels}, "status": {"phase": "Running"}}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a notin (1,2)", {}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("a>3", {"a": "10"}, True),
        ("a<3", {"a": "x"}, False),
        ("a=1,b", {"a": "1"}, False),
        ("app.kubernetes.io/name=web,tier in (fe)", {"app.kubernetes.io/name": "web", "tier": "fe"}, True),
        ("a=", {"a": ""}, True),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(_obj(**labels)) is expected


@pytest.mark.parametrize("bad", ["a in 1", "a in (1", "a=1 b=2", "a>x", "=1"])
def test_bad_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(errors.ApiError) as err:
        parse_label_selector(bad)
    assert err.value.code == 400


def test_field_selector() -> None:
    supported = ("metadata.name", "metadata.namespace", "status.phase")
    assert parse_field_selector("status.phase=Running,metadata.name!=x", supported).matches(_obj())
    assert not parse_field_selector("metadata.namespace==other", supported).matches(_obj())
    with pytest.raises(errors.ApiError) as err:
        parse_field_selector("spec.x=1", supported)
    assert err.value.body["message"] == "field label not supported: spec.x"
