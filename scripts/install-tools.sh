#!/usr/bin/env bash
# Installs the host tools named as arguments that are not already on PATH, with apt-get. Each
# argument is a command that is also its Debian package's name (`curl`), or COMMAND=PACKAGE
# when they differ (`chromedriver=chromium-driver`). Shared by scripts/test.sh and
# scripts/demo.sh.
#
# Usage: bash scripts/install-tools.sh TOOL[=PACKAGE]...     (installing needs root)
set -euo pipefail

missing=()
for tool in "$@"; do
  command="${tool%%=*}"
  package="${tool#*=}"
  command -v "$command" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${missing[*]} and not root: install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
