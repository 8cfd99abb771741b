"""`buf breaking` over protos/ against the last release, the check of `make lint`.

The protos are compared with those of the newest tag named `v*` reachable from HEAD or, while the
repository has no release tag, with those of the previous commit, by buf's rules in buf.yaml (the
FILE category: what breaks the wire format, JSON or the generated code). The exit status is buf's;
buf's own message names each breaking change. A repository without that history (a shallow clone,
the first commit, a source archive) is not checked: the reason is printed and the exit status is 0.

    python -m tools.proto_breaking [--repo DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

PROTO_ROOT = "protos"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = ["git", "-C", str(repo), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed git queries


def against_ref(repo: Path) -> tuple[str | None, str]:
    """The git ref to compare with, and why; no ref when the history to compare with is missing."""
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        return None, f"{repo} is not a git repository"
    tag = _git(repo, "describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
    if tag.returncode == 0:
        return tag.stdout.strip(), "the last release tag"
    if _git(repo, "rev-parse", "--verify", "--quiet", "HEAD~1^{commit}").returncode == 0:
        return "HEAD~1", "no release tag yet: the previous commit"
    if _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return (
            None,
            "this is a shallow clone; `git fetch --unshallow --tags` brings the history to compare with",
        )
    return None, "HEAD is the first commit: there is nothing to compare with"


def buf_executable() -> str:
    """buf from this environment (the buf-bin wheel of the dev extra), else from PATH."""
    found = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if found is None:
        raise SystemExit("buf is not installed: it comes with the dev extra (make lint installs it)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the repository root (default: .)")
    args = parser.parse_args(argv)
    repo: Path = args.repo.resolve()
    ref, why = against_ref(repo)
    if ref is None:
        print(f"buf breaking: not checked, {why}.")
        return 0
    print(f"buf breaking: {PROTO_ROOT}/ against {ref} ({why})", flush=True)
    against = f".git#ref={ref},subdir={PROTO_ROOT}"
    command = [buf_executable(), "breaking", "--against", against]
    return subprocess.run(command, cwd=repo, check=False).returncode  # noqa: S603 - a fixed buf command


if __name__ == "__main__":
    sys.exit(main())
