"""Sealed secrets: SOPS documents whose data key is wrapped for age (X25519) recipients.

The format is SOPS's own (https://github.com/getsops/sops), so a file made here opens with
``sops --decrypt`` and one made by ``sops`` opens here:

* every value under a key matching ``encrypted_regex`` becomes
  ``ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<str|int|float|bool>]`` — AES-256-GCM with a
  32-byte IV, the additional data being the value's key path joined by ``:`` plus a trailing ``:``;
* the 32-byte data key is age-encrypted (ASCII armour) once per recipient under ``sops.age``;
* ``sops.mac`` is the upper-case hex SHA-512 of the plaintext values in document order, encrypted
  with the data key and ``sops.lastmodified`` as additional data.

Convoy writes ``mac_only_encrypted: true`` so the MAC covers only the encrypted values: kustomize
transformers (namespace, labels) may then change a sealed Secret's metadata without breaking it.

The MAC depends on the order values are walked in, which is the file's own order, while a bundle
travels as JSON with sorted keys. So the hub records, from the file as written, the walk the MAC
needs (:func:`mac_walk`) in the annotation ``convoy.dev/sealed-mac-walk``, and :func:`open_document`
follows it: the paths of the encrypted values in file order and, for a file whose MAC covers every
value (no ``mac_only_encrypted``, what ``sops`` writes by default), the unencrypted values as written.

Pure: no I/O, nothing logged. Errors never carry a plaintext value.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from protos import bundle as bundles

__all__ = [
    "DEFAULT_ENCRYPTED_REGEX",
    "Identity",
    "SopsError",
    "ciphertext_digest",
    "generate_identity",
    "is_sealed",
    "mac_walk",
    "open_document",
    "parse_recipient",
    "recipient_of",
    "recipients",
    "rewrap",
    "seal",
]

#: What a Kubernetes Secret keeps secret; metadata stays readable so kustomize can still transform it.
DEFAULT_ENCRYPTED_REGEX = "^(data|stringData)$"
#: Written into ``sops.version``: the oldest sops release that understands ``mac_only_encrypted``.
SOPS_VERSION = "3.9.0"

_ENC = re.compile(r"^ENC\[AES256_GCM,data:(?P<data>[^,]*),iv:(?P<iv>[^,]+),"
                  r"tag:(?P<tag>[^,]+),type:(?P<type>[a-z]+)\]\Z")
#: sops starts the MAC of a ``mac_only_encrypted`` file with sha256("sops"), so that it never equals
#: the MAC of the same file without the setting.
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()
_KNOWN_KEY_GROUPS = ("kms", "gcp_kms", "azure_kv", "hc_vault", "pgp", "age", "key_groups")


class SopsError(Exception):
    """A sealed document that cannot be made or opened; the message never contains a plaintext value."""


#: An age identity string (``AGE-SECRET-KEY-1...``); kept as text so it can live in a Secret.
Identity = str


def generate_identity() -> tuple[Identity, str]:
    """A new age X25519 key pair: (private identity, public ``age1...`` recipient)."""
    ident = pyrage.x25519.Identity.generate()
    return str(ident), str(ident.to_public())


def recipient_of(identity: Identity) -> str:
    """The public recipient of an age identity."""
    try:
        return str(pyrage.x25519.Identity.from_str(identity.strip()).to_public())
    except pyrage.IdentityError as exc:
        raise SopsError("not an age identity (expected AGE-SECRET-KEY-1...)") from exc


def parse_recipient(recipient: str) -> pyrage.x25519.Recipient:
    """An ``age1...`` recipient; anything else (an SSH key, a plugin) is refused by name."""
    text = recipient.strip()
    if not text.startswith("age1") or text.startswith("age1pq"):
        raise SopsError(f"unsupported recipient type {text[:12]!r}: only age X25519 recipients (age1...)")
    try:
        return pyrage.x25519.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise SopsError(f"malformed age recipient {text[:12]}...") from exc


def is_sealed(doc: Mapping[str, Any]) -> bool:
    """True for a document carrying SOPS metadata."""
    meta = doc.get("sops")
    return isinstance(meta, Mapping) and "mac" in meta


def recipients(doc: Mapping[str, Any]) -> list[str]:
    """The age recipients a sealed document is wrapped for, in file order."""
    meta = doc.get("sops") or {}
    out: list[str] = []
    for stanza in meta.get("age") or []:
        if isinstance(stanza, Mapping) and stanza.get("recipient"):
            out.append(str(stanza["recipient"]))
    for group in meta.get("key_groups") or []:
        for stanza in (group or {}).get("age") or []:
            if isinstance(stanza, Mapping) and stanza.get("recipient"):
                out.append(str(stanza["recipient"]))
    return out


def ciphertext_digest(doc: Mapping[str, Any]) -> str:
    """A digest of the sealed document (ciphertext and metadata): names a secret version without revealing it."""
    canon = json.dumps(_without_transformable_metadata(doc), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


def seal(doc: Mapping[str, Any], recipient_list: Sequence[str], *,
         encrypted_regex: str = DEFAULT_ENCRYPTED_REGEX, now: dt.datetime | None = None,
         data_key: bytes | None = None, keep_order: bool = False, mac_only_encrypted: bool = True) -> dict[str, Any]:
    """Encrypt ``doc`` for every recipient; returns a new SOPS document (the input is not changed).

    ``keep_order`` and ``mac_only_encrypted=False`` write what the ``sops`` tool writes by default: values
    in the document's own order, and a MAC over every value, the unencrypted ones included.
    """
    if is_sealed(doc):
        raise SopsError("already sealed (it has sops metadata); use refresh to change its recipients")
    if not recipient_list:
        raise SopsError("no recipients to seal for")
    parsed = [parse_recipient(r) for r in recipient_list]
    key = data_key if data_key is not None else os.urandom(32)
    pattern = re.compile(encrypted_regex)
    # Keys sorted by default: bundles travel as sorted JSON and the MAC covers values in document order,
    # so such a file opens even where the hub could not record its MAC walk (no source file found).
    body = copy.deepcopy(dict(doc)) if keep_order else _sorted(copy.deepcopy(dict(doc)))
    digest = hashlib.sha512(_MAC_ONLY_ENCRYPTED_INIT if mac_only_encrypted else b"")
    matched = False

    def enc(value: Any, path: list[str]) -> Any:
        nonlocal matched
        if not any(pattern.search(p) for p in path):
            if not mac_only_encrypted:
                digest.update(_to_bytes(value))
            return value
        matched = True
        digest.update(_to_bytes(value))
        if value == "":
            return value  # sops leaves empty strings as they are (there is nothing to hide)
        return _encrypt_value(value, key, ":".join(path) + ":")

    sealed_body: dict[str, Any] = _walk(body, [], enc)
    if not matched:
        raise SopsError(f"nothing to encrypt: no key matches {encrypted_regex}")
    stamp = _rfc3339(now or dt.datetime.now(dt.UTC))
    mac = _encrypt_value(digest.hexdigest().upper(), key, stamp)
    sealed_body["sops"] = {
        "age": [_wrap(key, r, text) for r, text in zip(parsed, recipient_list, strict=True)],
        "lastmodified": stamp,
        "mac": mac,
        "encrypted_regex": encrypted_regex,
        **({"mac_only_encrypted": True} if mac_only_encrypted else {}),
        "version": SOPS_VERSION,
    }
    return sealed_body


def mac_walk(doc: Mapping[str, Any]) -> list[Any]:
    """The walk the MAC of ``doc`` (as written, in its own order) takes, for :func:`open_document`.

    One entry per value the MAC covers, in order: the value's location (keys and list indices) for an
    encrypted value, which is read back from the sealed object; ``{"path": location, "value": value}``
    for an unencrypted one (only when the MAC covers every value), which kustomize may have changed.
    No entry carries a secret: encrypted values are named by location only.
    """
    meta = doc.get("sops") or {}
    encrypted = _encrypted_test(meta)
    mac_only_encrypted = bool(meta.get("mac_only_encrypted"))
    walk: list[Any] = []
    for keys, location, value in _leaves(doc):
        if encrypted(keys):
            walk.append(location)
        elif not mac_only_encrypted:
            walk.append({"path": location, "value": value})
    return walk


def open_document(doc: Mapping[str, Any], identities: Sequence[Identity]) -> dict[str, Any]:
    """Decrypt a sealed document with one of ``identities``, verify its MAC, and drop the metadata.

    When the hub recorded the file's MAC walk (annotation ``convoy.dev/sealed-mac-walk``), the MAC is
    computed along it; else in the document's own order.
    """
    key = _data_key(doc, identities)
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    recorded = annotations.get(bundles.ANNOTATION_SEALED_MAC_WALK) if isinstance(annotations, Mapping) else None
    walk: list[Any] | None = None
    if recorded is not None:
        try:
            walk = json.loads(str(recorded))
        except ValueError:
            raise SopsError(f"annotation {bundles.ANNOTATION_SEALED_MAC_WALK} is not JSON") from None
    return _decrypt_with(doc, key, walk)


def rewrap(doc: Mapping[str, Any], identities: Sequence[Identity], recipient_list: Sequence[str], *,
           now: dt.datetime | None = None) -> dict[str, Any]:
    """Re-seal for ``recipient_list`` with a fresh data key (after checking the MAC with the old one)."""
    plain = open_document(doc, identities)
    meta = doc.get("sops") or {}
    regex = str(meta.get("encrypted_regex") or DEFAULT_ENCRYPTED_REGEX)
    return seal(plain, recipient_list, encrypted_regex=regex, now=now)


# --- internals ------------------------------------------------------------------------------------

def _without_transformable_metadata(doc: Mapping[str, Any]) -> dict[str, Any]:
    # The digest names the secret version; the hub's namespace/label transformers must not change it.
    return {k: v for k, v in doc.items() if k not in ("metadata",)}


def _sorted(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _sorted(node[k]) for k in sorted(node, key=str)}
    if isinstance(node, list):
        return [_sorted(v) for v in node]
    return node


def _rfc3339(moment: dt.datetime) -> str:
    # Go's time.RFC3339 for a UTC time without sub-seconds: what sops writes and re-formats identically.
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


_Leaf = tuple[list[str], list[str | int], Any]


def _leaves(doc: Mapping[str, Any]) -> Iterator[_Leaf]:
    """``(sops key path, location, value)`` of each scalar in document order (``sops`` left out)."""
    def visit(node: Any, keys: list[str], location: list[str | int]) -> Iterator[_Leaf]:
        if isinstance(node, Mapping):
            for k, v in node.items():
                yield from visit(v, [*keys, str(k)], [*location, str(k)])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from visit(v, keys, [*location, i])
        else:
            yield keys, location, node
    for k, v in doc.items():
        if k != "sops":
            yield from visit(v, [str(k)], [str(k)])


def _at(node: Any, location: Sequence[Any]) -> Any:
    for step in location:
        in_mapping = isinstance(step, str) and isinstance(node, Mapping) and step in node
        in_list = (isinstance(step, int) and not isinstance(step, bool) and isinstance(node, list)
                   and 0 <= step < len(node))
        if in_mapping or in_list:
            node = node[step]
        else:
            raise KeyError(step)
    return node


def _walk(node: Any, path: list[str], leaf: Any) -> Any:
    """Map ``leaf(value, path)`` over scalars in document order; list items share their parent's path (as sops)."""
    if isinstance(node, Mapping):
        return {k: (v if (not path and k == "sops") else _walk(v, [*path, str(k)], leaf)) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, path, leaf) for v in node]
    return leaf(node, path)


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        # Go's strconv.FormatFloat(v, 'f', -1, 64): shortest round-trip digits, never an exponent.
        return format(decimal.Decimal(repr(value)), "f").encode()
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _encrypt_value(value: Any, key: bytes, aad: str) -> str:
    iv = os.urandom(32)
    out = AESGCM(key).encrypt(iv, _to_bytes(value), aad.encode("utf-8"))
    data, tag = out[:-16], out[-16:]
    b64 = base64.b64encode
    return (f"ENC[AES256_GCM,data:{b64(data).decode()},iv:{b64(iv).decode()},"
            f"tag:{b64(tag).decode()},type:{_type_of(value)}]")


def _decrypt_value(text: str, key: bytes, aad: str, where: str) -> Any:
    m = _ENC.match(text)
    if m is None:
        raise SopsError(f"{where}: not a SOPS AES256_GCM value")
    try:
        data, iv, tag = (base64.b64decode(m[g], validate=True) for g in ("data", "iv", "tag"))
        plain = AESGCM(key).decrypt(iv, data + tag, aad.encode("utf-8"))
    except (ValueError, InvalidTag) as exc:
        raise SopsError(f"{where}: value does not decrypt (tampered or truncated ciphertext)") from exc
    raw = plain.decode("utf-8")
    kind = m["type"]
    if kind == "str" or kind == "bytes":
        return raw
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        return raw.lower() == "true"
    raise SopsError(f"{where}: unknown value type {kind!r}")


def _wrap(key: bytes, recipient: pyrage.x25519.Recipient, text: str) -> dict[str, str]:
    armored = pyrage.encrypt(key, [recipient], armored=True)
    return {"recipient": text.strip(), "enc": armored.decode("ascii")}


def _stanzas(meta: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from meta.get("age") or []
    for group in meta.get("key_groups") or []:
        yield from (group or {}).get("age") or []


def _data_key(doc: Mapping[str, Any], identities: Sequence[Identity]) -> bytes:
    meta = doc.get("sops")
    if not isinstance(meta, Mapping) or "mac" not in meta:
        raise SopsError("not sealed: no sops metadata")
    stanzas = list(_stanzas(meta))
    if not stanzas:
        others = [k for k in _KNOWN_KEY_GROUPS if meta.get(k)]
        raise SopsError(f"no age recipients (key types here: {', '.join(others) or 'none'}); "
                        f"Convoy opens age-sealed files only")
    try:
        idents = [pyrage.x25519.Identity.from_str(i.strip()) for i in identities]
    except pyrage.IdentityError as exc:
        raise SopsError("the private key is not an age identity") from exc
    mine = {str(i.to_public()) for i in idents}
    # Try the stanza addressed to us first: a stanza for someone else fails slowly and says nothing.
    ordered = sorted(stanzas, key=lambda s: str(s.get("recipient", "")).strip() not in mine)
    if not any(str(s.get("recipient", "")).strip() in mine for s in stanzas):
        raise SopsError(f"not sealed for this key ({', '.join(sorted(mine))}); recipients are "
                        f"{', '.join(str(s.get('recipient', '?')) for s in stanzas)}")
    last: Exception | None = None
    for stanza in ordered:
        enc = str(stanza.get("enc", "")).encode("ascii", errors="replace")
        try:
            key = pyrage.decrypt(enc, idents)
        except pyrage.DecryptError as exc:
            last = exc
            continue
        if len(key) != 32:
            raise SopsError("the wrapped data key is not 32 bytes")
        return key
    raise SopsError("the data key does not decrypt with this key (wrong key or truncated age stanza)") from last


def _encrypted_test(meta: Mapping[str, Any]) -> Any:
    """Whether a value at a key path is encrypted, by the file's ``encrypted_regex``/suffix settings (as sops)."""
    regex = meta.get("encrypted_regex")
    unencrypted_suffix = meta.get("unencrypted_suffix")
    if unencrypted_suffix is None and not regex and not meta.get("encrypted_suffix"):
        unencrypted_suffix = "_unencrypted"  # sops's default when nothing is configured
    encrypted_suffix = meta.get("encrypted_suffix")
    pattern = re.compile(str(regex)) if regex else None

    def encrypted(path: list[str]) -> bool:
        if pattern is not None:
            return any(pattern.search(p) for p in path)
        if encrypted_suffix:
            return any(p.endswith(str(encrypted_suffix)) for p in path)
        return not any(p.endswith(str(unencrypted_suffix)) for p in path)
    return encrypted


def _walked_digest(plain: Mapping[str, Any], sealed_locations: list[list[str | int]], walk: Any,
                   digest: Any, *, encrypted: Any, mac_only_encrypted: bool) -> None:
    """Feed ``digest`` along a recorded MAC walk; the sealed values must be exactly the walk's encrypted ones."""
    malformed = SopsError(f"annotation {bundles.ANNOTATION_SEALED_MAC_WALK} is malformed")
    if not isinstance(walk, list):
        raise malformed
    walked: list[str] = []
    for entry in walk:
        location = entry.get("path") if isinstance(entry, Mapping) else entry
        if not isinstance(location, list) or not all(isinstance(s, (str, int)) for s in location):
            raise malformed
        if isinstance(entry, Mapping):
            # A value stated in the walk must be one the file left unencrypted: an encrypted one always
            # comes from the sealed object, so it cannot be dropped and stood in for by a guess.
            if mac_only_encrypted or encrypted([str(s) for s in location if isinstance(s, str)]):
                raise malformed
            digest.update(_to_bytes(entry.get("value")))
            continue
        walked.append(json.dumps(location))
        try:
            digest.update(_to_bytes(_at(plain, location)))
        except KeyError:
            raise SopsError("MAC does not verify (an encrypted value of the file is missing)") from None
    if sorted(walked) != sorted(json.dumps(loc) for loc in sealed_locations):
        raise SopsError("MAC does not verify (the encrypted values differ from the file's)")


def _decrypt_with(doc: Mapping[str, Any], key: bytes, walk: Any = None) -> dict[str, Any]:
    meta = doc["sops"]
    encrypted = _encrypted_test(meta)
    mac_only_encrypted = bool(meta.get("mac_only_encrypted"))
    digest = hashlib.sha512(_MAC_ONLY_ENCRYPTED_INIT if mac_only_encrypted else b"")

    def dec(value: Any, path: list[str]) -> Any:
        is_enc = encrypted(path)
        out = _decrypt_value(str(value), key, ":".join(path) + ":", "/".join(path)) \
            if is_enc and isinstance(value, str) and value.startswith("ENC[") else value
        if walk is None and (is_enc or not mac_only_encrypted):
            digest.update(_to_bytes(out))
        return out

    plain: dict[str, Any] = _walk({k: v for k, v in doc.items() if k != "sops"}, [], dec)
    if walk is not None:
        _walked_digest(plain, [loc for keys, loc, _ in _leaves(doc) if encrypted(keys)], walk, digest,
                       encrypted=encrypted, mac_only_encrypted=mac_only_encrypted)
    stamp = str(meta.get("lastmodified", ""))
    if isinstance(meta.get("lastmodified"), dt.datetime):
        stamp = _rfc3339(meta["lastmodified"])
    try:
        want = _decrypt_value(str(meta["mac"]), key, stamp, "sops.mac")
    except SopsError as exc:
        raise SopsError("MAC does not verify (the file was changed after sealing)") from exc
    if str(want).upper() != digest.hexdigest().upper():
        raise SopsError("MAC does not verify (the file was changed after sealing)")
    return plain
