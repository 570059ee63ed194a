#!/usr/bin/env bash
# Makes `debian:bookworm-slim` exist in the local Docker daemon without reaching any image
# registry: when it is missing, build it from Debian packages (debootstrap --variant=minbase,
# trimmed the way the official slim image is) and `docker import` it. The root filesystem
# tarball is cached under build/, so a fresh daemon imports it again in seconds.
#
# The image's apt sources are this machine's Debian sources (so the versions pinned in the
# Dockerfiles, which are the ones this machine's apt offers, are the ones the image installs;
# an air-gapped site's own mirror works the same way).
set -euo pipefail

IMAGE="debian:bookworm-slim"
SUITE="bookworm"
CACHE_DIR="${GENOPIPE_BUILD_DIR:-build}"
TARBALL="$CACHE_DIR/debian-$SUITE-slim.tar"
HOST_SOURCES="/etc/apt/sources.list.d/debian.sources"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    echo "debian-base: installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
  }
  mirror=()
  if [ -r "$HOST_SOURCES" ]; then
    # the first archive URI (not the security one) of this machine's Debian sources
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$HOST_SOURCES")
    [ -n "$uri" ] && mirror=("$uri")
  fi
  rootfs=$(mktemp -d /tmp/genopipe-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "debian-base: debootstrap --variant=minbase $SUITE (about a minute)"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "${mirror[@]}" >/dev/null
  if [ -r "$HOST_SOURCES" ]; then
    cp "$HOST_SOURCES" "$rootfs/etc/apt/sources.list.d/debian.sources"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  # what makes the official image "slim": no docs, man pages or translations, now or later
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda}/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
    "$rootfs"/tmp/* "$rootfs"/root/.cache
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  mkdir -p "$CACHE_DIR"
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi

echo "debian-base: docker import $TARBALL as $IMAGE"
docker import --change 'CMD ["bash"]' "$TARBALL" "$IMAGE" >/dev/null
