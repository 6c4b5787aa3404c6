"""The shared contract: fresh stubs, stable digests, signatures, identities."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protos import bundle, objects, status

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_fresh() -> None:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT), f"--python_out={out}",
             f"--pyi_out={out}", f"--grpc_python_out={out}", "protos/convoy/v1/convoy.proto"],
            check=True, cwd=ROOT,
        )
        for name in ("convoy_pb2.py", "convoy_pb2.pyi", "convoy_pb2_grpc.py"):
            fresh = (Path(out) / "protos/convoy/v1" / name).read_text()
            committed = (ROOT / "protos/convoy/v1" / name).read_text()
            assert fresh == committed, f"{name} is stale: run `make protos`"


SAMPLE = {
    "apiVersion": bundle.API_VERSION,
    "kind": "Bundle",
    "apps": [{"name": "web", "dependsOn": []}],
    "objects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "é", "namespace": "a"},
                 "data": {"z": "1", "a": "2"}}],
}


def test_digest_is_stable_across_processes_and_hash_seeds() -> None:
    code = (
        "import json,sys; from protos import bundle; "
        "print(bundle.digest_of(bundle.encode(json.loads(sys.stdin.read()))))"
    )
    import json

    digests = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], input=json.dumps(SAMPLE), text=True,
                             capture_output=True, check=True, env=env, cwd=ROOT)
        digests.add(out.stdout.strip())
    assert digests == {bundle.digest_of(bundle.encode(SAMPLE))}


def test_key_order_does_not_change_the_digest() -> None:
    reordered = {"objects": SAMPLE["objects"], "kind": "Bundle", "apps": SAMPLE["apps"],
                 "apiVersion": bundle.API_VERSION}
    assert bundle.encode(reordered) == bundle.encode(SAMPLE)


def test_decode_refuses_bytes_that_do_not_match_the_digest() -> None:
    data = bundle.encode(SAMPLE)
    assert bundle.decode(data, expected_digest=bundle.digest_of(data))["kind"] == "Bundle"
    with pytest.raises(bundle.BundleIntegrityError, match="digest mismatch"):
        bundle.decode(data.replace(b"web", b"wob"), expected_digest=bundle.digest_of(data))


def test_signature_verifies_only_with_the_signing_key_and_digest() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    digest = bundle.digest_of(b"x")
    signature = bundle.sign(key, digest)
    bundle.verify_signature(public, digest, signature)
    with pytest.raises(bundle.BundleIntegrityError):
        bundle.verify_signature(public, bundle.digest_of(b"y"), signature)
    other = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(bundle.BundleIntegrityError):
        bundle.verify_signature(other, digest, signature)


def test_decompress_refuses_a_bomb() -> None:
    packed = bundle.compress(b"\0" * 10_000_000)
    with pytest.raises(bundle.BundleError, match="limit"):
        bundle.decompress(packed, max_size=1_000_000)
    assert bundle.decompress(packed, max_size=10_000_000) == b"\0" * 10_000_000


def test_object_ref_prints_kind_group_namespace_name() -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}
    assert str(objects.ObjectRef.of(deploy)) == "Deployment.apps/shop/web"
    assert (str(objects.ObjectRef.of({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
            == "Namespace/shop")


def test_worst_phase_and_health() -> None:
    assert (status.HealthStatus.worst([status.HealthStatus.CURRENT, status.HealthStatus.FAILED])
            is status.HealthStatus.FAILED)
    assert status.Phase.worst([status.Phase.READY, status.Phase.DEGRADED]) is status.Phase.DEGRADED
