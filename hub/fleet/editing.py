"""Small edits of fleet.yaml and kustomization.yaml text that keep the author's comments and layout.

Pure: text in, text out. ``convoy drift adopt`` uses it to wire a new cluster layer or overlay into
fleet.yaml and to add patches to a Component. A YAML round trip through PyYAML would drop every
comment and reorder nothing we asked it to, so these are line edits: each finds the block it
changes by indentation and inserts lines at its end, and the caller re-parses the result (the
render that verifies an adoption loads both files).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["EditError", "add_app_field", "add_app_overlay", "add_patches", "new_component"]


class EditError(Exception):
    """The text is not laid out in a way these edits understand; the message says where."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the last content line of the block that begins at ``start`` (deeper than ``indent``)."""
    last = start
    for i in range(start + 1, len(lines)):
        if _blank(lines[i]):
            continue
        if _indent(lines[i]) <= indent:
            break
        last = i
    return last + 1


def _app_entry(lines: list[str], app: str, where: str) -> tuple[int, int, int]:
    """(first line, end, indent of the entry's keys) of ``- name: <app>`` under ``apps:``."""
    pattern = re.compile(r"( *)- +name: *[\"']?" + re.escape(app) + r"[\"']? *(#.*)?")
    for i, line in enumerate(lines):
        match = pattern.fullmatch(line)
        if match:
            dash = len(match.group(1))
            return i, _block_end(lines, i, dash), line.index("name:")
    raise EditError(f"{where}: no block entry `- name: {app}` found (an app written in flow style "
                    "cannot be edited in place; add the field by hand)")


def add_app_field(text: str, app: str, key: str, value: str, *, where: str = "fleet.yaml") -> str:
    """``text`` with ``key: value`` added as the last field of app ``app``."""
    lines = text.splitlines()
    _, end, indent = _app_entry(lines, app, where)
    lines.insert(end, " " * indent + f"{key}: {value}")
    return "\n".join(lines) + "\n"


def add_app_overlay(text: str, app: str, selector: str, path: str, *, where: str = "fleet.yaml") -> str:
    """``text`` with ``{selector: "<selector>", path: <path>}`` appended to app ``app``'s overlays."""
    lines = text.splitlines()
    first, end, indent = _app_entry(lines, app, where)
    item = "{selector: " + yaml.safe_dump(selector, default_style='"').strip() + f", path: {path}}}"
    for i in range(first, end):
        if re.fullmatch(" " * indent + r"overlays: *(#.*)?", lines[i]):
            list_end = _block_end(lines, i, indent)
            dash = next((_indent(lines[j]) for j in range(i + 1, list_end) if lines[j].lstrip().startswith("- ")),
                        indent + 2)
            lines.insert(list_end, " " * dash + f"- {item}")
            return "\n".join(lines) + "\n"
        if re.fullmatch(" " * indent + r"overlays:.*", lines[i]):
            raise EditError(f"{where}: app {app}'s overlays are written in flow style; add "
                            f"{item} to them by hand")
    lines.insert(end, " " * indent + "overlays:")
    lines.insert(end + 1, " " * (indent + 2) + f"- {item}")
    return "\n".join(lines) + "\n"


def _entry_lines(entry: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    out = []
    if "target" in entry:
        target = yaml.safe_dump(dict(entry["target"]), default_flow_style=True, sort_keys=False, width=1000).strip()
        out.append(f"{pad}- target: {target}")
        out.append(f"{pad}  patch: |-")
    else:
        out.append(f"{pad}- patch: |-")
    out.extend(f"{pad}    {line}" for line in str(entry["patch"]).splitlines())
    return out


def new_component(entries: list[dict[str, Any]], *, comment: str) -> str:
    """A kustomize Component whose ``patches:`` are ``entries`` (``{target, patch}``)."""
    lines = [f"# {line}" if line else "#" for line in comment.splitlines()]
    lines += ["apiVersion: kustomize.config.k8s.io/v1alpha1", "kind: Component", "patches:"]
    for entry in entries:
        lines.extend(_entry_lines(entry, 2))
    return "\n".join(lines) + "\n"


def add_patches(text: str, entries: list[dict[str, Any]], *, where: str) -> str:
    """``text`` (a kustomization) with ``entries`` appended to its ``patches:`` (added when missing)."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise EditError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(document, dict):
        raise EditError(f"{where}: not a kustomization (a mapping)")
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"patches: *(#.*)?", line):
            end = _block_end(lines, i, 0)
            dash = next((_indent(lines[j]) for j in range(i + 1, end) if lines[j].lstrip().startswith("- ")), 2)
            new = [row for entry in entries for row in _entry_lines(entry, dash)]
            return "\n".join([*lines[:end], *new, *lines[end:]]) + "\n"
        if re.fullmatch(r"patches:.*", line):
            raise EditError(f"{where}: `patches:` is written in flow style; add the patches by hand")
    new = ["patches:", *(row for entry in entries for row in _entry_lines(entry, 2))]
    return "\n".join([*lines, *new]) + "\n"
