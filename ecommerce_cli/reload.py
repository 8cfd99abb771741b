"""`ecommerce dev --reload`: restart only the processes whose code changed.

Each watched folder maps to the processes that run its code: a service's folder to that
service, `gateway/` to the gateway, `servicekit/` and `protos/` to every process. PostgreSQL,
Redis, the broker and the other processes keep running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path

from watchfiles import PythonFilter, awatch

SHARED_FOLDERS = ("servicekit", "protos")


def watched_folders(root: Path, processes: Sequence[str]) -> dict[Path, tuple[str, ...]]:
    """The checkout's folders that exist under `root`, each with the processes it restarts."""
    folders: dict[Path, tuple[str, ...]] = {root / name: (name,) for name in processes}
    folders.update({root / name: tuple(processes) for name in SHARED_FOLDERS})
    return {folder.resolve(): names for folder, names in folders.items() if folder.is_dir()}


def processes_for(changed: Iterable[Path], folders: Mapping[Path, tuple[str, ...]]) -> list[str]:
    """The processes to restart for these changed files, each once, in the order of `folders`."""
    hit: set[str] = set()
    for path in changed:
        resolved = path.resolve()
        for folder, names in folders.items():
            if resolved.is_relative_to(folder):
                hit.update(names)
    ordered = dict.fromkeys(name for names in folders.values() for name in names)
    return [name for name in ordered if name in hit]


async def reload_on_changes(
    folders: Mapping[Path, tuple[str, ...]],
    restart: Callable[[list[str]], Awaitable[None]],
    *,
    debounce_ms: int = 400,
) -> None:
    """Watch `folders` for changes to Python files, forever; after each batch of changes, await
    `restart` with the processes whose code changed."""
    async for changes in awatch(*folders, watch_filter=PythonFilter(), debounce=debounce_ms):
        names = processes_for((Path(path) for _, path in changes), folders)
        if names:
            await restart(names)
