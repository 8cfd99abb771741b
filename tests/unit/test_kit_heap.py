"""`servicekit.heap`: what a process's entry point does to the garbage collector (run in a child
process, so this test process keeps its own collector as it is)."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import gc, json
from servicekit.heap import freeze_startup_heap

class Node:
    def __init__(self):
        self.me = self

before = gc.get_freeze_count()
thresholds = gc.get_threshold()
kept = Node()
freeze_startup_heap()
frozen = gc.get_freeze_count()
gc.collect()
# a cycle made after start-up is still collected
import weakref
late = Node()
ref = weakref.ref(late)
del late
gc.collect()
print(json.dumps({"before": before, "frozen": frozen, "thresholds_kept": gc.get_threshold() == thresholds, "late_alive": ref() is not None}))
"""


def test_freezes_what_start_up_built_and_still_collects_later_cycles() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(out.stdout)
    assert seen["before"] == 0
    assert seen["frozen"] > 1_000  # the interpreter's own objects, and the one kept here
    assert seen["thresholds_kept"] is True
    assert seen["late_alive"] is False
