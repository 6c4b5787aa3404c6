"""What registration gives the spoke, kept in a Secret in its namespace so a restart does not register again.

The Secret (``SpokeSettings.state_secret``) holds the cluster's own credential, the hub CA PEM
(empty when the hub is plaintext), the raw Ed25519 public key that verifies bundles and the
cluster's age identity that opens sealed secrets (made here, never sent anywhere: the hub gets only
its public recipient). Nothing here is ever logged.

A damaged Secret (edited by hand, restored from a bad backup) never stops the process: ``load``
returns what is usable and names what is not in ``Credentials.problems``, each with what to do. A
credential that is not UTF-8 text is dropped (the spoke registers again with its token) while the
signing key, if sound, still verifies the in-cluster copy of the last bundle.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from protos import bundle as bundles
from protos.objects import ObjectRef
from spoke.cluster import ClusterClient

__all__ = ["CredentialStore", "Credentials", "retire_previous_age_key"]

MANAGER = "convoy"
_REREGISTER = ("to repair: delete the Secret and restart the spoke with a new bootstrap token "
               "(`convoy token create --cluster NAME`), or let it register again with the token it was given")


@dataclasses.dataclass(frozen=True)
class Credentials:
    cluster: str
    hub: str
    credential: str = dataclasses.field(repr=False)
    hub_ca_pem: bytes = b""
    signing_key: bytes = b""
    problems: tuple[str, ...] = ()   #: what is wrong with the stored state, and what to do about it
    #: The cluster's private age identity (AGE-SECRET-KEY-1...); "" for state stored before sealed secrets.
    age_identity: str = dataclasses.field(default="", repr=False)
    #: The identity it replaced at the hub's request (``convoy keys rotate``), kept so that files not yet
    #: re-sealed for the new one still open; "" when the key was never rotated.
    age_identity_previous: str = dataclasses.field(default="", repr=False)
    #: When the previous identity was replaced; it is dropped a grace period later (retire_previous_age_key).
    age_identity_previous_since: dt.datetime | None = None


def retire_previous_age_key(creds: Credentials, *, now: dt.datetime, grace: dt.timedelta) -> Credentials | None:
    """``creds`` to store when the previous age key's state must change, else None.

    The previous key is dropped once it was replaced ``grace`` ago: by then files are re-sealed, and a
    key kept for ever would open, years later, whatever was sealed for it. A previous key stored
    without its time (by a spoke before this bound existed) starts its grace now.
    """
    if not creds.age_identity_previous:
        return None
    since = creds.age_identity_previous_since
    if since is None:
        return dataclasses.replace(creds, age_identity_previous_since=now)
    if now - since >= grace:
        return dataclasses.replace(creds, age_identity_previous="", age_identity_previous_since=None)
    return None


def _since(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None  # damaged: the grace starts again (retire_previous_age_key), the key is not lost early
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class CredentialStore:
    def __init__(self, client: ClusterClient, *, namespace: str, name: str) -> None:
        self._client = client
        self._namespace = namespace
        self._name = name

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(group="", kind="Secret", namespace=self._namespace, name=self._name)

    def load(self) -> Credentials | None:
        """The stored credentials; None when there are none. Damage is named in ``problems``, not raised."""
        live = self._client.get("v1", "Secret", self._namespace, self._name)
        if live is None:
            return None
        data: dict[str, bytes] = {}
        problems: list[str] = []
        for key, value in (live.get("data") or {}).items():
            try:
                data[key] = base64.b64decode(value, validate=True)
            except (ValueError, TypeError):
                problems.append(f"{self.ref}: key {key!r} is not base64")
        texts: dict[str, str] = {}
        for key in ("cluster", "hub", "credential", "age-identity", "age-identity-previous",
                    "age-identity-previous-since"):
            try:
                texts[key] = data.get(key, b"").decode()
            except UnicodeDecodeError:
                texts[key] = ""
                problems.append(f"{self.ref}: key {key!r} is not UTF-8 text")
        key = data.get("signing-key", b"")
        if key and len(key) != 32:
            problems.append(f"{self.ref}: the hub's signing key is {len(key)} bytes, not a 32-byte Ed25519 key; "
                            "bundles cannot be verified")
        if not texts["credential"] and not key:
            return None if not problems else Credentials(cluster=texts["cluster"], hub=texts["hub"], credential="",
                                                         age_identity=texts["age-identity"],
                                                         problems=(*problems, _REREGISTER))
        if problems:
            problems.append(_REREGISTER)
        return Credentials(cluster=texts["cluster"], hub=texts["hub"], credential=texts["credential"],
                           hub_ca_pem=data.get("hub-ca.pem", b""), signing_key=key,
                           age_identity=texts["age-identity"], age_identity_previous=texts["age-identity-previous"],
                           age_identity_previous_since=_since(texts["age-identity-previous-since"]),
                           problems=tuple(problems))

    def load_identity(self) -> str:
        """The age identity kept in the Secret, even when there is no credential yet ("" if none)."""
        live = self._client.get("v1", "Secret", self._namespace, self._name)
        raw = ((live or {}).get("data") or {}).get("age-identity")
        try:
            return base64.b64decode(raw, validate=True).decode() if raw else ""
        except (ValueError, TypeError, UnicodeDecodeError):
            return ""  # damaged: `load` names it; a new identity is made only where none is stored

    def save(self, creds: Credentials) -> None:
        raw = {"cluster": creds.cluster.encode(), "hub": creds.hub.encode(),
               "credential": creds.credential.encode(), "hub-ca.pem": creds.hub_ca_pem,
               "signing-key": creds.signing_key, "age-identity": creds.age_identity.encode()}
        if creds.age_identity_previous:
            raw["age-identity-previous"] = creds.age_identity_previous.encode()
            if creds.age_identity_previous_since is not None:
                raw["age-identity-previous-since"] = creds.age_identity_previous_since.isoformat().encode()
        data = {k: base64.b64encode(v).decode("ascii") for k, v in raw.items()}

        def mutate(live: dict[str, Any] | None) -> dict[str, Any]:
            obj = live or {"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": self._name, "namespace": self._namespace}}
            obj.setdefault("metadata", {}).setdefault("labels", {})[bundles.LABEL_MANAGED_BY] = "convoy-spoke"
            obj["type"] = "Opaque"
            kept = (obj.get("data") or {}).get("age-identity")
            if not creds.age_identity and kept:
                data["age-identity"] = kept  # never drop the cluster's key: sealed secrets need it
                for key in ("age-identity-previous", "age-identity-previous-since"):
                    previous = (obj.get("data") or {}).get(key)
                    if previous:
                        data[key] = previous
            obj["data"] = data
            obj.pop("stringData", None)
            return obj

        self._client.update_with("v1", "Secret", self._namespace, self._name, mutate, manager=MANAGER)

    def save_identity(self, identity: str) -> None:
        """Keep a new age identity in the Secret (before its recipient is sent anywhere), nothing else changed."""
        encoded = base64.b64encode(identity.encode()).decode("ascii")

        def mutate(live: dict[str, Any] | None) -> dict[str, Any]:
            obj = live or {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                           "metadata": {"name": self._name, "namespace": self._namespace}}
            obj.setdefault("metadata", {}).setdefault("labels", {})[bundles.LABEL_MANAGED_BY] = "convoy-spoke"
            obj.setdefault("data", {})["age-identity"] = encoded
            return obj

        self._client.update_with("v1", "Secret", self._namespace, self._name, mutate, manager=MANAGER)
