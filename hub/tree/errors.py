"""Errors of the rendering pipeline.

Every render failure is a :class:`RenderError` whose ``str()`` is one line that
starts with where the problem is (cluster, app, file, object) and says what is
wrong, so the CLI and the hub can show it as is, per cluster and per app::

    RenderError
    ├── RepoPathError            a path escapes the repository, is absolute, or is missing
    ├── KustomizeError           invalid kustomization or YAML, missing base, cycle, ...
    │   └── UnsupportedFeatureError   outside the native subset and no external tool allowed
    └── LimitError               a bound was exceeded: file size, objects, render time, alias expansion

A message quotes at most a short excerpt of what the commit wrote: every run of
non-blank characters is cut to :data:`EXCERPT_CHARS` and the whole message to
:data:`MAX_MESSAGE_CHARS` (:func:`shorten`), so a 20 MB value in a file can never
make a 20 MB error that the hub then stores, logs and sends to every ``convoy status``.
"""

from __future__ import annotations

import re

__all__ = ["EXCERPT_CHARS", "MAX_MESSAGE_CHARS", "KustomizeError", "LimitError", "RenderError", "RepoPathError",
           "UnsupportedFeatureError", "shorten"]

#: Longest run of non-blank characters (a value, a name, a path) a message quotes.
EXCERPT_CHARS = 200
#: Longest message a :class:`RenderError` keeps.
MAX_MESSAGE_CHARS = 1_000

_LONG_RUN = re.compile(rf"\S{{{EXCERPT_CHARS + 1},}}")


def shorten(text: str, *, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with each run of non-blank characters cut to an excerpt and the whole to ``limit`` characters.

    The end of a long message is kept as well as its start: the explanation often follows the
    quoted value (``'<value>' is not a valid key``).
    """
    if len(text) <= EXCERPT_CHARS:
        return text
    text = _LONG_RUN.sub(lambda match: f"{match.group()[:EXCERPT_CHARS]}…[{len(match.group())} chars]", text)
    if len(text) <= limit:
        return text
    tail = min(200, limit // 4)
    cut = len(text) - (limit - tail)
    return f"{text[:limit - tail]} …[{cut} chars cut]… {text[-tail:]}"


class RenderError(Exception):
    """Base of every rendering error; ``str()`` is one clear line."""

    def __init__(self, message: str, *, file: str | None = None, cluster: str | None = None,
                 app: str | None = None, obj: str | None = None) -> None:
        # Bounded here, where every render error is made: errors are cached, stored and sent on.
        message = shorten(message)
        self.message = message
        self.file = shorten(file, limit=EXCERPT_CHARS) if file else file
        self.cluster = cluster
        self.app = app
        self.obj = shorten(obj, limit=EXCERPT_CHARS) if obj else obj
        super().__init__(message)

    def __str__(self) -> str:
        where = []
        if self.cluster:
            where.append(f"cluster {self.cluster}")
        if self.app:
            where.append(f"app {self.app}")
        if self.file:
            where.append(self.file)
        if self.obj:
            where.append(self.obj)
        # One line whatever the cause said: a multi-line message would break tables and logs.
        text = " ".join(self.message.split())
        return f"{': '.join(where)}: {text}" if where else text


class RepoPathError(RenderError):
    """A path escapes the repository root (``..`` or a symlink), is absolute, a URL, or is missing."""


class KustomizeError(RenderError):
    """An invalid kustomization, invalid YAML, a missing base or component, a cycle, a bad patch."""


class UnsupportedFeatureError(KustomizeError):
    """A feature no engine may build here: outside the native subset with external builds off, or helm or
    plugins the hub's operator did not enable. ``feature`` is the field."""

    def __init__(self, message: str, *, feature: str, file: str | None = None, cluster: str | None = None,
                 app: str | None = None, obj: str | None = None) -> None:
        self.feature = feature
        super().__init__(message, file=file, cluster=cluster, app=app, obj=obj)


class LimitError(RenderError):
    """A bound on what a render may read or make was exceeded; ``setting`` names the hub setting that
    raises the bound (None for a fixed bound)."""

    def __init__(self, message: str, *, setting: str | None, file: str | None = None, cluster: str | None = None,
                 app: str | None = None, obj: str | None = None) -> None:
        self.setting = setting
        self.detail = message  #: the message without the setting's name
        super().__init__(f"{message} ({setting})" if setting else message, file=file, cluster=cluster, app=app,
                         obj=obj)
