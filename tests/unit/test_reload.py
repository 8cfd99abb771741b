"""`ecommerce dev --reload`: a change restarts only the processes that run the changed code."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from ecommerce_cli.reload import processes_for, reload_on_changes, watched_folders
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ["account", "catalog", "order", "payment", "notification", "gateway"]


def test_each_folder_restarts_its_own_process_and_servicekit_restarts_every_one():
    folders = watched_folders(ROOT, PROCESSES)

    assert processes_for([ROOT / "catalog" / "service.py"], folders) == ["catalog"]
    assert processes_for([ROOT / "gateway" / "schema" / "catalog.py"], folders) == ["gateway"]
    assert processes_for([ROOT / "servicekit" / "db.py"], folders) == PROCESSES
    assert processes_for([ROOT / "order" / "domain.py", ROOT / "payment" / "guard.py"], folders) == [
        "order",
        "payment",
    ]
    assert processes_for([ROOT / "tests" / "unit" / "test_reload.py", ROOT / "README.md"], folders) == []


def test_a_folder_missing_from_the_checkout_is_not_watched(tmp_path: Path):
    (tmp_path / "catalog").mkdir()

    assert watched_folders(tmp_path, ["catalog", "order"]) == {(tmp_path / "catalog").resolve(): ("catalog",)}


async def test_a_change_in_one_watched_folder_restarts_only_its_process(tmp_path: Path):
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    for folder in (alpha, beta):
        folder.mkdir()
        (folder / "code.py").write_text("VALUE = 0\n")
        (folder / "notes.txt").write_text("")
    restarted: list[list[str]] = []

    async def restart(names: list[str]) -> None:
        restarted.append(names)

    watcher = asyncio.create_task(
        reload_on_changes({alpha: ("alpha",), beta: ("beta",)}, restart, debounce_ms=50)
    )
    edits = 0

    async def alpha_restarted() -> bool:
        nonlocal edits
        edits += 1  # the watcher may not be watching yet: edit until it sees one
        (alpha / "code.py").write_text(f"VALUE = {edits}\n")
        (beta / "notes.txt").write_text(f"not Python {edits}\n")
        return bool(restarted)

    try:
        await eventually(alpha_restarted, timeout=20, interval=0.3, what="the restart of alpha")
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    assert all(names == ["alpha"] for names in restarted), restarted
