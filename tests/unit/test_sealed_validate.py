"""``convoy validate`` on Secrets, and fleet.yaml's ``secrets:`` setting (issue 18)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hub.cli import cli
from hub.fleet import model
from protos import sops

SAMPLE = Path(__file__).resolve().parents[2] / "fleet-config"
SECRET: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-db"}, "type": "Opaque",
                          "stringData": {"password": "hunter2"}}


def _fleet(tmp_path: Path, secret: dict[str, Any], *, fleet_secrets: Any = None) -> Path:
    root = tmp_path / "fleet"
    shutil.copytree(SAMPLE, root, symlinks=True)
    base = root / "apps/web/base"
    for old in base.glob("*.sops.yaml"):  # the sample's own sealed secret is replaced by the test's
        old.unlink()
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    kustomization["resources"] = [r for r in kustomization["resources"] if not r.endswith(".sops.yaml")]
    kustomization["resources"].append("test-secret.yaml")
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (base / "test-secret.yaml").write_text(yaml.safe_dump(secret))
    if fleet_secrets is not None:
        fleet = yaml.safe_load((root / "fleet.yaml").read_text())
        fleet["secrets"] = fleet_secrets
        (root / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    return root


def _validate(*args: str) -> Any:
    return CliRunner().invoke(cli, ["validate", *args])


def test_a_plaintext_secret_is_a_warning_naming_cluster_app_and_object(tmp_path: Path) -> None:
    result = _validate(str(_fleet(tmp_path, SECRET)))
    assert result.exit_code == 0, result.output
    assert ("warning: cluster dev-eu-1: app web: Secret/shop/web-db is a plaintext Secret in the fleet "
            "repository; seal it with convoy seal") in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize("how", ["--strict", "sealedOnly", "policy"])
def test_a_plaintext_secret_is_an_error_under_strict_or_sealed_only(tmp_path: Path, how: str) -> None:
    setting = {"sealedOnly": "sealedOnly", "policy": {"policy": "sealedOnly"}}.get(how)
    root = _fleet(tmp_path, SECRET, fleet_secrets=setting)
    result = _validate(*([how] if how == "--strict" else []), str(root))
    assert result.exit_code == 1, result.output
    assert "error: cluster dev-eu-1: app web: Secret/shop/web-db is a plaintext Secret" in result.output


def test_a_sealed_secret_is_quiet_and_one_whose_mac_fails_is_an_error_with_an_operator_key(tmp_path: Path) -> None:
    ident, operator = sops.generate_identity()
    (tmp_path / "op.txt").write_text(ident + "\n")
    good = sops.seal(SECRET, [operator])
    ok = _validate("--strict", "--identity", str(tmp_path / "op.txt"), str(_fleet(tmp_path / "a", good)))
    assert ok.exit_code == 0, ok.output
    assert "Secret/shop/web-db" not in ok.output
    tampered = sops.seal(SECRET | {"stringData": {"password": "hunter2", "user": "u"}}, [operator])
    del tampered["stringData"]["user"]
    bad = _validate("--identity", str(tmp_path / "op.txt"), str(_fleet(tmp_path / "b", tampered)))
    assert bad.exit_code == 1
    assert ("error: cluster dev-eu-1: app web: Secret/shop/web-db (file apps/web/base/test-secret.yaml): "
            "MAC does not verify") in bad.output


def _parse(secrets: Any) -> model.Fleet:
    data = yaml.safe_load((SAMPLE / "fleet.yaml").read_text())
    data["secrets"] = secrets
    return model.parse_fleet(data)


def test_fleet_secrets_setting() -> None:
    _, rcpt = sops.generate_identity()
    assert _parse("sealedOnly").secrets.sealed_only
    parsed = _parse({"operators": [rcpt]}).secrets
    assert parsed.operators == (rcpt,) and not parsed.sealed_only
    with pytest.raises(model.FleetConfigError, match=r"secrets.operators\[0\]: unsupported recipient type"):
        _parse({"operators": ["ssh-rsa AAAA"]})
    with pytest.raises(model.FleetConfigError, match=r"secrets\.policy: 'never' is not one of warn, sealedOnly"):
        _parse({"policy": "never"})
