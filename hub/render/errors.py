"""Errors of the rendering pipeline.

Every render failure is a :class:`RenderError` whose ``str()`` is one line that
starts with where the problem is (cluster, app, file, object) and says what is
wrong, so the CLI and the hub can show it as is, per cluster and per app::

    RenderError
    ├── RepoPathError            a path escapes the repository, is absolute, or is missing
    └── KustomizeError           invalid kustomization or YAML, missing base, cycle, ...
        └── UnsupportedFeatureError   outside the native subset and no external tool allowed
"""

from __future__ import annotations

__all__ = ["KustomizeError", "RenderError", "RepoPathError", "UnsupportedFeatureError"]


class RenderError(Exception):
    """Base of every rendering error; ``str()`` is one clear line."""

    def __init__(self, message: str, *, file: str | None = None, cluster: str | None = None,
                 app: str | None = None, obj: str | None = None) -> None:
        self.message = message
        self.file = file
        self.cluster = cluster
        self.app = app
        self.obj = obj
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
