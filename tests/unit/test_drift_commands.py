"""hub.commands.drift: which reported drift a REF argument picks, and what an unknown one says."""

from __future__ import annotations

import click
import pytest

from hub.commands import drift
from protos.convoy.v1 import convoy_pb2 as pb

WEB = pb.DriftItem(ref=pb.ObjectRef(group="apps", kind="Deployment", namespace="shop", name="web"), app="web",
                   kind_of_drift="modified", fields=[pb.FieldDrift(path=".spec.replicas", desired="1", live="2")])
VIEWER = pb.DriftItem(ref=pb.ObjectRef(group="rbac.authorization.k8s.io", kind="ClusterRole", name="viewer"),
                      app="platform", kind_of_drift="deleted")
DETAIL = pb.ClusterDetail(drift=[WEB, VIEWER])


def test_refs_pick_by_kind_or_kind_dot_group_namespace_and_name() -> None:
    assert [str(d.ref) for d in drift._select(DETAIL, "c1", ())] == [
        "Deployment.apps/shop/web", "ClusterRole.rbac.authorization.k8s.io/viewer"]
    assert [d.ref.name for d in drift._select(DETAIL, "c1", ("deployment/shop/web",))] == ["web"]
    assert [d.ref.name for d in drift._select(DETAIL, "c1", ("Deployment.apps/shop/web",))] == ["web"]
    assert [d.ref.name for d in drift._select(DETAIL, "c1", ("ClusterRole/viewer", "ClusterRole/viewer"))] == [
        "viewer"]


def test_an_unknown_or_malformed_ref_is_refused_naming_what_drifted() -> None:
    with pytest.raises(click.ClickException, match=r"cluster c1: no drift reported on Deployment/other/web "
                                                   r"\(drifted: Deployment\.apps/shop/web, "):
        drift._select(DETAIL, "c1", ("Deployment/other/web",))
    with pytest.raises(click.BadParameter, match="not KIND/NAMESPACE/NAME or KIND/NAME"):
        drift._select(DETAIL, "c1", ("web",))
    with pytest.raises(click.ClickException, match="cluster c2: the hub has no drift reported"):
        drift._select(pb.ClusterDetail(), "c2", ())
