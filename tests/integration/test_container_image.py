"""The container image, built the way the Containerfile builds it, as far as this machine allows
without a container engine: the build context it copies, the stub generation it runs, the wheel it
installs (checked for everything a service needs at run time) and the command it starts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = (ROOT / "Containerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", CONTAINERFILE)
    lines = [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_the_containerfile_is_multi_stage_slim_pinned_and_runs_unprivileged():
    build, final = stages()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", CONTAINERFILE, re.M))
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base), base  # pinned to a patch release
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    final_args = dict(final)
    assert final_args["USER"] == "10001:10001"
    assert final_args["ENTRYPOINT"] == '["ecommerce", "serve"]'
    assert "COPY --from=build /opt/venv /opt/venv" in [f"COPY {a}" for i, a in final if i == "COPY"]
    # Nothing but the environment reaches the final stage: no source tree, no compiler.
    assert [a for i, a in final if i == "COPY"] == ["--from=build /opt/venv /opt/venv"]


def build_context(target: Path) -> None:
    """The files `COPY . .` copies: the tree minus what .containerignore excludes."""
    patterns = [
        line.strip()
        for line in (ROOT / ".containerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(relative: str) -> bool:
        return any(
            fnmatch(relative, p)
            or fnmatch(relative, f"{p}/*")
            or fnmatch("/" + relative, f"*/{p.lstrip('*/')}")
            for p in patterns
        )

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for relative in tracked:
        if not ignored(relative) and (ROOT / relative).is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / relative, target / relative)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail("the image test needs the git checkout it builds from")
    src = tmp_path_factory.mktemp("context")
    build_context(src)
    assert not list(src.rglob("*_pb2.py")), "generated stubs leaked into the build context"
    assert not (src / "tests").exists()
    assert not (src / "chaos").exists()
    # The build stage's stub generation, as written in the Containerfile.
    [protoc] = re.findall(
        r"python -m grpc_tools\.protoc [^&]*?\$\(find protos -name '\*\.proto'\)", CONTAINERFILE
    )
    bindir = Path(sys.executable).parent
    subprocess.run(
        ["bash", "-c", protoc],
        cwd=src,
        check=True,
        env={"PATH": f"{bindir}:/usr/bin:/bin"},
    )
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    [built] = dist.glob("*.whl")
    return built


def test_the_wheel_carries_the_generated_stubs_and_everything_read_at_run_time(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for service in ("account", "catalog", "order", "payment", "notification"):
        assert f"ecommerce/{service}/v1/{service}_pb2.py" in names
        assert f"ecommerce/{service}/v1/{service}_pb2_grpc.py" in names
        assert f"{service}/migrations/env.py" in names
        assert any(n.startswith(f"{service}/migrations/versions/") and n.endswith(".py") for n in names), (
            service
        )
    assert "ecommerce/events/v1/envelope_pb2.py" in names
    assert "gateway/schema.graphql" in names
    assert "gateway/static/graphiql/index.html" in names
    assert "gateway/static/graphiql/graphiql.min.js" in names
    assert "notification/templates/order_confirmed.html" in names
    assert "notification/templates/order_confirmed.subject.txt" in names
    assert "servicekit/migrations.py" in names
    assert not any(n.startswith(("tests/", "bench/", "chaos/")) for n in names)


def test_the_installed_image_imports_every_process_and_answers_its_command(wheel: Path, tmp_path: Path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    # The Containerfile's own check, then where each module really came from.
    script = (
        "from ecommerce.order.v1 import order_pb2_grpc; import gateway.app, account.__main__\n"
        "import catalog.__main__, order.__main__, payment.__main__, notification.__main__, ecommerce_cli.main\n"
        "import sys; mods = [order_pb2_grpc, gateway.app, catalog.__main__, notification.__main__]\n"
        "print('\\n'.join(m.__file__ for m in mods))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert all(line.startswith(str(site)) for line in imported.stdout.split()), imported.stdout
    served = subprocess.run(
        [sys.executable, "-m", "ecommerce_cli.main", "serve", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert served.returncode == 0, served.stderr
    for process in ("account", "catalog", "order", "payment", "notification", "gateway"):
        assert process in served.stdout
