"""Fuzz target: bundle decoding as the spoke does it (inflate, parse against the digest, check the signature).

Every failure must be a :class:`protos.bundle.BundleError`. Longer run:
``.venv/bin/python tests/fuzz/fuzz_bundle.py -max_total_time=600 /tmp/bundle-corpus tests/fuzz/corpus/bundle``.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import atheris

with atheris.instrument_imports(include=["protos"]):
    from protos import bundle
    from tests.fuzz import _support


def test_one_input(data: bytes) -> None:
    # The bytes as a compressed copy (the inventory's and the hub's stored form) ...
    try:
        inflated = bundle.decompress(data, max_size=1024 * 1024)
    except bundle.BundleError:
        inflated = data
    # ... and as canonical bytes, parsed against their own digest (the check every spoke makes first).
    for raw in {inflated, data}:
        digest = bundle.digest_of(raw)
        try:
            parsed = bundle.decode(raw, expected_digest=digest)
        except bundle.BundleError:
            continue
        assert isinstance(parsed["objects"], list)
    # A signature made of the first 32 bytes as the key and the rest as the signature.
    with contextlib.suppress(bundle.BundleIntegrityError):
        bundle.verify_signature(data[:32], bundle.digest_of(data), data[32:])


if __name__ == "__main__":
    _support.main(test_one_input)
