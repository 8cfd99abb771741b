"""`make graphiql-assets`: fetch the GraphiQL playground's files from npm into gateway/static/graphiql/.

    python -m tools.graphiql_assets            # fetch every pinned file and its licence
    python -m tools.graphiql_assets --check    # only verify the committed files against the pins

The gateway serves these files itself in development (gateway/playground.py), so the playground
works without internet. They are the files Strawberry's own GraphiQL page loads from a CDN, at the
same versions: React and ReactDOM (UMD builds), GraphiQL (its UMD bundle, which carries the
graphql-ws client for subscriptions) and the explorer plugin.

Each file is taken from the package tarball `npm pack NAME@VERSION` downloads and must match the
pinned SHA-384 digest below, which is also the `integrity` attribute in index.html. To update:
change a version here, run with `--update-pins`, review the new digests, and edit index.html's
`integrity` attributes to match (`--check` and tests/unit/test_playground.py fail until they do).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "gateway" / "static" / "graphiql"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    source: str  # path inside the package tarball
    name: str  # file name under gateway/static/graphiql/
    sha384: str  # base64, as in an `integrity` attribute


ASSETS = (
    Asset(
        "react",
        "18.2.0",
        "umd/react.production.min.js",
        "react.production.min.js",
        "tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    ),
    Asset(
        "react-dom",
        "18.2.0",
        "umd/react-dom.production.min.js",
        "react-dom.production.min.js",
        "bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
    ),
    Asset(
        "graphiql",
        "3.8.3",
        "graphiql.min.js",
        "graphiql.min.js",
        "HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    ),
    Asset(
        "graphiql",
        "3.8.3",
        "graphiql.min.css",
        "graphiql.min.css",
        "Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
    ),
    Asset(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "dist/index.umd.js",
        "plugin-explorer.umd.js",
        "2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
    ),
    Asset(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "dist/style.css",
        "plugin-explorer.css",
        "5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
    ),
)

# Licence files, one per package. @graphiql/plugin-explorer ships none in its tarball; it is MIT
# (its package.json) and lives in the same repository as graphiql, whose LICENSE covers it.
LICENSES = {
    ("react", "18.2.0"): "LICENSE",
    ("react-dom", "18.2.0"): "LICENSE",
    ("graphiql", "3.8.3"): "LICENSE",
}


def digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha384(data).digest()).decode()


def licence_name(package: str) -> str:
    return f"LICENSE.{package.removeprefix('@').replace('/', '-')}"


def npm_pack(package: str, version: str, into: Path) -> tarfile.TarFile:
    """The package's tarball from the npm registry, opened."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is needed to fetch the GraphiQL assets (apt-get install npm)")
    out = subprocess.run(  # noqa: S603 - npm with a pinned package name
        [npm, "pack", "--silent", f"{package}@{version}"],
        cwd=into,
        capture_output=True,
        text=True,
        check=True,
    )
    return tarfile.open(into / out.stdout.strip().splitlines()[-1])


def read_member(tar: tarfile.TarFile, path: str) -> bytes:
    member = tar.extractfile(f"package/{path}")
    if member is None:
        raise SystemExit(f"{path} is not a file in {tar.name}")
    return member.read()


def fetch(update_pins: bool) -> int:
    TARGET.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        tarballs: dict[tuple[str, str], tarfile.TarFile] = {}
        for asset in ASSETS:
            key = (asset.package, asset.version)
            if key not in tarballs:
                tarballs[key] = npm_pack(asset.package, asset.version, Path(tmp))
            data = read_member(tarballs[key], asset.source)
            if digest(data) != asset.sha384:
                print(f"{asset.package}@{asset.version} {asset.source}: sha384-{digest(data)}")
                if not update_pins:
                    failures += 1
                    continue
            (TARGET / asset.name).write_bytes(data)
            print(f"{asset.name:32} {len(data):>9} bytes  {asset.package}@{asset.version}/{asset.source}")
        graphiql_licence = b""
        for (package, version), path in LICENSES.items():
            text = read_member(tarballs[(package, version)], path)
            (TARGET / licence_name(package)).write_bytes(text)
            if package == "graphiql":
                graphiql_licence = text
        (TARGET / licence_name("@graphiql/plugin-explorer")).write_bytes(graphiql_licence)
        for tar in tarballs.values():
            tar.close()
    if failures:
        print(f"{failures} file(s) differ from their pinned digest; nothing of them was written")
    return 1 if failures else 0


def check() -> int:
    """Whether every committed file matches its pin."""
    wrong = []
    for asset in ASSETS:
        path = TARGET / asset.name
        if not path.is_file() or digest(path.read_bytes()) != asset.sha384:
            wrong.append(asset.name)
    for package, _version in LICENSES:
        if not (TARGET / licence_name(package)).is_file():
            wrong.append(licence_name(package))
    for name in wrong:
        print(f"{name}: missing or not the pinned file")
    return 1 if wrong else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="verify the committed files, fetch nothing")
    group.add_argument("--update-pins", action="store_true", help="write files whose digest changed")
    args = parser.parse_args(argv)
    return check() if args.check else fetch(args.update_pins)


if __name__ == "__main__":
    sys.exit(main())
