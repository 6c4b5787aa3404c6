"""The spoke opens a bundle's sealed secrets with its own key, and refuses by name what it cannot open."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from typing import Any

import pytest

from protos import bundle as bundles
from protos import sops
from spoke import credentials, sealing

PLAIN = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "db", "namespace": "shop", "labels": {bundles.LABEL_APP: "web"}},
         "stringData": {"password": "hunter2"}}
CONFIG = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}


def _bundle(*objects: Any) -> dict[str, Any]:
    return {"apiVersion": bundles.API_VERSION, "kind": "Bundle", "apps": [], "objects": list(objects)}


def test_sealed_objects_are_opened_and_the_rest_left_alone() -> None:
    ident, rcpt = sops.generate_identity()
    opened = sealing.open_bundle(_bundle(CONFIG, sops.seal(PLAIN, [rcpt])), ident)
    assert opened["objects"] == [CONFIG, PLAIN]


def _refusal(bundle: dict[str, Any], identity: str) -> str:
    with pytest.raises(sealing.SealedSecretError) as err:
        sealing.open_bundle(bundle, identity)
    text = str(err.value)
    assert text.startswith("Secret/shop/db (app web): ") and "hunter2" not in text
    return text


def test_wrong_key() -> None:
    _, rcpt = sops.generate_identity()
    stranger, _ = sops.generate_identity()
    assert "not sealed for this key" in _refusal(_bundle(sops.seal(PLAIN, [rcpt])), stranger)


def test_no_key_yet() -> None:
    _, rcpt = sops.generate_identity()
    assert "has no age key yet" in _refusal(_bundle(sops.seal(PLAIN, [rcpt])), "")


def test_truncated_ciphertext() -> None:
    ident, rcpt = sops.generate_identity()
    sealed = sops.seal(PLAIN, [rcpt])
    sealed["stringData"]["password"] = sealed["stringData"]["password"].replace("data:", "data:x", 1)[:40]
    assert "stringData/password: not a SOPS AES256_GCM value" in _refusal(_bundle(sealed), ident)


def test_tampered_mac() -> None:
    ident, rcpt = sops.generate_identity()
    sealed = sops.seal(PLAIN, [rcpt])
    other = sops.seal(PLAIN, [rcpt])
    sealed["sops"]["mac"] = other["sops"]["mac"]
    assert "MAC does not verify" in _refusal(_bundle(sealed), ident)


def test_unknown_recipient_type() -> None:
    ident, rcpt = sops.generate_identity()
    sealed = sops.seal(PLAIN, [rcpt])
    sealed["sops"]["hc_vault"] = [{"vault_address": "https://v", "enc": "vault:v1:..."}]
    del sealed["sops"]["age"]
    assert "key types here: hc_vault" in _refusal(_bundle(sealed), ident)


def test_the_input_bundle_is_not_changed() -> None:
    ident, rcpt = sops.generate_identity()
    bundle = _bundle(sops.seal(PLAIN, [rcpt]))
    before = copy.deepcopy(bundle)
    sealing.open_bundle(bundle, ident)
    assert bundle == before


def test_the_refusal_names_the_source_file_the_hub_recorded() -> None:
    _, rcpt = sops.generate_identity()
    stranger, _ = sops.generate_identity()
    sealed = sops.seal(PLAIN, [rcpt])
    sealed["metadata"]["annotations"] = {bundles.ANNOTATION_SEALED_SOURCE: "apps/web/db.sops.yaml"}
    with pytest.raises(sealing.SealedSecretError) as err:
        sealing.open_bundle(_bundle(sealed), stranger)
    assert str(err.value).startswith("Secret/shop/db (app web, file apps/web/db.sops.yaml): ")


def test_without_a_recorded_source_the_refusal_says_why_it_names_no_file() -> None:
    _, rcpt = sops.generate_identity()
    stranger, _ = sops.generate_identity()
    assert "the bundle does not name the file" in _refusal(_bundle(sops.seal(PLAIN, [rcpt])), stranger)


def test_the_previous_age_key_is_kept_for_its_grace_then_dropped() -> None:
    old, old_rcpt = sops.generate_identity()
    new, _ = sops.generate_identity()
    rotated = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    grace = dt.timedelta(days=7)
    creds = credentials.Credentials(cluster="c", hub="h:1", credential="x", age_identity=new,
                                    age_identity_previous=old, age_identity_previous_since=rotated)
    sealed_for_old = _bundle(sops.seal(PLAIN, [old_rcpt]))
    assert credentials.retire_previous_age_key(creds, now=rotated + grace - dt.timedelta(seconds=1),
                                               grace=grace) is None, "kept within the grace"
    assert sealing.open_bundle(sealed_for_old, creds.age_identity, creds.age_identity_previous)["objects"] == [PLAIN]
    dropped = credentials.retire_previous_age_key(creds, now=rotated + grace, grace=grace)
    assert dropped is not None and dropped.age_identity == new
    assert dropped.age_identity_previous == "" and dropped.age_identity_previous_since is None
    with pytest.raises(sealing.SealedSecretError, match="not sealed for this key"):
        sealing.open_bundle(sealed_for_old, dropped.age_identity, dropped.age_identity_previous)
    # Kept by a spoke from before the bound (no time stored): its grace starts now, it is not lost at once.
    legacy = dataclasses.replace(creds, age_identity_previous_since=None)
    later = rotated + dt.timedelta(days=400)
    stamped = credentials.retire_previous_age_key(legacy, now=later, grace=grace)
    assert stamped is not None and stamped.age_identity_previous == old and stamped.age_identity_previous_since == later
    assert credentials.retire_previous_age_key(creds, now=later, grace=grace) is not None
    assert credentials.retire_previous_age_key(dropped, now=later, grace=grace) is None, "nothing left to retire"
