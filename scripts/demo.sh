#!/usr/bin/env bash
# Rotor's main job in one command: a dev controller and an enrolled agent (local processes),
# two throwaway Debian hosts (containers of the test-host image on a docker bridge the agent
# reaches directly), three accounts registered, two passwords rotated, and each new password
# proved by an SSH login while the old one is refused; then rotor-agent as db-1's PAM helper
# and an SSH login with a one-time password (`rotor ssh`). Then it leaves everything running
# until Ctrl-C, and removes what it started (processes, containers, network, temp dir), also
# when a step fails.
#
# Usage: bash scripts/demo.sh [--no-wait]      (needs Docker; root to build the host image
#                                               or install sshpass/debootstrap when missing)
#   --no-wait, or ROTOR_DEMO_NONINTERACTIVE=1    exit (and clean up) right after the proof
#
# Environment:
#   ROTOR_BIN_DIR      use `rotor` and `rotor-agent` from here instead of building them
#   CARGO_TARGET_DIR   where cargo builds (default $ROTOR_CACHE/target, scripts/test.sh's
#                      too, so the README's two commands share one build)
#   ROTOR_CACHE        cache root (default /var/cache/rotor); the host image's tarball too
#   ROTOR_TEST_IMAGE   an existing host image to use instead of tests/image/build-image.sh
#
# Everything it creates in Docker is named rotor-demo-<8 hex>-* and labelled rotor-demo=1,
# rotor-demo.run=<that id> and rotor-demo.pid=<this shell's pid>; leftovers of a demo whose
# shell died (kill -9) are removed by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '10,12p' "$0" | sed 's/^# \{0,1\}//'; }
wait_for_interrupt=1
[ "${ROTOR_DEMO_NONINTERACTIVE:-}" = 1 ] && wait_for_interrupt=0
for argument in "$@"; do
  case "$argument" in
    --no-wait) wait_for_interrupt=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo: unknown argument '$argument'" >&2; usage >&2; exit 2 ;;
  esac
done

# --- time ------------------------------------------------------------------------------
# Microseconds since the epoch ($EPOCHREALTIME, digits only: its separator follows the locale).
now_us() { local t=${EPOCHREALTIME//[!0-9]/}; echo "$((10#$t))"; }
started_us=$(now_us)
# Seconds since $1 (microseconds, default the start), one decimal.
seconds_since() {
  local tenths=$((($(now_us) - ${1:-$started_us}) / 100000))
  printf '%d.%d' $((tenths / 10)) $((tenths % 10))
}
say() { printf '[%5ss] %s\n' "$(seconds_since)" "$*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

# --- what we start, and its removal ----------------------------------------------------
demo_id="rotor-demo-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
network="$demo_id-net"
work=""
controller_pid=""
agent_pid=""
labels=(--label rotor-demo=1 --label "rotor-demo.run=$demo_id" --label "rotor-demo.pid=$$")

stop_process() { # PID NAME: SIGTERM, then SIGKILL after 10 s
  local pid=$1 tries=0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ $tries -lt 100 ]; do
    sleep 0.1
    tries=$((tries + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "demo: $2 (pid $pid) ignored SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  set +e
  echo
  say "cleaning up $demo_id"
  stop_process "$agent_pid" rotor-agent
  stop_process "$controller_pid" "rotor server"
  docker ps -aq --filter "label=rotor-demo.run=$demo_id" | xargs -r docker rm -f -v >/dev/null
  docker network ls -q --filter "label=rotor-demo.run=$demo_id" | xargs -r docker network rm >/dev/null
  [ -n "$work" ] && rm -rf "$work"
  if [ "$status" = 0 ] || [ "$status" = 130 ] || [ "$status" = 143 ]; then
    say "removed the agent, the controller, the hosts, the network and $work"
  else
    echo "demo: failed (exit $status); everything it started is removed" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Containers and networks of demos whose shell is gone (killed before its trap ran).
sweep_dead_demos() {
  local name pid
  docker ps -a --filter label=rotor-demo=1 --format '{{.Names}} {{.Label "rotor-demo.pid"}}' |
    while read -r name pid; do
      if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then docker rm -f -v "$name" >/dev/null || true; fi
    done
  docker network ls --filter label=rotor-demo=1 --format '{{.Name}} {{.Label "rotor-demo.pid"}}' |
    while read -r name pid; do
      if [ -z "$pid" ] || [ ! -d "/proc/$pid" ]; then docker network rm "$name" >/dev/null || true; fi
    done
}

# --- prerequisites -----------------------------------------------------------------------
say "demo $demo_id"
command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed; the demo's hosts are containers"
docker info >/dev/null 2>&1 || die "Docker is not reachable (docker info failed): start the Docker daemon"
# sshpass proves the logins; debootstrap builds the host image when it is missing (as root).
tools=(sshpass)
[ "$(id -u)" = 0 ] && tools+=(debootstrap)
bash scripts/install-tools.sh "${tools[@]}"

build_started=$(now_us)
if [ -n "${ROTOR_BIN_DIR:-}" ]; then
  bin_dir=$ROTOR_BIN_DIR
  say "using the binaries in $bin_dir (ROTOR_BIN_DIR)"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${ROTOR_CACHE:-/var/cache/rotor}/target}"
  export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
  say "building rotor and rotor-agent (cargo build --workspace --bins, in $CARGO_TARGET_DIR)"
  cargo build --workspace --bins
  bin_dir=$CARGO_TARGET_DIR/debug
fi
bin_dir=$(cd "$bin_dir" && pwd)
for binary in rotor rotor-agent; do
  [ -x "$bin_dir/$binary" ] || die "$bin_dir/$binary is missing (build it: cargo build --workspace --bins)"
done
build_seconds=$(seconds_since "$build_started")

image_started=$(now_us)
if [ -n "${ROTOR_TEST_IMAGE:-}" ]; then
  image=$ROTOR_TEST_IMAGE
else
  say "making sure the Debian host image exists (tests/image/build-image.sh)"
  image=$(bash tests/image/build-image.sh | tail -n1)
fi
docker image inspect "$image" >/dev/null 2>&1 || die "no host image '$image'"
image_seconds=$(seconds_since "$image_started")

sweep_dead_demos
work=$(mktemp -d "${TMPDIR:-/tmp}/$demo_id.XXXXXX")

rotor() { "$bin_dir/rotor" "$@"; }
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$(($(now_us) + $1 * 1000000))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(now_us)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# --- controller and agent ------------------------------------------------------------------
# The hosts' network first: the controller's agent port listens on its gateway, the address
# this machine has on it, so the OTP helper on db-1 reaches it as the local agent does.
docker network create --driver bridge "${labels[@]}" "$network" >/dev/null
gateway=$(docker network inspect --format '{{(index .IPAM.Config 0).Gateway}}' "$network")
[ -n "$gateway" ] || die "docker network $network has no gateway address"
say "starting a dev controller (rotor server -dev; log in $work/controller.log)"
# Its dev directory (the CA file) goes under $work; ports are the kernel's free ones.
TMPDIR=$work "$bin_dir/rotor" server -dev \
  -dev-listen-address=127.0.0.1:0 -dev-agent-address="$gateway:0" \
  >"$work/controller.out" 2>"$work/controller.log" &
controller_pid=$!
controller_announced() { kill -0 "$controller_pid" && grep -q '^agents: ' "$work/controller.out"; }
wait_for 30 controller_announced || die "the controller did not start: $(tail -n 20 "$work/controller.log")"
exports=$(grep '^export ROTOR_' "$work/controller.out")
eval "$exports"
export ROTOR_ADDR ROTOR_CACERT ROTOR_TOKEN
unset VAULT_ADDR VAULT_TOKEN VAULT_CACERT
agent_address=$(sed -n 's/^agents: //p' "$work/controller.out")
say "controller pid $controller_pid: API $ROTOR_ADDR, agents $agent_address"

enrollment=$(rotor write agents/enroll site=demo)
field() { awk -v key="$1" '$1 == key { print $2 }' <<<"${2:-$enrollment}"; }
agent_id=$(field agent_id)
ROTOR_ENROLL_TOKEN=$(field token) "$bin_dir/rotor-agent" enroll \
  --controller "$agent_address" --ca-fingerprint "$(field ca_fingerprint)" --dir "$work/agent" \
  >"$work/agent-enroll.log" 2>&1 || die "rotor-agent enroll failed: $(cat "$work/agent-enroll.log")"
"$bin_dir/rotor-agent" run --dir "$work/agent" >"$work/agent.log" 2>&1 &
agent_pid=$!
agent_connected() { kill -0 "$agent_pid" && [ "$(rotor read -field=connected "agents/$agent_id")" = true ]; }
wait_for 30 agent_connected || die "the agent did not connect: $(tail -n 20 "$work/agent.log")"
say "agent $agent_id (pid $agent_pid) enrolled for site demo and connected"

# --- two Debian hosts ----------------------------------------------------------------------
random_password() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }
for host in web-1 db-1; do
  docker run -d --init "${labels[@]}" --name "$demo_id-$host" --hostname "$host" \
    --network "$network" "$image" >/dev/null
done
sshd_listening() { [ -n "$(docker exec "$demo_id-$1" ss -Htln 'sport = :22')" ]; }
host_address() {
  docker inspect --format "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$demo_id-$1"
}
host_key() { docker exec "$demo_id-$1" cat /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f1,2; }
# create_account HOST USER PASSWORD: a login account; the password only on stdin.
create_account() {
  docker exec "$demo_id-$1" useradd --create-home --shell /bin/bash "$2"
  printf '%s:%s\n' "$2" "$3" | docker exec -i "$demo_id-$1" chpasswd
}
declare -A address key
for host in web-1 db-1; do
  wait_for 30 sshd_listening "$host" || die "sshd did not start on $demo_id-$host"
  address[$host]=$(host_address "$host")
  # The agent runs here and dials the hosts' bridge addresses directly.
  # shellcheck disable=SC2016 # $0 is expanded by the inner bash: the address.
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/22"' "${address[$host]}" 2>/dev/null ||
    die "$demo_id-$host's address ${address[$host]} is not reachable from this machine; the demo needs Docker on this Linux machine (not in a VM, as Docker Desktop runs it)"
  key[$host]=$(host_key "$host")
  printf '%s %s\n' "${address[$host]}" "${key[$host]}" >>"$work/known_hosts"
done
mgmt_password=$(random_password)
app_password=$(random_password)
svc_password=$(random_password)
create_account web-1 mgmt "$mgmt_password"
create_account web-1 app "$app_password"
echo 'mgmt ALL=(root) NOPASSWD: /usr/sbin/chpasswd' |
  docker exec -i "$demo_id-web-1" sh -c 'cat > /etc/sudoers.d/rotor-mgmt && chmod 0440 /etc/sudoers.d/rotor-mgmt && visudo -cq'
create_account db-1 svc "$svc_password"
say "host web-1 at ${address[web-1]}: mgmt (may sudo /usr/sbin/chpasswd) and app; container $demo_id-web-1"
say "host db-1 at ${address[db-1]}: svc (manages its own password); container $demo_id-db-1"

# --- register, rotate, prove ---------------------------------------------------------------
for host in web-1 db-1; do
  rotor write "os/hosts/$host" address="${address[$host]}" site=demo ssh_host_key="${key[$host]}" >/dev/null
done
# Passwords reach rotor on stdin (password=-), never on a command line.
printf '%s' "$mgmt_password" | rotor write os/hosts/web-1/accounts/mgmt username=mgmt password=- >/dev/null
printf '%s' "$app_password" | rotor write os/hosts/web-1/accounts/app username=app password=- parent_ref=mgmt >/dev/null
printf '%s' "$svc_password" | rotor write os/hosts/db-1/accounts/svc username=svc password=- >/dev/null
say "registered both hosts (ssh_host_key pinned) and accounts mgmt, app (parent mgmt) and svc"

say "rotating app on web-1 through mgmt's sudo chpasswd (rotor write -f os/hosts/web-1/accounts/app/rotate)"
rotor write -f os/hosts/web-1/accounts/app/rotate >/dev/null
first_rotation_seconds=$(seconds_since)
say "first password rotated ${first_rotation_seconds} s after the demo started"
say "rotating svc on db-1 with passwd in its own session (rotor write -f os/hosts/db-1/accounts/svc/rotate)"
rotor write -f os/hosts/db-1/accounts/svc/rotate >/dev/null

# ssh_login HOST USER PASSWORD: sshpass's status (0 logged in, 5 password refused).
ssh_login() {
  SSHPASS=$3 timeout 60 sshpass -e ssh -o UserKnownHostsFile="$work/known_hosts" \
    -o StrictHostKeyChecking=yes -o PreferredAuthentications=password,keyboard-interactive \
    -o PubkeyAuthentication=no -o ConnectTimeout=10 -o LogLevel=ERROR \
    "$2@${address[$1]}" true </dev/null
}
# prove HOST USER OLD_PASSWORD
prove() {
  local new_password version status=0
  new_password=$(rotor read -field=password "os/hosts/$1/accounts/$2/creds")
  version=$(rotor read -field=version "os/hosts/$1/accounts/$2/creds")
  [ "$new_password" != "$3" ] || die "$2 on $1: creds still show the old password"
  ssh_login "$1" "$2" "$new_password" || die "$2 on $1: login with the new password (version $version) failed"
  say "login as $2 on $1 with the new password (version $version): ok"
  ssh_login "$1" "$2" "$3" 2>"$work/refused.err" || status=$?
  [ "$status" = 5 ] || die "$2 on $1: the old password was not refused (sshpass exit $status): $(cat "$work/refused.err")"
  say "login as $2 on $1 with the old password: refused"
}
prove web-1 app "$app_password"
prove db-1 svc "$svc_password"

# --- an SSH one-time password on db-1 --------------------------------------------------------
# rotor-agent is also sshd's PAM helper: enrolled on db-1 (an identity only, no `run`), it asks
# the controller to verify and consume the OTP `rotor ssh` fetched (deploy/README.md).
helper_enrollment=$(rotor write agents/enroll site=demo-otp-helpers)
docker cp "$bin_dir/rotor-agent" "$demo_id-db-1:/usr/local/bin/rotor-agent"
ROTOR_ENROLL_TOKEN=$(field token "$helper_enrollment") docker exec -e ROTOR_ENROLL_TOKEN \
  "$demo_id-db-1" rotor-agent enroll --controller "$agent_address" \
  --ca-fingerprint "$(field ca_fingerprint "$helper_enrollment")" --dir /var/lib/rotor-agent \
  >"$work/helper-enroll.log" 2>&1 || die "enrolling the OTP helper on db-1 failed: $(cat "$work/helper-enroll.log")"
pam_line='auth sufficient pam_exec.so expose_authtok quiet /usr/local/bin/rotor-agent otp-verify --dir /var/lib/rotor-agent'
docker exec "$demo_id-db-1" sed -i "/^@include common-auth/i $pam_line" /etc/pam.d/sshd
rotor write ssh/roles/otp_key_role key_type=otp default_user=svc cidr_list="${address[db-1]}/32" >/dev/null
otp_login=$(rotor ssh -role otp_key_role -strict-host-key-checking=yes \
  -user-known-hosts-file="$work/known_hosts" "svc@${address[db-1]}" -- id -un </dev/null 2>"$work/otp.err") ||
  die "rotor ssh -role otp_key_role svc@${address[db-1]} failed: $(cat "$work/otp.err")"
[ "$otp_login" = svc ] || die "the OTP login ran as '$otp_login', not svc"
say "login as svc on db-1 with a one-time password (rotor ssh -role otp_key_role): ok"
say "done: 2 passwords rotated and proved by SSH logins, and an OTP login"

# --- what next -----------------------------------------------------------------------------
cat <<EOF

Timing: first rotated password after ${first_rotation_seconds} s (build ${build_seconds} s, host image ${image_seconds} s).

In another shell, point the CLI at this controller:

export PATH='$bin_dir':"\$PATH"
$exports

Then try:

rotor read os/hosts/web-1/accounts/app/creds              # the current password and its version
rotor write -f os/hosts/web-1/accounts/app/rotate         # rotate again
rotor read os/hosts/web-1/accounts/app/versions           # every version
rotor write os/rotate host='*' account='*' dry_run=false  # the fleet, in waves; then:
rotor rotation watch RUN_ID                               #   with the id it printed
SSHPASS="\$(rotor read -field=password os/hosts/db-1/accounts/svc/creds)" \\
  sshpass -e ssh -o UserKnownHostsFile='$work/known_hosts' svc@${address[db-1]}   # log in as svc
rotor ssh -role otp_key_role -user-known-hosts-file='$work/known_hosts' svc@${address[db-1]}   # with a one-time password
EOF

if [ "$wait_for_interrupt" = 1 ]; then
  echo
  say "running until Ctrl-C (controller pid $controller_pid, agent pid $agent_pid)"
  while kill -0 "$controller_pid" 2>/dev/null; do
    sleep 1 &
    wait $! || true
  done
  die "the controller stopped: $(tail -n 20 "$work/controller.log")"
fi
