"""Every validating pattern matches the whole value: a trailing newline never passes (issue 13 item 9).

``re.match`` with ``$`` accepts ``"sp-alpha\\n"`` (``$`` also matches before a final newline), so a
second cluster that prints like the first could register. Each validator below is fed a valid value
(accepted) and the same value with a trailing newline (refused); the last test keeps the pattern
from coming back anywhere in the product.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hub import settings as hub_settings
from hub.api import limits
from hub.commands import fleet as fleet_commands
from hub.fleet import clusters as fleet_clusters
from hub.fleet import model as fleet_model
from hub.render import substitute
from hub.render.kustomize import generating
from hub.security import secrets
from hub.source import git as git_source
from protos import bundle as bundles
from protos import jointoken, selectors
from protos.codec import pb
from spoke import drift
from spoke import settings as spoke_settings

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64
COMMIT = "b" * 40
FINGERPRINT = "sha256:" + "c" * 64
TOKEN = "0123456789ab." + "A" * 43


def _refuses(call: Callable[[], Any]) -> bool:
    """Refused: the validator raised, or (a bare pattern) found no match."""
    try:
        result = call()
    except Exception:
        return True
    return result is None or result is False


def _raises(check: Callable[[str], object]) -> Callable[[str], bool]:
    """A validator that raises on bad input and returns nothing on good input."""
    def call(value: str) -> bool:
        check(value)
        return True
    return call


def _report(**fields: Any) -> pb.StatusReport:
    return pb.StatusReport(phase=pb.PHASE_READY, **fields)


def _hub_settings(tmp_path: Path, **values: Any) -> Any:
    return hub_settings.load_settings(cli_values=values, env={"HOME": str(tmp_path)})


#: (what, accepts the value, accepts the value + "\n")
VALIDATORS: list[tuple[str, Callable[[str], Any], str]] = [
    ("cluster name at Register",
     _raises(lambda v: limits.check_registration(cluster_name=v, labels={}, token="t")), "sp-alpha"),
    ("label key at Register", _raises(lambda v: limits.check_labels({v: "x"}, where="t")), "tier"),
    ("label key prefix at Register",
     _raises(lambda v: limits.check_labels({v + "/tier": "x"}, where="t")), "convoy.dev"),
    ("label value at Register", _raises(lambda v: limits.check_labels({"env": v}, where="t")), "prod"),
    ("digest", _raises(lambda v: limits.check_digest(v, where="t")), DIGEST),
    ("applied commit in a report",
     _raises(lambda v: limits.check_report(_report(applied_commit=v), limits.ReportLimits(), cluster="c")), COMMIT),
    ("applied digest in a report",
     _raises(lambda v: limits.check_report(_report(applied_digest=v), limits.ReportLimits(),
                                         cluster="c")), DIGEST),
    ("fleet cluster / app name", lambda v: fleet_model.NAME_RE.fullmatch(v), "prod-eu-1"),
    ("cluster variable name", lambda v: fleet_clusters._VAR_RE.fullmatch(v), "region"),
    ("selector key", lambda v: selectors._KEY_RE.fullmatch(v), "env"),
    ("selector value (mapping form)",
     lambda v: selectors.from_mapping({"matchLabels": {"env": v}}, where="t"), "prod"),
    ("substitution expression", lambda v: substitute.referenced_variables([f"${{{v}}}"]) or None, "region"),
    ("generator key", lambda v: generating._KEY_RE.fullmatch(v), "app.conf"),
    ("commit id in the Git source", lambda v: git_source._SHA_RE.fullmatch(v), COMMIT),
    ("CLI duration", lambda v: fleet_commands._DURATION_RE.fullmatch(v), "15m"),
    ("bootstrap token", lambda v: jointoken._TOKEN_RE.fullmatch(v), TOKEN),
    ("join token CA fingerprint (hub)", lambda v: secrets.make_join_token(TOKEN, v), FINGERPRINT),
    ("spoke cluster name", lambda v: spoke_settings._NAME.fullmatch(v), "edge-1"),
    ("spoke join token fingerprint", lambda v: jointoken._FINGERPRINT_RE.fullmatch(v), FINGERPRINT),
    ("drift quantity", lambda v: drift._QUANTITY.fullmatch(v), "500Mi"),
]


@pytest.mark.parametrize(("what", "check", "valid"), VALIDATORS, ids=[v[0] for v in VALIDATORS])
def test_a_trailing_newline_does_not_pass(what: str, check: Callable[[str], Any], valid: str) -> None:
    assert not _refuses(lambda: check(valid)), f"{what}: the valid value {valid!r} was refused"
    assert _refuses(lambda: check(valid + "\n")), f"{what}: {valid + chr(10)!r} passed"


def test_register_refuses_a_name_with_a_trailing_newline() -> None:
    with pytest.raises(limits.InvalidRequest, match="DNS label"):
        limits.check_registration(cluster_name="sp-alpha\n", labels={}, token="t")


@pytest.mark.parametrize("field", ["grpc_listen", "http_listen"])
def test_hub_addresses_with_a_trailing_newline_are_refused(tmp_path: Path, field: str) -> None:
    _hub_settings(tmp_path, **{field: "127.0.0.1:7443"})
    with pytest.raises(hub_settings.SettingsError, match=field):
        _hub_settings(tmp_path, **{field: "127.0.0.1:7443\n"})


def test_fleet_names_with_a_trailing_newline_are_refused() -> None:
    assert fleet_model.NAME_RE.fullmatch("web") is not None
    fleet_model.parse_fleet({"apiVersion": bundles.API_VERSION, "kind": "Fleet",
                             "apps": [{"name": "web", "path": "apps/web"}]})
    with pytest.raises(fleet_model.FleetConfigError, match="web"):
        fleet_model.parse_fleet({"apiVersion": bundles.API_VERSION, "kind": "Fleet",
                                 "apps": [{"name": "web\n", "path": "apps/web"}]})


_ANCHORED_MATCH = re.compile(r"""re\.compile\(\s*r?f?["'][^"']*\$["']|\^\(\?:\{""")


def test_no_pattern_in_the_product_ends_in_a_bare_dollar() -> None:
    offenders = []
    for package in ("hub", "spoke", "protos", "kubesim"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "_gen" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _ANCHORED_MATCH.search(line) or re.search(r"""re\.match\(\s*r?["'][^"']*\$["']""", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "use .fullmatch (or \\Z), not $:\n" + "\n".join(offenders)
