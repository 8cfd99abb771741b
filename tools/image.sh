#!/usr/bin/env bash
# `make image`: build the Containerfile with podman, as root.
#
#   tools/image.sh                  # IMAGE=ecommerce:0.1.0, on the Containerfile's base image
#
# The Containerfile's base (PYTHON_IMAGE, the official python slim image) is used when podman has
# it or can pull it. Without registry access, an equivalent base is built first from the
# distribution's packages: Debian bookworm (debootstrap --variant=minbase) with its own Python 3.11
# and venv, imported as localhost/ecommerce-base:bookworm, and the same Containerfile is built on
# it. Installs podman and debootstrap with apt-get when missing. Prints the build time and size.
set -euo pipefail

IMAGE=${IMAGE:-ecommerce:0.1.0}
OFFICIAL_BASE=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Containerfile)
LOCAL_BASE=localhost/ecommerce-base:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

need() {  # need COMMAND PACKAGE
    command -v "$1" >/dev/null && return
    echo "installing $2 (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

local_base() {
    if podman image exists "$LOCAL_BASE"; then
        echo "using the local base $LOCAL_BASE built earlier (podman rmi it to rebuild)"
        return
    fi
    need debootstrap debootstrap
    echo "building $LOCAL_BASE: Debian bookworm minbase with python3 and python3-venv"
    local root
    root=$(mktemp -d)
    trap 'rm -rf "$root"' RETURN
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$root" "$DEBIAN_MIRROR" >/dev/null
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
    tar -C "$root" --numeric-owner -c . | podman import \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
}

need podman podman
base=$OFFICIAL_BASE
if podman image exists "$base" || timeout 60 podman pull -q "docker.io/library/$base" >/dev/null 2>&1; then
    echo "base image: $base"
else
    echo "base image: $base cannot be pulled here; building an equivalent base from Debian packages"
    local_base
    base=$LOCAL_BASE
    echo "base image: $base"
fi

# A host whose pip trusts its own CA bundle (PIP_CERT, e.g. behind a TLS-inspecting proxy) lends
# that bundle to the build's RUN steps: to pip as a mounted pip.conf, to uv as the system's CA
# bundle with uv's native-tls on (a mounted /etc/uv/uv.toml). Mounts are not layers: nothing of it
# enters the image.
mounts=()
if [[ -n "${PIP_CERT:-}" && -f "$PIP_CERT" ]]; then
    conf=$(mktemp -d)
    trap 'rm -rf "$conf"' EXIT
    printf '[global]\ncert = /run/host-ca.crt\n' > "$conf/pip.conf"
    printf 'native-tls = true\n' > "$conf/uv.toml"
    mounts=(-v "$PIP_CERT:/run/host-ca.crt:ro" -v "$conf/pip.conf:/etc/pip.conf:ro"
            -v "$PIP_CERT:/etc/ssl/certs/ca-certificates.crt:ro" -v "$conf/uv.toml:/etc/uv/uv.toml:ro")
    echo "pip and uv in the build trust the host's CA bundle ($PIP_CERT)"
fi

start=$(date +%s)
podman build --isolation chroot --network host "${mounts[@]}" --build-arg "PYTHON_IMAGE=$base" \
    -f Containerfile -t "$IMAGE" .
seconds=$(( $(date +%s) - start ))
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "built $IMAGE on $base in ${seconds}s: $(( size / 1000000 )) MB"
