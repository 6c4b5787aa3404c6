from __future__ import annotations

import pytest

from protos import selectors
from protos.selectors import Operator, Requirement, Selector, SelectorError

PROD_EU = {"env": "prod", "region": "eu"}
DEV_US_CANARY = {"env": "dev", "region": "us", "canary": "true"}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("env=prod", PROD_EU, True),
        ("env==prod", PROD_EU, True),
        ("env=prod", DEV_US_CANARY, False),
        ("env!=prod", DEV_US_CANARY, True),
        ("env!=prod", {}, True),  # NotIn matches a missing key, as in Kubernetes
        ("region in (eu,us)", PROD_EU, True),
        ("region in (ap, us)", PROD_EU, False),
        ("region notin (ap,us)", PROD_EU, True),
        ("canary", DEV_US_CANARY, True),
        ("canary", PROD_EU, False),
        ("!canary", PROD_EU, True),
        ("!canary", DEV_US_CANARY, False),
        ("env=prod,region in (eu,us),!canary", PROD_EU, True),
        ("env=prod,region in (eu,us),!canary", {**PROD_EU, "canary": "true"}, False),
        ("", PROD_EU, True),
        ("app.kubernetes.io/part-of=shop", {"app.kubernetes.io/part-of": "shop"}, True),
    ],
)
def test_text_selectors_match_like_kubectl(text: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.parse(text).matches(labels) is expected


def test_parse_builds_the_requirements_in_order() -> None:
    parsed = selectors.parse("env=prod, region in (us,eu), !canary, gpu")
    assert parsed.requirements == (
        Requirement("env", Operator.IN, ("prod",)),
        Requirement("region", Operator.IN, ("eu", "us")),
        Requirement("canary", Operator.DOES_NOT_EXIST),
        Requirement("gpu", Operator.EXISTS),
    )
    assert str(parsed) == "env=prod,region in (eu,us),!canary,gpu"
    assert selectors.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("env=prod,", "trailing ','"),
        ("region in eu", "expected '('"),
        ("region in (eu", "expected ',' or ')'"),
        ("region in ()", "expected a value"),
        ("!", "label key"),
        ("env prod", "unexpected"),
        ("-bad=x", "not a valid label key"),
        ("env=white space", "expected ',' before 'space'"),
        ("env=" + "x" * 64, "not a valid label value"),
    ],
)
def test_malformed_text_selectors_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(SelectorError, match="targets") as caught:
        selectors.parse(text, where="targets")
    assert fragment in str(caught.value)


def test_mapping_form_combines_match_labels_and_expressions() -> None:
    selector = selectors.from_mapping(
        {"matchLabels": {"env": "prod"},
         "matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["ap"]},
                              {"key": "canary", "operator": "DoesNotExist"}]},
        where="apps[0].targets")
    assert selector.matches(PROD_EU)
    assert not selector.matches({"env": "prod", "region": "ap"})
    assert not selector.matches({**PROD_EU, "canary": "false"})
    assert not selector.matches({"region": "eu"})


def test_empty_or_missing_selector_selects_everything() -> None:
    assert selectors.from_mapping(None, where="x") == selectors.EVERYTHING
    assert selectors.from_mapping({}, where="x").matches({})
    assert Selector().is_everything


def test_mapping_form_accepts_the_text_form() -> None:
    assert selectors.from_mapping("env in (prod)", where="x") == selectors.from_mapping(
        {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}, where="x")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"matchLabel": {"env": "prod"}}, "unknown field 'matchLabel'"),
        ({"matchLabels": {"canary": True}}, "quote it"),
        ({"matchExpressions": [{"key": "env", "operator": "Within", "values": ["a"]}]}, "'Within' is not one of"),
        ({"matchExpressions": [{"key": "env", "operator": "In"}]}, "needs at least one value"),
        ({"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["a"]}]}, "takes no values"),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"], "extra": 1}]},
         "unknown field 'extra'"),
        (["env"], "a selector is a mapping"),
    ],
)
def test_mapping_form_errors_name_the_field(data: object, fragment: str) -> None:
    with pytest.raises(SelectorError, match=r"apps\[2\]\.targets") as caught:
        selectors.from_mapping(data, where="apps[2].targets")
    assert fragment in str(caught.value)
