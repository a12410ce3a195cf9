"""One small registry type, used once per extension point.

A registry maps a name to an entry (usually a factory that imports its dependency lazily).
Looking up an unknown name raises a SpecError that lists the valid names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from hpo.errors import SpecError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} `{name}` is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def add(self, name: str, entry: T) -> None:
        self.register(name)(entry)

    def get(self, name: str, field: str | None = None) -> T:
        if name not in self._entries:
            raise SpecError(unknown_name(self.kind, name, self._entries), field=field or self.kind)
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
