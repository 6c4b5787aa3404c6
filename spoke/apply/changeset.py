"""Results of apply and prune as values: one ``ChangeSetEntry`` per object, collected in a ``ChangeSet``.

The action says what happened (``protos.status.Action``): ``skipped`` is a rule's choice (a
``convoy.dev/ssa`` annotation, an object Convoy does not own), ``waiting`` an object not applied
yet because its app waits for the apps it depends on; the message says which and why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from protos.objects import ObjectRef
from protos.status import Action

__all__ = ["ChangeSet", "ChangeSetEntry"]


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeSetEntry:
    """What happened to one object; ``message`` explains skips and carries the API's error text."""

    ref: ObjectRef
    action: Action
    message: str = ""
    app: str = ""

    def __str__(self) -> str:
        return f"{self.ref} {self.action}" + (f": {self.message}" if self.message else "")


@dataclasses.dataclass
class ChangeSet:
    """Entries in the order the work was done; the last entry for a ref is its current state."""

    entries: list[ChangeSetEntry] = dataclasses.field(default_factory=list)

    def add(self, entry: ChangeSetEntry) -> None:
        self.entries.append(entry)

    def extend(self, entries: Iterable[ChangeSetEntry]) -> None:
        self.entries.extend(entries)

    def __iter__(self) -> Iterator[ChangeSetEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def by_ref(self) -> dict[ObjectRef, ChangeSetEntry]:
        return {entry.ref: entry for entry in self.entries}

    def with_action(self, *actions: Action) -> list[ChangeSetEntry]:
        return [entry for entry in self.entries if entry.action in actions]

    @property
    def failed(self) -> list[ChangeSetEntry]:
        return self.with_action(Action.FAILED)

    @property
    def changed(self) -> bool:
        """True when anything was written (created, configured or pruned)."""
        return bool(self.with_action(Action.CREATED, Action.CONFIGURED, Action.PRUNED))
