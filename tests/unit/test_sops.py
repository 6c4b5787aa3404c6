"""Sealed secrets in the SOPS format, checked against the independent age CLI (Debian's ``age``)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from protos import bundle as bundles
from protos import sops

SECRET: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
    "type": "Opaque", "stringData": {"password": "hunter2", "port": 5432}, "data": {"token": "c2VjcmV0"},
}


def _age() -> str:
    path = shutil.which("age")
    assert path, "the age CLI is required (apt-get install age; .ci/run installs it)"
    return path


def test_seal_then_open_gives_back_the_secret_and_hides_every_value() -> None:
    ident, rcpt = sops.generate_identity()
    sealed = sops.seal(SECRET, [rcpt])
    text = json.dumps(sealed)
    assert "hunter2" not in text and "c2VjcmV0" not in text and "5432" not in text
    assert sealed["metadata"] == SECRET["metadata"], "metadata stays readable for kustomize"
    assert sealed["stringData"]["password"].startswith("ENC[AES256_GCM,data:")
    assert sealed["sops"]["mac_only_encrypted"] is True
    assert sops.recipients(sealed) == [rcpt]
    assert sops.open_document(sealed, [ident]) == SECRET


def test_a_bundle_round_trip_through_sorted_json_still_opens() -> None:
    ident, rcpt = sops.generate_identity()
    unsorted = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x"},
                "stringData": {"z": "1", "a": "2"}}
    sealed = sops.seal(unsorted, [rcpt])
    travelled = json.loads(json.dumps(sealed, sort_keys=True))
    travelled["metadata"]["namespace"] = "moved-by-kustomize"
    travelled["metadata"]["labels"] = {"team": "web"}
    assert sops.open_document(travelled, [ident])["stringData"] == {"a": "2", "z": "1"}


def test_the_age_cli_opens_the_data_key_we_wrapped(tmp_path: Path) -> None:
    ident, rcpt = sops.generate_identity()
    key = bytes(range(32))
    sealed = sops.seal(SECRET, [rcpt], data_key=key)
    (tmp_path / "key.txt").write_text(ident + "\n")
    (tmp_path / "stanza.age").write_text(sealed["sops"]["age"][0]["enc"])
    out = subprocess.run([_age(), "--decrypt", "-i", str(tmp_path / "key.txt"), str(tmp_path / "stanza.age")],
                         capture_output=True, check=True).stdout
    assert out == key


def test_a_data_key_wrapped_by_the_age_cli_with_its_own_key_opens_here(tmp_path: Path) -> None:
    keygen = shutil.which("age-keygen")
    assert keygen, "age-keygen comes with the age package"
    subprocess.run([keygen, "-o", str(tmp_path / "k.txt")], capture_output=True, check=True)
    ident = next(line for line in (tmp_path / "k.txt").read_text().splitlines() if line.startswith("AGE-SECRET"))
    rcpt = sops.recipient_of(ident)
    key = bytes(range(32))
    sealed = sops.seal(SECRET, [rcpt], data_key=key)
    (tmp_path / "dk").write_bytes(key)
    armored = subprocess.run([_age(), "--encrypt", "--armor", "-r", rcpt, str(tmp_path / "dk")],
                             capture_output=True, check=True).stdout.decode()
    sealed["sops"]["age"] = [{"recipient": rcpt, "enc": armored}]
    assert sops.open_document(sealed, [ident]) == SECRET


def test_every_recipient_opens_it_and_a_stranger_is_told_whose_it_is() -> None:
    keys = [sops.generate_identity() for _ in range(3)]
    sealed = sops.seal(SECRET, [r for _, r in keys[:2]])
    for ident, _ in keys[:2]:
        assert sops.open_document(sealed, [ident]) == SECRET
    with pytest.raises(sops.SopsError, match="not sealed for this key"):
        sops.open_document(sealed, [keys[2][0]])


def test_a_changed_ciphertext_a_moved_value_or_a_changed_mac_are_refused() -> None:
    ident, rcpt = sops.generate_identity()
    sealed = sops.seal(SECRET, [rcpt])
    tampered = json.loads(json.dumps(sealed))
    tampered["stringData"]["password"] = tampered["stringData"]["password"].replace("data:", "data:AA", 1)
    with pytest.raises(sops.SopsError, match="stringData/password: value does not decrypt") as err:
        sops.open_document(tampered, [ident])
    assert "hunter2" not in str(err.value)
    swapped = json.loads(json.dumps(sealed))  # a value moved to another key: its path is authenticated
    swapped["data"]["token"] = sealed["stringData"]["password"]
    with pytest.raises(sops.SopsError, match="data/token: value does not decrypt"):
        sops.open_document(swapped, [ident])
    dropped = json.loads(json.dumps(sealed))  # a value removed: only the MAC notices
    del dropped["data"]["token"]
    with pytest.raises(sops.SopsError, match="MAC does not verify"):
        sops.open_document(dropped, [ident])
    other = sops.seal(SECRET, [rcpt])
    remac = json.loads(json.dumps(sealed))
    remac["sops"]["mac"] = other["sops"]["mac"]
    with pytest.raises(sops.SopsError, match="MAC does not verify"):
        sops.open_document(remac, [ident])


def test_a_truncated_age_stanza_and_a_wrong_identity_say_so() -> None:
    ident, rcpt = sops.generate_identity()
    sealed = sops.seal(SECRET, [rcpt])
    cut = json.loads(json.dumps(sealed))
    cut["sops"]["age"][0]["enc"] = cut["sops"]["age"][0]["enc"][:120]
    with pytest.raises(sops.SopsError, match="does not decrypt with this key"):
        sops.open_document(cut, [ident])
    with pytest.raises(sops.SopsError, match="not an age identity"):
        sops.open_document(sealed, ["AGE-SECRET-KEY-1NOPE"])


def test_unknown_recipient_types_are_refused_by_name() -> None:
    with pytest.raises(sops.SopsError, match="unsupported recipient type 'ssh-ed25519"):
        sops.seal(SECRET, ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"])
    ident, rcpt = sops.generate_identity()
    pgp_only = sops.seal(SECRET, [rcpt])
    pgp_only["sops"]["pgp"] = [{"fp": "ABCD", "enc": "..."}]
    del pgp_only["sops"]["age"]
    with pytest.raises(sops.SopsError, match="key types here: pgp"):
        sops.open_document(pgp_only, [ident])


def test_rewrap_changes_recipients_and_the_data_key_but_not_the_values() -> None:
    op_ident, op = sops.generate_identity()
    new_ident, new = sops.generate_identity()
    sealed = sops.seal(SECRET, [op], now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    again = sops.rewrap(sealed, [op_ident], [op, new])
    assert sops.recipients(again) == [op, new]
    assert sops.open_document(again, [new_ident]) == SECRET
    assert sops.ciphertext_digest(again) != sops.ciphertext_digest(sealed)


def test_the_digest_ignores_metadata_kustomize_may_change() -> None:
    _, rcpt = sops.generate_identity()
    sealed = sops.seal(SECRET, [rcpt])
    moved = json.loads(json.dumps(sealed))
    moved["metadata"]["namespace"] = "elsewhere"
    assert sops.ciphertext_digest(moved) == sops.ciphertext_digest(sealed)


def test_pyrage_is_the_real_age_format() -> None:
    assert pyrage.encrypt(b"x", [sops.parse_recipient(sops.generate_identity()[1])], armored=True) \
        .startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")


COMPAT = Path(__file__).resolve().parents[1] / "compat"


def test_an_independent_sops_implementation_opens_what_convoy_seal_writes(tmp_path: Path) -> None:
    from hub.commands.sealing import dump_documents

    node = shutil.which("node")
    assert node, "node is required for the SOPS compatibility test"
    assert (COMPAT / "node_modules" / "sops-age").is_dir(), \
        "run `npm ci --prefix tests/compat` first (.ci/run does)"
    ident, rcpt = sops.generate_identity()
    _, other = sops.generate_identity()
    doc = {**SECRET, "stringData": {"password": "hunter2", "port": 5432, "ratio": 0.5, "on": True}}
    (tmp_path / "secret.sops.yaml").write_text(dump_documents([sops.seal(doc, [other, rcpt])]))
    (tmp_path / "key.txt").write_text(f"# created by the test\n{ident}\n")
    out = subprocess.run([node, str(COMPAT / "open-sops.mjs"), str(tmp_path / "secret.sops.yaml"),
                          str(tmp_path / "key.txt")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == doc | {"apiVersion": "v1"}


# What the sops tool writes by default: values in the document's own order (here not sorted) and a MAC over
# every value, the unencrypted metadata included (no mac_only_encrypted).
AS_WRITTEN: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"tier": "db"}},
    "type": "Opaque", "stringData": {"username": "shop", "password": "hunter2", "port": 5432},
}


def _as_sops_writes(ident_rcpt: tuple[str, str], *, mac_only_encrypted: bool) -> str:
    doc = sops.seal(AS_WRITTEN, [ident_rcpt[1]], keep_order=True, mac_only_encrypted=mac_only_encrypted)
    return yaml.safe_dump(doc, sort_keys=False)


def _travelled(source: dict[str, Any]) -> dict[str, Any]:
    """What the spoke gets: the hub's MAC walk annotation, kustomize's metadata changes, sorted JSON."""
    obj = json.loads(json.dumps(source))
    obj["metadata"]["namespace"] = "shop"
    obj["metadata"]["labels"]["convoy.dev/app"] = "web"
    obj["metadata"]["annotations"] = {bundles.ANNOTATION_SEALED_MAC_WALK: json.dumps(sops.mac_walk(source))}
    return json.loads(json.dumps(obj, sort_keys=True))


@pytest.mark.parametrize("mac_only_encrypted", [True, False])
def test_a_file_with_unsorted_keys_opens_after_travelling_as_sorted_json(mac_only_encrypted: bool) -> None:
    pair = sops.generate_identity()
    source = yaml.safe_load(_as_sops_writes(pair, mac_only_encrypted=mac_only_encrypted))
    assert list(source["stringData"]) == ["username", "password", "port"], "written in the document's order"
    assert ("mac_only_encrypted" in source["sops"]) is mac_only_encrypted
    assert "hunter2" not in json.dumps(sops.mac_walk(source)), "the walk names encrypted values by path only"
    travelled = _travelled(source)
    opened = sops.open_document(travelled, [pair[0]])
    assert opened["stringData"] == {"password": "hunter2", "port": 5432, "username": "shop"}
    assert opened["metadata"]["namespace"] == "shop"
    # Without the walk the hub records, the sorted order breaks the MAC: the limitation this fixes.
    del travelled["metadata"]["annotations"]
    with pytest.raises(sops.SopsError, match="MAC does not verify"):
        sops.open_document(travelled, [pair[0]])


def test_the_recorded_walk_does_not_let_ciphertext_be_moved_dropped_or_added() -> None:
    pair = sops.generate_identity()
    source = yaml.safe_load(_as_sops_writes(pair, mac_only_encrypted=False))
    swapped = _travelled(source)
    data = swapped["stringData"]
    data["username"], data["password"] = data["password"], data["username"]
    with pytest.raises(sops.SopsError, match="does not decrypt"):
        sops.open_document(swapped, [pair[0]])
    dropped = _travelled(source)
    del dropped["stringData"]["port"]
    with pytest.raises(sops.SopsError, match="MAC does not verify"):
        sops.open_document(dropped, [pair[0]])
    added = _travelled(source)
    other = sops.seal({"stringData": {"extra": "x"}}, [pair[1]])
    added["stringData"]["extra"] = other["stringData"]["extra"]
    with pytest.raises(sops.SopsError):
        sops.open_document(added, [pair[0]])
    changed_value = _travelled(source)
    walk = json.loads(changed_value["metadata"]["annotations"]["convoy.dev/sealed-mac-walk"])
    walk[0]["value"] = "v2"  # an unencrypted value of the file as written, not what was sealed
    changed_value["metadata"]["annotations"]["convoy.dev/sealed-mac-walk"] = json.dumps(walk)
    with pytest.raises(sops.SopsError, match="MAC does not verify"):
        sops.open_document(changed_value, [pair[0]])
    # An encrypted value dropped from the object and stood in for by a stated value in the walk.
    stood_in = _travelled(source)
    del stood_in["stringData"]["password"]
    walk = json.loads(stood_in["metadata"]["annotations"]["convoy.dev/sealed-mac-walk"])
    walk = [{"path": e, "value": "hunter2"} if e == ["stringData", "password"] else e for e in walk]
    stood_in["metadata"]["annotations"]["convoy.dev/sealed-mac-walk"] = json.dumps(walk)
    with pytest.raises(sops.SopsError, match="malformed"):
        sops.open_document(stood_in, [pair[0]])


def test_an_independent_sops_implementation_opens_a_file_in_the_order_sops_writes(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is required for the SOPS compatibility test"
    ident, rcpt = sops.generate_identity()
    (tmp_path / "secret.sops.yaml").write_text(_as_sops_writes((ident, rcpt), mac_only_encrypted=False))
    (tmp_path / "key.txt").write_text(f"{ident}\n")
    out = subprocess.run([node, str(COMPAT / "open-sops.mjs"), str(tmp_path / "secret.sops.yaml"),
                          str(tmp_path / "key.txt")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == AS_WRITTEN
