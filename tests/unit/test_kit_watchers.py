"""servicekit.watchers: watchers held by key, and a key forgotten when its last watcher leaves."""

from __future__ import annotations

from servicekit.watchers import Watchers


def test_a_key_is_held_while_a_watcher_watches_it_and_forgotten_after_the_last():
    watchers: Watchers[str, str] = Watchers()
    with watchers.watching("order-1", "a") as first:
        assert first == "a"
        with watchers.watching("order-1", "b"):
            assert watchers == {"order-1": {"a", "b"}}
        assert watchers == {"order-1": {"a"}}
    assert watchers == {}


def test_a_watcher_leaves_even_when_its_block_fails():
    watchers: Watchers[str, str] = Watchers()
    try:
        with watchers.watching("order-1", "a"):
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    assert watchers == {}
