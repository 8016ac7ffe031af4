#!/bin/bash
# Removes Docker resources left by Rotor's end-to-end tests (label rotor-test=1).
#
#   tests/image/cleanup.sh           only those whose test process (label
#                                    rotor-test.pid) is no longer running: safe
#                                    while other tests run
#   tests/image/cleanup.sh --all     every test container, network and volume
#   tests/image/cleanup.sh --images  only rotor-host images of older recipes
#
# The current image and the tarball cache are always kept.
set -euo pipefail

mode=${1:-dead}
case "$mode" in dead|--all|--images) ;; *) echo "usage: $0 [--all|--images]" >&2; exit 2 ;; esac

if [ "$mode" = --images ]; then
    current=$("$(dirname "$0")/build-image.sh" 2>/dev/null | tail -n1)
    docker images --filter label=rotor-test-image=1 --format '{{.Repository}}:{{.Tag}}' |
        while read -r image; do
            [ "$image" = "$current" ] || docker rmi "$image"
        done
    exit 0
fi

# Reads "name pid" lines; prints the names to remove.
select_stale() {
    while read -r name pid; do
        if [ "$mode" = --all ] || [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then
            echo "$name"
        fi
    done
}

filter=(--filter label=rotor-test=1)
docker ps -a "${filter[@]}" --format '{{.Names}} {{.Label "rotor-test.pid"}}' | select_stale |
    while read -r name; do docker rm -f -v "$name" >/dev/null && echo "removed container $name"; done
docker network ls "${filter[@]}" --format '{{.Name}} {{.Label "rotor-test.pid"}}' | select_stale |
    while read -r name; do docker network rm "$name" >/dev/null && echo "removed network $name"; done
docker volume ls "${filter[@]}" --format '{{.Name}} {{.Label "rotor-test.pid"}}' | select_stale |
    while read -r name; do docker volume rm -f "$name" >/dev/null && echo "removed volume $name"; done
