"""Who waits for what, by key: the in-process registry behind a wake-up or a fan-out.

The gateway's live order status hands each order's events to the queues of the subscriptions
watching it; the order service wakes the requests waiting for an order to settle. Both hold
their watchers by order id and must forget an order once its last watcher left, or the registry
would grow with every order ever watched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator
from typing import TypeVar

K = TypeVar("K")
W = TypeVar("W", bound=Hashable)


class Watchers(dict[K, set[W]]):
    """The watchers of each key; a key is present while at least one watcher watches it."""

    @contextlib.contextmanager
    def watching(self, key: K, watcher: W) -> Iterator[W]:
        """`watcher` among the watchers of `key` for the life of the `with` block."""
        self.setdefault(key, set()).add(watcher)
        try:
            yield watcher
        finally:
            group = self.get(key)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self[key]
