#!/bin/bash
# Builds the PostgreSQL test image (Debian 12's postgresql and postgresql-client on top of
# the test-host image's root filesystem), for the database engine's end-to-end tests: one
# container per site runs the server, another the psql logins that prove credentials.
#
# Usage: tests/image/build-postgres-image.sh        (as root; Docker needed)
#
# Reuses the test-host image's cached tarball (tests/image/build-image.sh builds it first if
# needed), so a cold build only adds the packages: apt-get update and install in a chroot,
# then tar and import. The image is tagged rotor-postgres:<hash12>, a sha256 over the base
# image's recipe hash, this script and postgres-rootfs/. The tarball is cached as
# ${ROTOR_CACHE:-/var/cache/rotor}/images/rotor-postgres-<hash12>.tar.gz; concurrent runs
# serialise on a flock. Progress goes to stderr; the last line of stdout is the tag.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_dir=${ROTOR_CACHE:-/var/cache/rotor}/images
packages=(postgresql postgresql-client)

log() { echo "build-postgres-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

base_tag=$("$here/build-image.sh" | tail -n1)
[[ $base_tag == rotor-host:* ]] || die "the test-host image did not build (got '$base_tag')"
base_hash=${base_tag#rotor-host:}
base_tarball=$cache_dir/rotor-host-$base_hash.tar.gz

hash=$(
    cd "$here"
    {
        echo "base $base_hash"
        { echo build-postgres-image.sh; find postgres-rootfs -type f; } | LC_ALL=C sort | while read -r file; do
            printf '%s %s\n' "$(sha256sum < "$file" | cut -d' ' -f1)" "$file"
        done
    } | sha256sum | cut -c1-12
)
tag=rotor-postgres:$hash
tarball=$cache_dir/rotor-postgres-$hash.tar.gz

mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock-postgres"
flock 9

if docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag is present"
    echo "$tag"
    exit 0
fi

if [ ! -s "$tarball" ]; then
    [ "$(id -u)" = 0 ] || die "building the root filesystem needs root (chroot)"
    work=$(mktemp -d "$cache_dir/build-postgres.XXXXXX")
    cleanup() {
        grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
        rm -rf --one-file-system "$work"
    }
    trap cleanup EXIT
    started=$(date +%s)
    mkdir "$work/rootfs"
    if [ -s "$base_tarball" ]; then
        tar --numeric-owner -xzf "$base_tarball" -C "$work/rootfs"
    else
        log "no cached $base_tarball; exporting $base_tag instead"
        container=$(docker create "$base_tag")
        docker export "$container" | tar --numeric-owner -xf - -C "$work/rootfs"
        docker rm "$container" >/dev/null
    fi
    root=$work/rootfs
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    # No service starts in the chroot, and no cluster is made at install: the entrypoint
    # makes its own as the postgres user.
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 0755 "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/etc/postgresql-common"
    echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.conf"
    mount -t proc proc "$root/proc"
    log "installing ${packages[*]}"
    chroot "$root" apt-get update -q >&2
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >&2
    chroot "$root" apt-get clean
    umount "$root/proc"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
    cp -a "$here/postgres-rootfs/." "$root/"
    chown 0:0 "$root/usr/local/sbin/postgres-init"
    chmod 0755 "$root/usr/local/sbin/postgres-init"
    log "packing $tarball"
    tar --numeric-owner -C "$root" -cf - . | gzip -1 > "$work/rootfs.tar.gz"
    mv "$work/rootfs.tar.gz" "$tarball"
    log "root filesystem built in $(( $(date +%s) - started )) s"
fi

log "importing $tarball as $tag"
docker import \
    --change 'CMD ["/usr/local/sbin/postgres-init"]' \
    --change 'LABEL rotor-test-image=1' \
    --message "rotor test PostgreSQL, recipe $hash" \
    "$tarball" "$tag" >&2
echo "$tag"
