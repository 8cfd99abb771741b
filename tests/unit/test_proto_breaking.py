"""`make lint`'s proto checks: buf's lint policy holds for protos/, and `tools.proto_breaking` fails
with buf's message on a change that breaks the wire or the generated code, against the previous
commit or the last release tag, in a local git repository (no network)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools import proto_breaking

ROOT = Path(__file__).resolve().parents[2]
ORDER_PROTO = Path("protos/ecommerce/order/v1/order.proto")
# A field of a request the gateway sends: renumbering it is a wire break.
ORIGINAL_FIELD = "string order_id = 1;"
# buf's message for it
RENUMBERED = 'Previously present field "1" with name "order_id" on message "GetOrderRequest" was deleted.'


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        check=True,
        capture_output=True,
    )


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", message)


def edit_order_proto(repo: Path, old: str, new: str) -> None:
    path = repo / ORDER_PROTO
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def check(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.proto_breaking", "--repo", str(repo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of buf.yaml and the .proto files, committed once."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "buf.yaml", repo / "buf.yaml")
    for proto in (ROOT / "protos").rglob("*.proto"):
        target = repo / proto.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(proto, target)
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit_all(repo, "protos")
    return repo


def test_the_protos_follow_the_declared_lint_policy() -> None:
    result = subprocess.run(
        [proto_breaking.buf_executable(), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renumbered_field_fails_against_the_previous_commit_with_bufs_message(repo: Path) -> None:
    edit_order_proto(repo, ORIGINAL_FIELD, "string order_id = 99;")
    commit_all(repo, "renumber a field")

    result = check(repo)

    assert result.returncode != 0
    assert "against HEAD~1" in result.stdout
    assert RENUMBERED in result.stdout + result.stderr


def test_an_uncommitted_break_fails_too(repo: Path) -> None:
    edit_order_proto(repo, ORIGINAL_FIELD, "int64 order_id = 1;")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "another commit")

    result = check(repo)

    assert result.returncode != 0
    assert "changed type from" in result.stdout + result.stderr


def test_an_added_field_is_compatible(repo: Path) -> None:
    edit_order_proto(repo, ORIGINAL_FIELD, ORIGINAL_FIELD + "\n  string note_for_test = 900;")
    commit_all(repo, "add a field")

    result = check(repo)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_last_release_tag_is_compared_rather_than_the_previous_commit(repo: Path) -> None:
    git(repo, "tag", "v1.0.0")
    edit_order_proto(repo, ORIGINAL_FIELD, "string order_id = 99;")
    commit_all(repo, "renumber a field")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "a later commit that changes no proto")

    result = check(repo)

    assert result.returncode != 0
    assert "against v1.0.0" in result.stdout
    assert RENUMBERED in result.stdout + result.stderr


def test_a_shallow_clone_is_not_checked_and_says_why(repo: Path, tmp_path: Path) -> None:
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "second")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--depth=1", repo.as_uri(), str(clone))

    result = check(clone)

    assert result.returncode == 0
    assert "not checked, this is a shallow clone" in result.stdout
    assert "git fetch --unshallow" in result.stdout
