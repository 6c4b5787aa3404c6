"""The spoke's hub client over real gRPC: register, watch, fetch, report, and first-contact CA pinning."""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Iterator

import pytest

from hub.security import ca as hub_ca
from protos import bundle as bundles
from protos import jointoken
from protos.status import Phase
from spoke import hubclient, report
from tests.integration.spoke_harness import FakeHub, configmap, make_bundle, self_signed
from tests.polling import wait_for


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub().start()
    yield fake
    fake.stop()


@pytest.fixture
def authority(tmp_path: pathlib.Path) -> hub_ca.CertificateAuthority:
    return hub_ca.ensure_ca(tmp_path / "ca")


def _tls_hub(authority: hub_ca.CertificateAuthority, *, with_ca: bool) -> FakeHub:
    cert, key = authority.issue_server_cert(hosts=["localhost", "127.0.0.1"])
    chain = cert + authority.cert_pem if with_ca else cert
    return FakeHub(tls=(chain, key, authority.cert_pem)).start()


def test_register_watch_fetch_report(hub: FakeHub) -> None:
    client = hubclient.HubClient(hub.address, ca_pem=None, insecure=True)
    try:
        reg = client.register(token=hub.token, cluster="edge-1", labels={"env": "dev"})
        assert reg.cluster == "edge-1" and reg.signing_key == hub.public_key
        assert reg.credential not in repr(reg)
        client.with_credential(reg.credential)
        bundle = make_bundle([configmap("cfg", "default")])
        digest = hub.publish(bundle, commit="abc")
        events = client.watch(applied_digest="")
        first = next(events)
        assert isinstance(first, hubclient.Desired)
        assert (first.digest, first.commit, first.cluster) == (digest, "abc", "edge-1")
        fetched = client.get_bundle(digest, max_size=1 << 20)
        assert bundles.decode(fetched.data, expected_digest=digest) == bundle
        bundles.verify_signature(reg.signing_key, digest, fetched.signature)
        client.report(report.Status(phase=Phase.READY, digest=digest, commit="abc"), 3)
        last = hub.last_report()
        assert last is not None and last.applied_digest == digest and last.backlog == 3
        client.cancel_watch()
    finally:
        client.close()


def test_bad_bootstrap_token_is_unauthenticated(hub: FakeHub) -> None:
    client = hubclient.HubClient(hub.address, ca_pem=None, insecure=True)
    try:
        with pytest.raises(hubclient.HubUnauthenticated, match=f"hub {hub.address}: Register"):
            client.register(token="wrong.token", cluster="c1", labels={})
    finally:
        client.close()


def test_watch_ends_with_unavailable_when_the_hub_shuts_down(hub: FakeHub) -> None:
    client = hubclient.HubClient(hub.address, ca_pem=None, insecure=True)
    reg = client.register(token=hub.token, cluster="c1", labels={})
    client.with_credential(reg.credential)
    hub.publish(make_bundle([configmap("a", "default")]))
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in client.watch(applied_digest=""):
                pass
        except hubclient.HubError as exc:
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    wait_for(lambda: hub.version and thread.is_alive(), what="watch running")
    hub.stop()
    thread.join(10)
    client.close()
    assert errors and isinstance(errors[0], hubclient.HubUnavailable)


def test_first_contact_pins_the_ca_from_the_join_token(authority: hub_ca.CertificateAuthority) -> None:
    hub = _tls_hub(authority, with_ca=True)
    try:
        contact = hubclient.first_contact(hub.address, authority.fingerprint())
        assert jointoken.fingerprint_of(contact.root_pem) == authority.fingerprint()
        client = hubclient.HubClient(hub.address, ca_pem=contact.root_pem)
        try:
            reg = client.register(token=hub.token, cluster="c1", labels={})
            assert reg.cluster == "c1"
        finally:
            client.close()
    finally:
        hub.stop()


def test_a_hub_presenting_another_ca_is_refused_before_the_token_is_sent(
        authority: hub_ca.CertificateAuthority, tmp_path: pathlib.Path) -> None:
    other = hub_ca.ensure_ca(tmp_path / "other")
    hub = _tls_hub(other, with_ca=True)
    try:
        with pytest.raises(hubclient.HubTrustError, match="no certificate it presented matches"):
            hubclient.first_contact(hub.address, authority.fingerprint())
        assert hub.register_requests == []
    finally:
        hub.stop()


@pytest.mark.parametrize("impostor", ["self-signed", "own CA, leaf only", "genuine CA shown, own leaf",
                                      "genuine hub, leaf only"])
def test_an_impostor_hub_never_receives_the_bootstrap_token(
        authority: hub_ca.CertificateAuthority, tmp_path: pathlib.Path, impostor: str) -> None:
    if impostor == "self-signed":
        cert, key = self_signed()
        hub = FakeHub(tls=(cert, key, cert)).start()
    elif impostor == "own CA, leaf only":
        hub = _tls_hub(hub_ca.ensure_ca(tmp_path / "rogue"), with_ca=False)
    elif impostor == "genuine CA shown, own leaf":
        # The genuine CA certificate is public: an impostor can present it next to its own leaf.
        cert, key = hub_ca.ensure_ca(tmp_path / "rogue").issue_server_cert(hosts=["127.0.0.1"])
        hub = FakeHub(tls=(cert + authority.cert_pem, key, authority.cert_pem)).start()
    else:
        # Without the CA in its chain the spoke cannot check the pin before sending, so it does not send.
        hub = _tls_hub(authority, with_ca=False)
    try:
        with pytest.raises(hubclient.HubTrustError, match="refusing the hub before sending the token"):
            hubclient.first_contact(hub.address, authority.fingerprint())
        assert hub.register_requests == []
    finally:
        hub.stop()


def _registered(hub: FakeHub, cluster: str = "edge-1") -> hubclient.HubClient:
    client = hubclient.HubClient(hub.address, ca_pem=None, insecure=True, rpc_timeout=5)
    client.with_credential(client.register(token=hub.token, cluster=cluster, labels={}).credential)
    return client


def test_reports_share_one_stream_and_survive_a_hub_restart(hub: FakeHub) -> None:
    client = _registered(hub)
    try:
        for n in range(3):
            client.report(report.Status(phase=Phase.READY, digest=f"sha256:{n:064d}", commit="abc"))
        assert [r.applied_digest for r in hub.reports] == [f"sha256:{n:064d}" for n in range(3)]
        assert hub.report_streams == 1
        # The hub restarts under the open stream: the next report goes through on a new one, no error.
        hub.stop()
        hub.start()
        client.report(report.Status(phase=Phase.DEGRADED, digest="sha256:" + "9" * 64, commit="abc"))
        last = hub.last_report()
        assert last is not None and last.applied_digest == "sha256:" + "9" * 64
        assert hub.report_streams == 2
    finally:
        client.close()


def test_a_hub_without_stream_status_gets_one_call_per_report() -> None:
    old_hub = FakeHub(stream_status=False).start()
    client = _registered(old_hub)
    try:
        client.report(report.Status(phase=Phase.READY, digest="sha256:" + "1" * 64, commit="abc"), 2)
        client.report(report.Status(phase=Phase.READY, digest="sha256:" + "2" * 64, commit="abc"))
        assert [(r.applied_digest[-1], r.backlog) for r in old_hub.reports] == [("1", 2), ("2", 0)]
        assert old_hub.report_streams == 0
    finally:
        client.close()
        old_hub.stop()


def test_a_report_the_hub_is_down_for_raises_unavailable(hub: FakeHub) -> None:
    client = _registered(hub)
    try:
        client.report(report.Status(phase=Phase.READY, digest="sha256:" + "1" * 64, commit="abc"))
        hub.stop()
        with pytest.raises(hubclient.HubUnavailable):
            client.report(report.Status(phase=Phase.READY, digest="sha256:" + "2" * 64, commit="abc"))
    finally:
        client.close()
