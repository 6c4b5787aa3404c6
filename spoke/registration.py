"""Joining the hub: the trust handshake and registration, and keeping the credential the hub rotates to.

A spoke with a stored credential simply presents it (``client``). Without one it spends its
bootstrap token once (``register``): it trusts the hub by ``--hub-ca``, or by the CA fingerprint a
join token pins — ``hubclient.first_contact`` finds that CA in the hub's chain before anything is
sent, so the channel that carries the token trusts that CA alone — then ``Register`` answers with
the cluster's credential, the hub's CA and its bundle signing key, which are stored in the state
Secret before they are used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from protos import sops
from spoke import credentials, hubclient
from spoke.cluster import errors
from spoke.settings import SpokeSettings

__all__ = ["HubFactory", "RegistrationError", "client", "register", "rotate"]

log = logging.getLogger(__name__)

#: Makes a hub client (``hubclient.HubClient`` or a test's stand-in); keyword arguments as its.
HubFactory = Callable[..., hubclient.HubClient]


class RegistrationError(Exception):
    """The spoke has no stored credential and no bootstrap token to get one with."""


def client(settings: SpokeSettings, creds: credentials.Credentials, *, hub_factory: HubFactory,
           address: str | None = None) -> hubclient.HubClient:
    """A hub client that presents the cluster's stored credential and trusts the stored hub CA.

    ``address`` is one of ``settings.hub_addresses`` (default the first): replicas share one CA and
    one database, so the credential works at any of them.
    """
    return hub_factory(address or settings.hub_addresses[0], ca_pem=creds.hub_ca_pem or None,
                       credential=creds.credential, insecure=settings.insecure)


def register(settings: SpokeSettings, *, store: credentials.CredentialStore,
             hub_factory: HubFactory, address: str | None = None) -> credentials.Credentials:
    """Trust the hub, spend the bootstrap token on ``Register``, and store what the hub answers.

    ``address`` is the replica to register at (default the first of ``settings.hub_addresses``).
    """
    s = dataclasses.replace(settings, hub=address or settings.hub_addresses[0])
    if not s.token:
        raise RegistrationError(f"{store.ref}: no stored credential and no bootstrap token; give --token "
                                f"or CONVOY_SPOKE_TOKEN")
    ca_pem: bytes | None = None
    pinned = False
    if not s.insecure:
        if s.hub_ca_file:
            ca_pem = Path(s.hub_ca_file).read_bytes()
        elif s.ca_fingerprint:
            # The pinned CA is found in the hub's chain before anything is sent; the channel that
            # carries the bootstrap token trusts that CA alone.
            ca_pem = hubclient.first_contact(s.hub, s.ca_fingerprint).root_pem
            pinned = True
        else:
            raise hubclient.HubTrustError(s.hub, "no way to trust the hub: give a join token (it carries the "
                                                 "CA fingerprint), --hub-ca, or --insecure")
    # The cluster's age key pair is made here and kept: a spoke that registers again keeps its key,
    # so secrets sealed for it stay readable. Only the public recipient goes to the hub.
    identity = store.load_identity()
    if not identity:
        identity, _ = sops.generate_identity()
        store.save_identity(identity)
    hub = hub_factory(s.hub, ca_pem=ca_pem, insecure=s.insecure)
    try:
        reg = hub.register(token=s.token, cluster=s.cluster, labels=s.labels,
                           age_recipient=sops.recipient_of(identity))
        if len(reg.signing_key) != 32:
            raise hubclient.HubRefused(s.hub, "Register returned no usable bundle signing key")
    finally:
        hub.close()
    # Pinned: keep trusting exactly the CA the join token named, whatever Register says.
    hub_ca = ca_pem if pinned and ca_pem else reg.hub_ca_pem or ca_pem or b""
    creds = credentials.Credentials(cluster=reg.cluster or s.cluster, hub=s.hub, credential=reg.credential,
                                    hub_ca_pem=hub_ca, signing_key=reg.signing_key, age_identity=identity)
    store.save(creds)
    log.info("registered as cluster %s; credential stored in %s", creds.cluster, store.ref)
    return creds


def rotate(hub: hubclient.HubClient, creds: credentials.Credentials, rotation: hubclient.CredentialRotation, *,
           store: credentials.CredentialStore) -> credentials.Credentials | None:
    """Store the credential the hub rotated to, then use it; None if it could not be stored.

    Stored first: a spoke that switched without storing would lose its identity at the next
    restart. When the Secret cannot be written, the spoke keeps the old credential and reconnects
    with it; the hub then hands over another new one (the old one stays valid meanwhile).
    """
    new = dataclasses.replace(creds, credential=rotation.credential)
    try:
        store.save(new)
    except errors.ClusterError as exc:
        log.warning("cannot store the rotated credential in %s: %s; keeping the old one for now", store.ref, exc)
        return None
    hub.with_credential(new.credential)
    log.info("hub rotated the cluster credential; the new one is stored in %s", store.ref)
    return new
