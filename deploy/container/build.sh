#!/usr/bin/env bash
# Builds the image of deploy/container/Dockerfile locally, with no registry: the base is the
# test-host image (tests/image/build-image.sh, debootstrap + docker import) and Rotor goes in
# as its Debian packages (scripts/build-deb.sh).
#
# Usage: bash deploy/container/build.sh        prints the image's tag on its last line
#
# Environment:
#   ROTOR_IMAGE       the tag to build (default rotor:local, what compose.yaml runs)
#   ROTOR_BIN_DIR     binaries to package instead of a release build (scripts/build-deb.sh)
#   ROTOR_TEST_IMAGE  an existing base image instead of tests/image/build-image.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=${ROTOR_IMAGE:-rotor:local}
base=${ROTOR_TEST_IMAGE:-$(bash tests/image/build-image.sh | tail -n1)}
context=$(mktemp -d "${TMPDIR:-/tmp}/rotor-image.XXXXXX")
trap 'rm -rf "$context"' EXIT

ROTOR_DEB_DIR="$context/packages" bash scripts/build-deb.sh rotor rotor-agent >/dev/null
cp deploy/container/Dockerfile deploy/container/rotor.hcl deploy/container/rotor-container "$context/"
docker build --quiet --build-arg "BASE=$base" --tag "$tag" "$context" >&2
echo "$tag"
