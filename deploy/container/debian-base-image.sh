#!/usr/bin/env bash
# Make a local stand-in for the official python:3.11-slim-bookworm image where images cannot be
# pulled: a Debian bookworm root filesystem from Debian's own packages (python3, python3-venv,
# ca-certificates), imported into the container engine. Prints the image's tag on stdout, the
# last line; everything else goes to stderr.
#
#   docker build --build-arg PYTHON_IMAGE="$(deploy/container/debian-base-image.sh)" -t bmi-progression .
#
# Cached twice, keyed by everything that goes into it (this script, the mirror, this machine's CA
# bundle): the engine keeps the tagged image, and the root filesystem's tarball stays in
# BMI_CONTAINER_CACHE (default ~/.cache/bmi-progression) in case the engine's store is wiped. A
# rerun on the same machine takes a second; a first run, debootstrap, takes a few minutes.
#
# Environment: CONTAINER_ENGINE (podman, or docker), DEBIAN_MIRROR (default: the Debian mirror
# apt uses here), BMI_CONTAINER_CACHE. Needs root (debootstrap) on a first run.
set -euo pipefail

engine=${CONTAINER_ENGINE:-podman}
suite=bookworm
packages=python3,python3-venv,ca-certificates
# pip inside the build must trust what this machine trusts (a TLS-inspecting proxy's CA, say).
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
cache=${BMI_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bmi-progression}

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  # The first plain Debian archive apt is configured with (not debian-security), else the CDN.
  DEBIAN_MIRROR=$(grep -hsoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* \
    | head -n 1 | tr -d ' ' || true)
  DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi

key=$( { cat "$0"; echo "$suite $packages $DEBIAN_MIRROR $(uname -m)"; cat "$ca_bundle"; } | sha256sum | cut -c1-16)
tag="localhost/bmi-python-base:$suite-$key"
tarball="$cache/debian-$suite-$key.tar"

if "$engine" image inspect "$tag" >/dev/null 2>&1; then
  echo "Base image $tag is already in $engine." >&2
  echo "$tag"
  exit 0
fi

if [ ! -f "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)." >&2; exit 1; }
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs" "$tarball.partial"' EXIT
  echo "Building the $suite root filesystem from $DEBIAN_MIRROR (a few minutes)." >&2
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$DEBIAN_MIRROR" >&2
  install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # Debian's venv pip (23.0) reads certifi's bundle, not the system's, unless told.
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
  # What the official slim image leaves out too: apt's caches, documentation, translations.
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
  tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi

echo "Importing $tarball as $tag." >&2
# An imported image has no configuration: give it the official image's PATH, locale and command,
# or the Dockerfile's `ENV PATH=/opt/venv/bin:$PATH` would leave out /usr/bin.
"$engine" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >&2
echo "$tag"
