#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one: installs what the tests need
# (debootstrap, curl, sshpass, chromium and chromedriver, hvac in a Python venv), builds the Debian test-host image when it is missing, checks
# formatting and lints, builds Rotor and runs every test (unit and end-to-end).
#
# Caches live outside the clone so a fresh clone reuses them:
#   $ROTOR_CACHE (default /var/cache/rotor): target/ (cargo), images/ (the host image tarball)
#   and venv/ (Python with hvac, for the hvac scenario; exported as ROTOR_HVAC_PYTHON)
# ROTOR_E2E=skip skips the container scenarios (they then say so loudly); nothing else does.
set -euo pipefail
cd "$(dirname "$0")/.."

export ROTOR_CACHE="${ROTOR_CACHE:-/var/cache/rotor}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROTOR_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$ROTOR_CACHE"
started=$(date +%s)
step() { printf '\n==> %s (+%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

cat <<'NOTE'
Rotor's whole test suite: unit tests, end-to-end tests on loopback, and scenarios on real
Debian hosts in containers. It needs root (it installs packages and mounts a small tmpfs)
and a running Docker. It takes about 25 minutes on a warm cache and 45 on a fresh machine
with 2 cores (most of that is the first build and the host image). It ends with one
pass/fail line per group and a total.
NOTE

step "host packages"
# chromium + chromedriver: the web console's browser test (tests/tests/console_browser.rs);
# openssl reads the controller's key that the browser is told to trust.
bash scripts/install-tools.sh debootstrap curl sshpass openssl chromium chromedriver=chromium-driver

if [ "${ROTOR_E2E:-}" != "skip" ]; then
  step "docker"
  if ! docker info >/dev/null 2>&1; then
    echo "Docker is not reachable (docker info failed): start the Docker daemon, or set ROTOR_E2E=skip to skip the container scenarios" >&2
    exit 1
  fi
  if [ -x tests/image/cleanup.sh ] || [ -f tests/image/cleanup.sh ]; then
    bash tests/image/cleanup.sh || true
  fi
  step "test host image"
  bash tests/image/build-image.sh
  # deploy_compose runs deploy/compose.yaml with `docker-compose`, or `docker compose` (v2).
  if ! docker compose version >/dev/null 2>&1; then
    bash scripts/install-tools.sh docker-compose
  fi
fi

step "python client (hvac)"
# The hvac scenario (tests/tests/core_services_hvac.rs) drives Rotor with the Python Vault
# client. hvac lives in a venv under the cache, made once and reused.
venv="$ROTOR_CACHE/venv"
if ! "$venv/bin/python" -c "import hvac" >/dev/null 2>&1; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "python3 with venv is missing and not root: install it (apt-get install python3 python3-venv)" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  if ! "$venv/bin/python" -c "pass" >/dev/null 2>&1; then
    # Missing, or broken (its Python was upgraded or removed): make it afresh.
    python3 -m venv --clear "$venv"
  fi
  if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check hvac; then
    if [ "${ROTOR_E2E:-}" = "skip" ]; then
      echo "installing hvac failed; ROTOR_E2E=skip is set, so the hvac scenario will be skipped" >&2
    else
      echo "installing hvac into $venv failed (is PyPI reachable?); the hvac scenario cannot run" >&2
      exit 1
    fi
  fi
fi
export ROTOR_HVAC_PYTHON="$venv/bin/python"

step "format"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets -- -D warnings

step "build"
cargo build --workspace --bins

step "tests"
log="$ROTOR_CACHE/last-test-run.log"
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?

step "summary"
bash scripts/summarize-tests.sh "$log"
if [ -d "$ROTOR_CACHE/console-screenshots" ]; then
  echo "Web console screenshots (tests/tests/console_browser.rs): $ROTOR_CACHE/console-screenshots/"
fi
if [ "$status" -ne 0 ]; then
  echo "FAILED: see the failures above (the whole output is in $log)" >&2
  exit "$status"
fi

step "done"
