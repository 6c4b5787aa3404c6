"""Each rule that crosses the wire has one home in ``protos``, and every side agrees with it.

The join token and the CA fingerprint are written by the hub and read by the spoke; labels are typed
on the command line, sent at registration and matched by selectors in fleet.yaml and in kustomize
patch targets. A second copy of any of these drifts (it did: the spoke accepted join tokens the hub
would refuse, and `convoy token create --labels` sent labels the hub then refused).
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest

from hub.api import limits
from hub.render.kustomize import patching
from hub.security import ca, secrets
from hub.tree.errors import KustomizeError
from protos import jointoken, selectors
from spoke import settings as spoke_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "0123456789ab." + "s" * 43
FINGERPRINT = "sha256:" + "ab" * 32


def _join(payload: dict[str, object]) -> str:
    return jointoken.JOIN_PREFIX + base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _product_functions() -> dict[str, list[str]]:
    """Top-level function name -> modules defining it, over hub, spoke and protos (kubesim keeps its own)."""
    found: dict[str, list[str]] = {}
    for package in ("hub", "spoke", "protos"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.FunctionDef):
                    found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("bad", [
    _join({"token": "id1.sec", "ca": ""}),                 # not a bootstrap token the hub ever makes
    _join({"token": TOKEN, "ca": "md5:00"}),
    _join({"token": TOKEN, "ca": "", "hub": ""}),
    "convoy-join.v1.!!!",
])
def test_the_spoke_refuses_exactly_the_join_tokens_the_hub_refuses(bad: str) -> None:
    with pytest.raises(jointoken.JoinTokenError) as hub_side:
        secrets.parse_join_token(bad)
    with pytest.raises(spoke_settings.SettingsError) as spoke_side:
        spoke_settings.load_settings(cli={"cluster": "c1", "hub": "h:1", "token": bad}, env={})
    assert str(spoke_side.value) == f"token: {hub_side.value}"


def test_the_spoke_reads_what_the_hub_writes() -> None:
    join = secrets.make_join_token(TOKEN, FINGERPRINT, "hub.example:7443")
    loaded = spoke_settings.load_settings(cli={"cluster": "c1", "token": join}, env={})
    assert (loaded.token, loaded.ca_fingerprint, loaded.hub) == (TOKEN, FINGERPRINT, "hub.example:7443")


def test_the_ca_fingerprint_is_computed_once() -> None:
    definitions = _product_functions()
    assert sorted(definitions["fingerprint_of"]) == ["hub/security/ca.py", "protos/jointoken.py"]
    source = (ROOT / "hub/security/ca.py").read_text(encoding="utf-8")
    assert "jointoken.fingerprint_of" in source and "hashlib" not in source
    with pytest.raises(ca.CertificateError, match="not a PEM certificate"):
        ca.fingerprint_of(b"garbage")


@pytest.mark.parametrize("text", ["env", "env=a b", "-bad=x", "env=" + "x" * 64])
def test_every_labels_option_refuses_the_same_labels(text: str) -> None:
    with pytest.raises(selectors.SelectorError) as shared:
        selectors.parse_labels(text, where="--labels")
    with pytest.raises(spoke_settings.SettingsError) as spoke_side:
        spoke_settings.parse_labels(text, source="--labels")
    assert str(spoke_side.value) == str(shared.value)
    if "=" in text:  # what the CLI lets through, the hub must accept at registration, and the reverse
        key, _, value = text.partition("=")
        with pytest.raises(limits.InvalidRequest):
            limits.check_labels({key: value}, where="--labels")


def test_labels_and_selectors_have_one_parser() -> None:
    definitions = _product_functions()
    # The spoke keeps thin adapters that turn the shared errors into its SettingsError.
    assert sorted(definitions["parse_labels"]) == ["protos/selectors.py", "spoke/settings.py"]
    assert sorted(definitions["parse_join_token"]) == ["protos/jointoken.py", "spoke/settings.py"]
    assert not (ROOT / "hub/fleet/selectors.py").exists()


def test_kustomize_patch_targets_use_the_fleet_selector_grammar() -> None:
    selector = patching.parse_label_selector("app=web,tier in (a,b),!legacy", file="k")
    assert selector == selectors.parse("app=web,tier in (a,b),!legacy")
    # kustomize (like the API server) refuses a value that is no label value; the old copy let it pass.
    with pytest.raises(KustomizeError, match="invalid label selector"):
        patching.parse_label_selector("app=-web", file="k")
