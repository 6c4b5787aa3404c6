"""The spoke opens a bundle's sealed secrets with its own key, and refuses by name what it cannot open."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from protos import bundle as bundles
from protos import sops
from spoke import sealing

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
