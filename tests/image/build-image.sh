#!/bin/bash
# Builds the Debian 12 (bookworm) image that Rotor's end-to-end tests run as
# target hosts, probes, controller and agents. Nothing is pulled from a
# registry: the root filesystem comes from debootstrap and the apt mirror of
# this machine, and is loaded with `docker import`.
#
# Usage: tests/image/build-image.sh          (as root; Docker and debootstrap needed)
#
# The image is tagged rotor-host:<hash12>, where <hash12> is the first 12 hex
# digits of a sha256 over this script and every file under rootfs/ (names and
# contents), so changing the recipe makes a new image. Idempotent:
#   - image with that tag exists      -> nothing to do
#   - only the cached tarball exists  -> docker import it
#   - neither                         -> debootstrap, provision, tar, import
# The tarball is kept in ${ROTOR_CACHE:-/var/cache/rotor}/images/. Concurrent
# runs serialise on a flock in that directory. Progress goes to stderr; the
# last line of stdout is the image tag.
#
# Environment:
#   ROTOR_CACHE   cache root (default /var/cache/rotor)
#   ROTOR_MIRROR  Debian mirror URL (default: taken from the apt sources of this
#                 machine, else http://deb.debian.org/debian)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_dir=${ROTOR_CACHE:-/var/cache/rotor}/images
suite=bookworm
packages=(
    openssh-server openssh-client sshpass sudo passwd
    libpam-modules libpam-runtime iproute2 procps iptables
    ca-certificates curl
)

log() { echo "build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- the recipe hash --------------------------------------------------------
recipe_hash() {
    (
        cd "$here"
        { echo build-image.sh; find rootfs -type f; } | LC_ALL=C sort | while read -r file; do
            printf '%s %s\n' "$(sha256sum < "$file" | cut -d' ' -f1)" "$file"
        done
    ) | sha256sum | cut -c1-12
}

# --- which mirror -----------------------------------------------------------
# First URI serving $suite in /etc/apt/sources.list.d/*.sources (deb822) or a
# one-line *.list / sources.list entry.
find_mirror() {
    local uri=""
    local sources=(/etc/apt/sources.list.d/*.sources)
    if [ -e "${sources[0]}" ]; then
        uri=$(awk -v suite="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uris != "" && found == "") {
                    split(uris, list, " "); found = list[1]
                }
                types = ""; suites = ""; uris = ""; enabled = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            /^#/ { next }
            tolower($1) == "types:"   { $1 = ""; types = $0 }
            tolower($1) == "suites:"  { $1 = ""; suites = $0 }
            tolower($1) == "uris:"    { $1 = ""; sub(/^ +/, ""); uris = $0 }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { flush(); print found }
        ' "${sources[@]}")
    fi
    if [ -z "$uri" ]; then
        local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
        uri=$(cat "${lists[@]}" 2>/dev/null | awk -v suite="$suite" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }') || true
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

# --- provisioning inside the chroot ------------------------------------------
provision() {
    local root=$1
    # Copied from the build machine or shared by every container otherwise.
    rm -f "$root/etc/resolv.conf" "$root/etc/hostname" "$root"/etc/ssh/ssh_host_*
    # `required` breaks sessions when the container runtime already set a loginuid.
    sed -i -E 's/^(session[[:space:]]+)required([[:space:]]+pam_loginuid\.so)/\1optional\2/' "$root/etc/pam.d/sshd"
    grep -Eq '^session[[:space:]]+optional[[:space:]]+pam_loginuid\.so' "$root/etc/pam.d/sshd" \
        || die "could not make pam_loginuid optional in /etc/pam.d/sshd"
    # Our files: the sshd settings and the entrypoint.
    cp -a "$here/rootfs/." "$root/"
    chown -R 0:0 "$root/etc/ssh/sshd_config.d" "$root/usr/local/sbin/host-init"
    chmod 0644 "$root/etc/ssh/sshd_config.d/00-rotor-test.conf"
    chmod 0755 "$root/usr/local/sbin/host-init"
    # sshd must accept the configuration (keys are made only to check it).
    chroot "$root" /bin/sh -c 'mkdir -p /run/sshd && ssh-keygen -A >/dev/null && /usr/sbin/sshd -t && rm -f /etc/ssh/ssh_host_*' \
        || die "sshd -t rejected the configuration"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/run/sshd
}

# --- main -------------------------------------------------------------------
hash=$(recipe_hash)
tag=rotor-host:$hash
tarball=$cache_dir/rotor-host-$hash.tar.gz

command -v docker >/dev/null || die "the docker CLI is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    || die "the Docker daemon is not reachable: $(docker version 2>&1 | tail -n1)"

mkdir -p "$cache_dir"
exec 9>"$cache_dir/.lock"
flock 9

if docker image inspect "$tag" >/dev/null 2>&1; then
    log "$tag is present"
    echo "$tag"
    exit 0
fi

if [ ! -s "$tarball" ]; then
    [ "$(id -u)" = 0 ] || die "building the root filesystem needs root (debootstrap, chroot)"
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
    mirror=${ROTOR_MIRROR:-$(find_mirror)}
    work=$(mktemp -d "$cache_dir/build.XXXXXX")
    cleanup() {
        # debootstrap mounts /proc and /sys in the target; never rm -rf through a mount.
        grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l || true
        rm -rf --one-file-system "$work"
    }
    trap cleanup EXIT
    started=$(date +%s)
    log "debootstrap $suite from $mirror into $work/rootfs"
    include=$(IFS=,; echo "${packages[*]}")
    if ! debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" >&2; then
        cp "$work/rootfs/debootstrap/debootstrap.log" "$cache_dir/debootstrap-failed.log" 2>/dev/null || true
        die "debootstrap failed; its log is in $cache_dir/debootstrap-failed.log"
    fi
    provision "$work/rootfs"
    log "packing $tarball"
    tar --numeric-owner -C "$work/rootfs" -cf - . | gzip -1 > "$work/rootfs.tar.gz"
    mv "$work/rootfs.tar.gz" "$tarball"
    log "root filesystem built in $(( $(date +%s) - started )) s"
fi

log "importing $tarball as $tag"
docker import \
    --change 'CMD ["/usr/local/sbin/host-init"]' \
    --change 'LABEL rotor-test-image=1' \
    --message "rotor test host, recipe $hash" \
    "$tarball" "$tag" >&2
echo "$tag"
