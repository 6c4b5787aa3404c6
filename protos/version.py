"""The installed Convoy version, one definition for the CLI, the hub and the spoke.

Read from the installed distribution's metadata (whatever its name on the index), so a wheel, an editable
install and a container report what was installed; ``0+unknown`` when running from a bare source tree.
"""

from __future__ import annotations

import functools
from importlib import metadata

__all__ = ["installed"]


@functools.cache
def installed() -> str:
    """``0.1.0``: the version of the distribution that installed the ``protos`` package."""
    for name in metadata.packages_distributions().get("protos", []):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "0+unknown"
