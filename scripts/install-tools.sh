#!/usr/bin/env bash
# Installs the host tools named as arguments (each a Debian package of the same name) that
# are not already on PATH, with apt-get. Shared by scripts/test.sh and scripts/demo.sh.
#
# Usage: bash scripts/install-tools.sh TOOL...     (installing needs root)
set -euo pipefail

missing=()
for tool in "$@"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${missing[*]} and not root: install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
