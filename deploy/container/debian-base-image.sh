#!/usr/bin/env bash
# Make a local stand-in for an official base image where images cannot be pulled: a Debian
# bookworm root filesystem from Debian's own packages, imported into the container engine. Prints
# the image's tag on stdout, the last line; everything else goes to stderr.
#
#   python (the default): for python:3.11-slim-bookworm (Dockerfile, ARG PYTHON_IMAGE): python3,
#           python3-venv, ca-certificates.
#   nginx:  for nginxinc/nginx-unprivileged:*-alpine (deploy/nginx/Dockerfile, ARG
#           NGINX_BASE_IMAGE): Debian's nginx (nginx-light) and wget, which the image's
#           HEALTHCHECK runs (busybox's wget on Alpine takes the same flags).
#
#   docker build --build-arg PYTHON_IMAGE="$(deploy/container/debian-base-image.sh)" -t bmi-progression .
#   docker build --build-arg NGINX_BASE_IMAGE="$(deploy/container/debian-base-image.sh nginx)" \
#     -t bmi-progression-nginx -f deploy/nginx/Dockerfile deploy/nginx
#
# Cached twice, keyed by everything that goes into it (this script, the flavour, the mirror, this
# machine's CA bundle): the engine keeps the tagged image, and the root filesystem's tarball stays
# in BMI_CONTAINER_CACHE (default ~/.cache/bmi-progression) in case the engine's store is wiped. A
# rerun on the same machine takes a second; a first run, debootstrap, takes a few minutes.
#
# Environment: CONTAINER_ENGINE (podman, or docker), DEBIAN_MIRROR (default: the Debian mirror
# apt uses here), BMI_CONTAINER_CACHE. Needs root (debootstrap) on a first run.
set -euo pipefail

flavour=${1:-python}
engine=${CONTAINER_ENGINE:-podman}
suite=bookworm
# pip inside the build must trust what this machine trusts (a TLS-inspecting proxy's CA, say).
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
cache=${BMI_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bmi-progression}
# An imported image has no configuration: give it the official image's PATH and command, or a
# Dockerfile's `ENV PATH=/opt/venv/bin:$PATH` would leave out /usr/bin.
changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'ENV LANG=C.UTF-8')

case "$flavour" in
  python)
    packages=python3,python3-venv,ca-certificates
    changes+=(--change 'CMD ["python3"]')
    ;;
  nginx)
    # nginx-light: the core modules, all that deploy/nginx/nginx.conf uses (CI's test job runs
    # the same package).
    packages=nginx-light,wget
    changes+=(--change 'STOPSIGNAL SIGQUIT' --change 'CMD ["nginx", "-g", "daemon off;"]')
    ;;
  *)
    echo "usage: $0 [python|nginx]" >&2
    exit 2
    ;;
esac

# What the flavour's official image sets up beyond its packages; run on the new root filesystem.
customise() {
  local rootfs=$1
  case "$flavour" in
    python)
      install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
      # Debian's venv pip (23.0) reads certifi's bundle, not the system's, unless told.
      printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$rootfs/etc/pip.conf"
      ;;
    nginx)
      # As the official image does: nginx opens its compiled-in log files before it reads the
      # configuration (which logs to stdout and stderr), so point those at the same streams
      # rather than at files on what is a read-only root filesystem in ECS.
      mkdir -p "$rootfs/var/log/nginx"
      ln -sf /dev/stdout "$rootfs/var/log/nginx/access.log"
      ln -sf /dev/stderr "$rootfs/var/log/nginx/error.log"
      # The package's default site is not read (our nginx.conf includes nothing), so drop it.
      rm -f "$rootfs/etc/nginx/sites-enabled/default"
      ;;
  esac
}

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  # The first plain Debian archive apt is configured with (not debian-security), else the CDN.
  DEBIAN_MIRROR=$(grep -hsoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* \
    | head -n 1 | tr -d ' ' || true)
  DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi

key=$( { cat "$0"; echo "$flavour $suite $packages $DEBIAN_MIRROR $(uname -m)"; cat "$ca_bundle"; } | sha256sum | cut -c1-16)
tag="localhost/bmi-$flavour-base:$suite-$key"
tarball="$cache/debian-$suite-$flavour-$key.tar"

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
  echo "Building the $suite root filesystem ($flavour) from $DEBIAN_MIRROR (a few minutes)." >&2
  # Packages' services are not started in the chroot: without an init system or a policy-rc.d,
  # invoke-rc.d refuses to start them.
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$DEBIAN_MIRROR" >&2
  # What the official slim images leave out too: apt's caches, documentation, translations.
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
  customise "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
fi

echo "Importing $tarball as $tag." >&2
"$engine" import "${changes[@]}" "$tarball" "$tag" >&2
echo "$tag"
