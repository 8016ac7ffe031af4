#!/usr/bin/env bash
# Reads `cargo test` output (a file) and prints one pass/fail line per group and a total:
#   unit        the crates' own tests (src/, doc tests) and the harness library's
#   end-to-end  tests/tests/*.rs that run real binaries on loopback
#   containers  tests/tests/*.rs that start containers: Debian hosts (Site::new), the demo
#               (start_demo) or the compose project (docker-compose)
# Usage: scripts/summarize-tests.sh CARGO_TEST_OUTPUT
set -euo pipefail
cd "$(dirname "$0")/.."
log="$1"
containers="$(grep -l -e 'Site::new' -e 'start_demo' -e 'docker-compose' tests/tests/*.rs 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"
awk -v containers=" $containers" '
  /^ *Running tests\// {
    file = $2; sub(/^tests\//, "", file)
    group = (index(containers, " " file " ") > 0) ? "containers" : "end-to-end"
    next
  }
  /^ *Running / || /^ *Doc-tests / { group = "unit"; next }
  /^test result: / {
    for (i = 1; i <= NF; i++) {
      if ($(i + 1) ~ /^passed;?$/) passed[group] += $i
      if ($(i + 1) ~ /^failed;?$/) failed[group] += $i
      if ($(i + 1) ~ /^ignored;?$/) ignored[group] += $i
    }
  }
  END {
    split("unit end-to-end containers", order, " ")
    for (k = 1; k <= 3; k++) {
      g = order[k]
      printf "%-11s %d passed, %d failed, %d ignored\n", g ":", passed[g], failed[g], ignored[g]
      total_passed += passed[g]; total_failed += failed[g]; total_ignored += ignored[g]
    }
    printf "total: %d passed, %d failed, %d skipped\n", total_passed, total_failed, total_ignored
  }
' "$log"
