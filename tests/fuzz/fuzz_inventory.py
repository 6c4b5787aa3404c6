"""Fuzz target: loading the spoke's inventory Secret (``InventoryStore.load``).

The input is a packed tree whose paths are the Secret's data keys (``inventory.json``, ``bundle.zlib``,
``digest``, ...) and whose contents are base64-encoded into the Secret, except a key written with a
trailing ``!``, whose content is taken as the (maybe invalid) base64 text itself. ``load`` must return
an Inventory whose entries are all strings, or raise ``ValueError`` (what the agent catches to carry on
without it); anything else would stop the spoke. Longer run: ``.venv/bin/python
tests/fuzz/fuzz_inventory.py -max_total_time=600 /tmp/inventory-corpus tests/fuzz/corpus/inventory``.
"""

from __future__ import annotations

import base64
import pathlib
import sys
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports(include=["spoke", "protos"]):
    from spoke import inventory
    from tests.fuzz import _support


class _OneSecret:
    """The one call ``InventoryStore.load`` makes of a ClusterClient."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.secret = {"apiVersion": "v1", "kind": "Secret", "data": data}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secret


def secret_data(data: bytes) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, content in _support.unpack_tree(data).items():
        if key.endswith("!"):
            result[key[:-1]] = content.decode("utf-8", "replace")
        else:
            result[key] = base64.b64encode(content).decode("ascii")
    return result


def test_one_input(data: bytes) -> None:
    store = inventory.InventoryStore(_OneSecret(secret_data(data)), namespace="convoy-system",  # type: ignore[arg-type]
                                     name="convoy-inventory", max_bundle_bytes=1024 * 1024)
    try:
        loaded = store.load()
    except ValueError:
        return
    assert loaded is not None
    for ref, entry in loaded.entries.items():
        assert all(isinstance(part, str) for part in (ref.group, ref.kind, ref.namespace, ref.name,
                                                     entry.api_version, entry.app, entry.hash)), entry
    # What the spoke does with it next: write it back after an apply.
    inventory.encode(loaded)


if __name__ == "__main__":
    _support.main(test_one_input)
