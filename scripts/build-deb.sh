#!/usr/bin/env bash
# Builds the Debian packages `rotor-agent` and `rotor` from binaries cargo built, with
# dpkg-deb: the layout below, the units of deploy/systemd and the maintainer scripts of
# deploy/debian/<package>/ (system user, /var/lib/* and /etc/rotor owners and modes).
#
# Usage: bash scripts/build-deb.sh [PACKAGE...]     (default: rotor-agent rotor)
#   prints the path of each .deb, one per line, on stdout (progress goes to stderr)
#
# Environment:
#   ROTOR_BIN_DIR     where `rotor` and `rotor-agent` are (default: build them with cargo,
#                     in $CARGO_TARGET_DIR or $ROTOR_CACHE/target, release profile)
#   ROTOR_DEB_DIR     where the .debs go (default $ROTOR_CACHE/debs)
#   ROTOR_CACHE       cache root (default /var/cache/rotor)
#
# Why dpkg-deb and not cargo-deb: `cargo install cargo-deb --locked` (v3.8.0, 95 crates in
# its lock file) had compiled 57 crates after 7 minutes on this shared 2-core machine
# (2026-12-02, load average 13) and was stopped there; a fresh CI machine would pay that
# before its first package. The layout is a dozen files, which dpkg-deb packs in about 10 s
# (stripping included).
set -euo pipefail
cd "$(dirname "$0")/.."

ROTOR_CACHE="${ROTOR_CACHE:-/var/cache/rotor}"
out_dir="${ROTOR_DEB_DIR:-$ROTOR_CACHE/debs}"
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(rotor-agent rotor)
log() { echo "build-deb: $*" >&2; }
die() { echo "build-deb: error: $*" >&2; exit 1; }

for package in "${packages[@]}"; do
  case "$package" in
    rotor | rotor-agent) ;;
    *) die "unknown package '$package': rotor or rotor-agent" ;;
  esac
done

if [ -n "${ROTOR_BIN_DIR:-}" ]; then
  bin_dir=$ROTOR_BIN_DIR
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROTOR_CACHE/target}"
  log "building rotor and rotor-agent (cargo build --release, in $CARGO_TARGET_DIR)"
  cargo build --release -p rotor-controller -p rotor-agent >&2
  bin_dir=$CARGO_TARGET_DIR/release
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || die "no version in Cargo.toml's [workspace.package]"
architecture=$(dpkg --print-architecture)
mkdir -p "$out_dir"
staging=$(mktemp -d "${TMPDIR:-/tmp}/rotor-deb.XXXXXX")
trap 'rm -rf "$staging"' EXIT

# install_file MODE SOURCE ROOT/PATH
install_file() { install -D -m "$1" "$2" "$3"; }

# The binary, without its debug sections (a debug build is ten times the size otherwise).
install_binary() { # NAME ROOT
  [ -x "$bin_dir/$1" ] || die "$bin_dir/$1 is missing (cargo build -p rotor-controller -p rotor-agent)"
  install -d "$2/usr/bin"
  objcopy --strip-debug "$bin_dir/$1" "$2/usr/bin/$1"
  chmod 0755 "$2/usr/bin/$1"
}

# The maintainer scripts of deploy/debian/PACKAGE, and the control file.
write_control() { # PACKAGE ROOT DESCRIPTION
  local package=$1 root=$2 script
  install -d "$root/DEBIAN"
  for script in postinst prerm postrm; do
    [ -f "deploy/debian/$package/$script" ] && install -m 0755 "deploy/debian/$package/$script" "$root/DEBIAN/$script"
  done
  (cd "$root" && find etc -type f 2>/dev/null | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
  [ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"
  cat >"$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $architecture
Maintainer: Rotor maintainers <rotor@example.com>
Depends: libc6 (>= 2.34), adduser
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Homepage: https://github.com/rotor/rotor
Description: $3
EOF
}

build_rotor_agent() { # ROOT
  local root=$1
  install_binary rotor-agent "$root"
  install_file 0644 deploy/systemd/rotor-agent.service "$root/lib/systemd/system/rotor-agent.service"
  install_file 0644 deploy/systemd/rotor-agent.path "$root/lib/systemd/system/rotor-agent.path"
  install_file 0644 deploy/debian/rotor-agent/default "$root/etc/default/rotor-agent"
  install_file 0644 docs/install.md "$root/usr/share/doc/rotor-agent/install.md"
  install_file 0644 deploy/pam.d/sshd-rotor-otp "$root/usr/share/doc/rotor-agent/examples/pam.d/sshd-rotor-otp"
  install_file 0644 deploy/sshd_config.d/50-rotor-otp.conf "$root/usr/share/doc/rotor-agent/examples/sshd_config.d/50-rotor-otp.conf"
  install_file 0755 deploy/rotor-chpasswd-guard "$root/usr/share/doc/rotor-agent/examples/rotor-chpasswd-guard"
  install_file 0644 deploy/sudoers.d/rotor "$root/usr/share/doc/rotor-agent/examples/sudoers.d/rotor"
  write_control rotor-agent "$root" "Rotor agent: rotates passwords on the hosts it reaches
 Dials out to a Rotor controller over mutual-TLS QUIC and runs its jobs: password
 rotation over SSH (sudo chpasswd or passwd) or on this host, verification logins,
 and SSH one-time passwords as sshd's PAM helper. Enroll it once with
 rotor-agent enroll; rotor-agent.service starts then."
}

build_rotor() { # ROOT
  local root=$1
  install_binary rotor "$root"
  install_file 0644 deploy/systemd/rotor.service "$root/lib/systemd/system/rotor.service"
  install_file 0640 deploy/rotor.hcl "$root/etc/rotor/rotor.hcl"
  install_file 0644 docs/install.md "$root/usr/share/doc/rotor/install.md"
  install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions"
  "$root/usr/bin/rotor" completion bash >"$root/usr/share/bash-completion/completions/rotor"
  "$root/usr/bin/rotor" completion zsh >"$root/usr/share/zsh/vendor-completions/_rotor"
  write_control rotor "$root" "Rotor controller and CLI: credential rotation for Linux fleets
 The controller keeps state in one sealed redb file, serves a Vault-shaped HTTPS API
 and pushes jobs to rotor-agent over mutual-TLS QUIC. The same binary is the CLI
 (rotor read|write|list|delete, like vault), with bash and zsh completions."
}

for package in "${packages[@]}"; do
  root="$staging/$package"
  install -d -m 0755 "$root"
  "build_${package//-/_}" "$root"
  deb="$out_dir/${package}_${version}_${architecture}.deb"
  # Owned by root in the archive whoever builds it; gzip -1: these are built for each test run.
  dpkg-deb --root-owner-group -Zgzip -z1 --build "$root" "$deb" >&2
  log "built $deb"
  echo "$deb"
done
