"""``configMapGenerator`` / ``secretGenerator`` and kustomize's content hash suffix.

The hash must be kustomize's, byte for byte (``api/hasher/hasher.go``): the
sha256 of Go's ``json.Marshal`` of ``{"data", "kind", "name"[, "binaryData"]}``
(Secrets: ``{"data", "kind", "name", "type"[, "stringData"]}``), keys sorted,
the first ten hex digits with 0,1,3,a,e mapped to g,h,k,m,t.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Callable
from typing import Any

from hub.render.kustomize.kustomization import Kustomization
from hub.render.kustomize.resources import Resource
from hub.tree import repofs
from hub.tree.errors import KustomizeError

__all__ = ["generate", "hash_suffix", "kustomize_hash"]

_HASH_MAP = str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"})
_KEY_RE = re.compile(r"[-._a-zA-Z0-9]+")


def _go_json(value: Any) -> str:
    """``encoding/json.Marshal``: sorted keys, no spaces, HTML-safe escapes, UTF-8 kept."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def hash_suffix(encoded: str) -> str:
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10].translate(_HASH_MAP)


def _map_or_empty(value: Any) -> Any:
    # hasher.getNodeValues: a missing field hashes as "", a present map as the map.
    if value is None:
        return ""
    return value


def kustomize_hash(obj: dict[str, Any]) -> str:
    """The name suffix kustomize gives a generated ConfigMap or Secret with this content."""
    # kustomize looks the name up with yaml.Lookup("metadata/name"), which reads a top-level field
    # literally named "metadata/name": in practice the name hashes as "". Reproduce that, not the intent.
    name = _map_or_empty(obj.get("metadata/name"))
    if obj.get("kind") == "ConfigMap":
        encoded: dict[str, Any] = {"kind": "ConfigMap", "name": name, "data": _map_or_empty(obj.get("data"))}
        if isinstance(obj.get("binaryData"), dict):
            encoded["binaryData"] = obj["binaryData"]
    elif obj.get("kind") == "Secret":
        encoded = {"kind": "Secret", "type": obj.get("type") or "", "name": name,
                   "data": _map_or_empty(obj.get("data"))}
        if isinstance(obj.get("stringData"), dict):
            encoded["stringData"] = obj["stringData"]
    else:
        encoded = obj
    return hash_suffix(_go_json(encoded))


def encode_base64(value: bytes) -> str:
    """kyaml's ``encodeBase64``: over 70 characters, every 70-character line ends with a newline."""
    encoded = base64.b64encode(value).decode("ascii")
    if len(encoded) // 70 + 1 == 1:
        return encoded
    return "".join(encoded[i:i + 70] + "\n" for i in range(0, len(encoded), 70))


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _load(fs: repofs.RepoFS, k: Kustomization, path: str, *, restrict: bool) -> bytes:
    full = repofs.normalize(path, base=k.directory, file=k.file)
    if restrict and k.directory and not (full == k.directory or full.startswith(k.directory + "/")):
        raise KustomizeError(f"{path!r} is outside the kustomization directory (load restrictor RootOnly)",
                             file=k.file)
    if not fs.is_file(full):
        raise KustomizeError(f"generator source {path!r} does not exist", file=k.file)
    return fs.read_bytes(full)


def _pairs(fs: repofs.RepoFS, k: Kustomization, args: dict[str, Any], *, restrict: bool) -> list[tuple[str, bytes]]:
    pairs: list[tuple[str, bytes]] = []
    envs = list(args.get("envs") or [])
    if args.get("env"):
        envs.append(args["env"])
    for env in envs:
        content = _load(fs, k, str(env), restrict=restrict)
        for number, raw_line in enumerate(content.split(b"\n")):
            line_bytes = raw_line[:-1] if raw_line.endswith(b"\r") else raw_line
            try:
                line = line_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise KustomizeError(f"env file {env!r} line {number + 1} is not UTF-8", file=k.file) from exc
            if number == 0:
                line = line.removeprefix("\ufeff")
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            # kustomize v5.5 (api/kv): any text before the first "=" is the key (kubectl's validator
            # accepts every name), a line without "=" has the empty value (older releases read the build
            # process's environment: never done here), and a line with an empty key is skipped.
            key, _, value = line.partition("=")
            if key:
                pairs.append((key, value.encode("utf-8")))
    for literal in args.get("literals") or []:
        key, sep, value = literal.partition("=")
        if not sep or not key:
            raise KustomizeError(f"invalid literal source {literal!r}, expected key=value", file=k.file)
        pairs.append((key, _strip_quotes(value).encode("utf-8")))
    for source in args.get("files") or []:
        if source.count("=") == 0:
            key, path = posixpath.basename(source), source
        elif source.count("=") == 1 and not source.startswith("=") and not source.endswith("="):
            key, path = source.split("=")
        else:
            raise KustomizeError(f"invalid file source {source!r}, expected [key=]path", file=k.file)
        pairs.append((key, _load(fs, k, path, restrict=restrict)))
    return pairs


def _options(k: Kustomization, args: dict[str, Any]) -> dict[str, Any]:
    # types.MergeGlobalOptionsIntoLocal: global labels/annotations under local ones, flags OR-ed.
    glob = k.generator_options
    local = args.get("options") or {}
    merged: dict[str, Any] = {
        "labels": {**(glob.get("labels") or {}), **(local.get("labels") or {})},
        "annotations": {**(glob.get("annotations") or {}), **(local.get("annotations") or {})},
        "disableNameSuffixHash": bool(glob.get("disableNameSuffixHash") or local.get("disableNameSuffixHash")),
        "immutable": bool(glob.get("immutable") or local.get("immutable")),
    }
    return merged


def _generate_one(fs: repofs.RepoFS, k: Kustomization, args: dict[str, Any], kind: str, *,
                  restrict: bool, warn: Callable[[str], None]) -> Resource:
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise KustomizeError(f"a {kind} generator needs a name", file=k.file)
    behavior = str(args.get("behavior") or "create")
    if behavior not in {"create", "merge", "replace"}:
        # kustomize's NewGenerationBehavior: anything else is "unspecified", which acts as create (and so
        # still fails if the object already exists: a misspelt merge cannot silently replace a base's data).
        behavior = "create"
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    seen: set[str] = set()
    for key, value in _pairs(fs, k, args, restrict=restrict):
        if not _KEY_RE.fullmatch(key):
            # kustomize builds it; the API server then refuses the object: say so now, at build time.
            warn(f"{k.file}: {kind} {name}: {key!r} is not a valid {kind} key (letters, digits, '-', '_', '.'); "
                 "the API server will refuse it")
        if key in seen:
            raise KustomizeError(f"{kind.lower()} {name} illegally repeats the key {key!r}", file=k.file)
        seen.add(key)
        if kind == "Secret":
            data[key] = encode_base64(value)
            continue
        try:
            data[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            binary[key] = encode_base64(value)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    if args.get("namespace"):
        obj["metadata"]["namespace"] = str(args["namespace"])
    if kind == "Secret":
        obj["type"] = str(args.get("type") or "Opaque")
    if data or kind == "Secret":  # kyaml creates a Secret's data map even when it stays empty
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    options = _options(k, args)
    if options["labels"]:
        obj["metadata"]["labels"] = dict(options["labels"])
    if options["annotations"]:
        obj["metadata"]["annotations"] = dict(options["annotations"])
    if options["immutable"]:
        obj["immutable"] = True
    return Resource(obj=obj, source=k.file, needs_hash=not options["disableNameSuffixHash"], behavior=behavior)


def _ignore(message: str) -> None:
    pass


def generate(fs: repofs.RepoFS, k: Kustomization, *, restrict: bool,
             warn: Callable[[str], None] = _ignore) -> list[Resource]:
    """The ConfigMaps then Secrets a kustomization generates, in its order; ``warn`` hears what kustomize
    builds but a cluster will refuse."""
    generated = [_generate_one(fs, k, args, "ConfigMap", restrict=restrict, warn=warn)
                 for args in k.config_map_generator]
    generated += [_generate_one(fs, k, args, "Secret", restrict=restrict, warn=warn) for args in k.secret_generator]
    return generated
