from __future__ import annotations

import copy

import pytest

from hub.render import substitute
from hub.render.substitute import SubstitutionError

VARIABLES = substitute.cluster_variables(
    "prod-eu-1", {"env": "prod", "topology.kubernetes.io/region": "eu-west"}, {"owner": "team-eu"})


def _deployment(image: str) -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"${not_a_key}": "x"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": image}, {"name": "side", "image": "busybox"}]}}}}


def test_cluster_variables_expose_name_labels_and_vars() -> None:
    assert VARIABLES == {"cluster_name": "prod-eu-1", "label_env": "prod",
                         "label_topology_kubernetes_io_region": "eu-west", "owner": "team-eu"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${cluster_name}", "prod-eu-1"),
        ("https://${label_env}.${label_topology_kubernetes_io_region}.example.com",
         "https://prod.eu-west.example.com"),
        ("${missing:=fallback}", "fallback"),
        ("${missing:=}", ""),
        ("${owner:=nobody}", "team-eu"),
        ("$${cluster_name}", "${cluster_name}"),
        ("$$${cluster_name}", "$${cluster_name}"[:1] + "${cluster_name}"),
        ("cost: $5", "cost: $5"),
        ("no variables", "no variables"),
    ],
)
def test_substitute_string(text: str, expected: str) -> None:
    assert substitute.substitute_string(text, VARIABLES) == expected


def test_substitutes_string_values_only_and_never_keys() -> None:
    original = _deployment("registry/${label_env}/web:${owner}")
    snapshot = copy.deepcopy(original)
    result = substitute.substitute_object(original, VARIABLES, cluster="prod-eu-1", app="web")
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == "registry/prod/web:team-eu"
    assert result["metadata"]["labels"] == {"${not_a_key}": "x"}
    assert result["spec"]["replicas"] == 2
    assert original == snapshot, "the input object must not be modified"
    # Parts without variables are shared, not copied (this is what keeps 1,000 clusters cheap).
    assert result["metadata"] is original["metadata"]
    assert result["spec"]["template"]["spec"]["containers"][1] is original["spec"]["template"]["spec"]["containers"][1]


def test_undefined_variable_names_cluster_app_object_and_field() -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute.substitute_object(_deployment("web:${version}"), VARIABLES, cluster="prod-eu-1", app="web")
    error = caught.value
    assert error.variable == "version"
    assert error.field == "spec.template.spec.containers[0].image"
    assert error.obj == "Deployment.apps/shop/web"
    text = str(error)
    for part in ("cluster prod-eu-1", "app web", "Deployment.apps/shop/web",
                 "spec.template.spec.containers[0].image", "${version}"):
        assert part in text


def test_field_path_quotes_keys_with_dots() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
           "data": {"app.properties": "x=${nope}"}}
    with pytest.raises(SubstitutionError) as caught:
        substitute.substitute_object(obj, {}, cluster="c1", app="a")
    assert caught.value.field == "data['app.properties']"


@pytest.mark.parametrize("text", ["${1abc}", "${name:-default}", "${}", "${a b}"])
def test_unsupported_expressions_are_refused(text: str) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": text}}
    with pytest.raises(SubstitutionError, match="not a supported expression"):
        substitute.substitute_object(obj, VARIABLES, cluster="c1", app="a")


def test_referenced_variables() -> None:
    objs = [_deployment("${a}/${b:=x}"), {"data": {"k": "$${escaped} ${c}"}}, {"n": 1}]
    assert substitute.referenced_variables(objs) == frozenset({"a", "b", "c"})


def test_label_variable_maps_non_identifier_characters() -> None:
    assert substitute.label_variable("app.kubernetes.io/part-of") == "label_app_kubernetes_io_part_of"
