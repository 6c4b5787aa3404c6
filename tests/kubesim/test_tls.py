"""HTTPS with kubesim's own CA, and bearer-token authentication."""

from __future__ import annotations

import json
import pathlib
import ssl
import subprocess
from typing import Any

import pytest
import urllib3
from kubernetes import client

from kubesim.testing import KubeSim


@pytest.fixture(scope="module")
def secure() -> Any:
    with KubeSim(clusters=["s"], tls=True, token="s3cret") as server:
        yield server


def test_official_client_verifies_the_ca_and_sends_the_token(secure: KubeSim) -> None:
    assert secure.base_url.startswith("https://127.0.0.1:")
    assert secure.ca_pem is not None and secure.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    api: Any = secure.api_client("s")
    assert client.CoreV1Api(api).read_namespace("default").metadata.name == "default"
    api.close()


def test_missing_or_wrong_token_is_401(secure: KubeSim) -> None:
    context = ssl.create_default_context(cadata=secure.ca_pem.decode() if secure.ca_pem else None)
    http = urllib3.PoolManager(ssl_context=context)
    anonymous = http.request("GET", f"{secure.url('s')}/api/v1/namespaces")
    assert anonymous.status == 401
    assert json.loads(anonymous.data) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                          "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    wrong = http.request("GET", f"{secure.url('s')}/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = http.request("GET", f"{secure.url('s')}/api/v1/namespaces", headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200


def test_untrusted_client_fails_verification(secure: KubeSim) -> None:
    http = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", retries=False)
    with pytest.raises(urllib3.exceptions.SSLError):
        http.request("GET", f"{secure.url('s')}/version")


@pytest.mark.kubectl
def test_kubectl_over_https(secure: KubeSim, kubectl: str, tmp_path: pathlib.Path, isolated_home: str) -> None:
    path = secure.write_kubeconfig(tmp_path / "kc")
    out = subprocess.run([kubectl, "--kubeconfig", str(path), "get", "namespaces", "-o", "name"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "namespace/default" in out.stdout.split()
