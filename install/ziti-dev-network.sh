#!/usr/bin/env bash
# ziti-dev-network.sh: a throwaway OpenZiti network on loopback, for tests.
#
#   ziti-dev-network.sh start DIR [--service NAME] [--host-port PORT] [--ziti PATH] [--timeout SECONDS]
#   ziti-dev-network.sh stop DIR
#
# start: runs a controller (`ziti edge quickstart --no-router`) and one edge router, both listening on
# 127.0.0.1 only, on free ports; enrolls the identities daemon, client and intruder to DIR/NAME.json;
# creates the service NAME (default ralph-test) with a host.v1 config that sends to
# 127.0.0.1:PORT over tcp (default PORT: a free port), a Bind policy for daemon, a Dial policy for
# client, nothing for intruder (it may use the router, like any member of the network, but sees no
# service). Returns once the controller answers a login and the router is online, leaving both
# running in their own process groups, and prints one JSON object on stdout (also kept in
# DIR/network.json):
#   {"ziti": "/path/to/ziti", "home": "DIR", "controller": "https://127.0.0.1:PORT",
#    "identities": {"daemon": "DIR/daemon.json", "client": "DIR/client.json", "intruder": "DIR/intruder.json"},
#    "service": "NAME", "hostPort": PORT, "pid": QUICKSTART_PID, "routerPid": ROUTER_PID,
#    "routerPort": PORT, "cliConfigDir": "DIR/cli", "admin": {"username": "admin", "passwordFile": "DIR/admin-password"}}
# Logs: DIR/quickstart.log, DIR/router.log, DIR/setup.log. On failure it stops what it started and
# exits non-zero with a message on stderr.
#
# stop: ends both process groups (TERM, then KILL after 10 s) and removes nothing but the stale
# CLI-agent socket the quickstart leaves in /tmp.
#
# Why not the quickstart's own router: its generated router config listens on 0.0.0.0, and here
# everything listens on loopback only. The `ziti` CLI comes from --ziti, else $RALPH_ZITI, else
# get-ziti.sh beside this script (which may build it, slowly, the first time).
set -euo pipefail

prog="ziti-dev-network"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
usage() {
  cat >&2 <<'EOF'
usage: ziti-dev-network.sh start DIR [--service NAME] [--host-port PORT] [--ziti PATH] [--timeout SECONDS]
       ziti-dev-network.sh stop DIR
EOF
  exit 2
}

# json_str S: S as a JSON string literal.
json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port VAR: set VAR to a port in 20000-32767 (below the kernel's ephemeral range) that nothing
# listens on and that this run has not handed out yet. (Not run in $(...): it records what it gave.)
handed_out=" "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12768))
    [[ "$handed_out" == *" $p "* ]] && continue
    port_in_use "$p" && continue
    handed_out+="$p "
    printf -v "$1" '%s' "$p"
    return 0
  done
  return 1
}

# alive PID: PID is a running (not zombie) ziti process; guards against a recycled pid.
alive() {
  local pid="$1" exe stat
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
  stat="${stat##*) }"
  [[ "${stat%% *}" != Z ]] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  [[ -z "$exe" || "$(basename "$exe")" == ziti* ]]
}

# stop_dir DIR: end the process groups recorded in DIR/pids (TERM; KILL after 10 s).
stop_dir() {
  local dir="$1" pid pids=() i left
  [[ -f "$dir/pids" ]] || return 0
  while read -r _ pid; do
    alive "$pid" && pids+=("$pid")
  done <"$dir/pids"
  ((${#pids[@]})) || return 0
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for ((i = 0; i < 100; i++)); do
    left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if alive "$pid"; then
      log "pid $pid did not stop on TERM within 10 s; killing its process group"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # The quickstart leaves its CLI-agent socket behind, named after its pid.
  for pid in "${pids[@]}"; do
    alive "$pid" || { [[ ! -S "${TMPDIR:-/tmp}/gops-agent.$pid.sock" ]] || rm -f "${TMPDIR:-/tmp}/gops-agent.$pid.sock"; }
  done
}

cmd="${1:-}"
[[ $# -ge 2 ]] || usage
shift
dir_arg="$1"
shift

case "$cmd" in
  stop)
    [[ $# -eq 0 ]] || usage
    [[ -d "$dir_arg" ]] || die "no such directory: $dir_arg"
    stop_dir "$(cd "$dir_arg" && pwd)"
    exit 0
    ;;
  start) ;;
  *) usage ;;
esac

service="ralph-test"
host_port=""
ziti="${RALPH_ZITI:-}"
timeout_s=90
while [[ $# -gt 0 ]]; do
  case "$1" in
    --service) [[ $# -ge 2 ]] || usage; service="$2"; shift 2 ;;
    --host-port) [[ $# -ge 2 ]] || usage; host_port="$2"; shift 2 ;;
    --ziti) [[ $# -ge 2 ]] || usage; ziti="$2"; shift 2 ;;
    --timeout) [[ $# -ge 2 ]] || usage; timeout_s="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ "$service" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$ ]] || die "bad service name: $service (letters, digits, . _ - only)"
if [[ -n "$host_port" ]]; then
  [[ "$host_port" =~ ^[0-9]{1,5}$ ]] && ((host_port >= 1 && host_port <= 65535)) || die "bad --host-port: $host_port"
fi
[[ "$timeout_s" =~ ^[0-9]+$ ]] && ((timeout_s > 0)) || die "bad --timeout: $timeout_s"

mkdir -p "$dir_arg"
DIR="$(cd "$dir_arg" && pwd)"
if [[ -f "$DIR/pids" ]]; then
  while read -r _ pid; do
    alive "$pid" && die "a network recorded in $DIR/pids is still running; stop it first"
  done <"$DIR/pids"
fi
[[ ! -e "$DIR/quickstart-home" ]] || die "$DIR already holds a network (quickstart-home); use a fresh directory"

if [[ -z "$ziti" ]]; then
  ziti="$("$here/get-ziti.sh")" || die "no ziti CLI (install/get-ziti.sh failed)"
fi
[[ -x "$ziti" ]] || die "not an executable: $ziti"

# ---- environment shared by every ziti command ---------------------------------------------------
# Drop whatever ZITI_* the caller has, keep the CLI's login state inside DIR, never phone home.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^ZITI_' || true)
export ZITI_CONFIG_DIR="$DIR/cli"
export ZITI_CHECK_VERSION=false
export ZITI_CTRL_BIND_ADDRESS=127.0.0.1
export ZITI_CTRL_EDGE_BIND_ADDRESS=127.0.0.1
export ZITI_CTRL_ADVERTISED_ADDRESS=127.0.0.1
export ZITI_CTRL_EDGE_ADVERTISED_ADDRESS=127.0.0.1
export ZITI_CTRL_EDGE_ALT_ADVERTISED_ADDRESS=127.0.0.1
export ZITI_ROUTER_ADVERTISED_ADDRESS=127.0.0.1
mkdir -p "$ZITI_CONFIG_DIR"

setup_log="$DIR/setup.log"
: >"$setup_log"
: >"$DIR/pids"
rm -f "$DIR/network.json"

started_ok=0
on_exit() {
  local rc=$?
  if ((started_ok == 0)); then
    log "start failed; stopping what was started (logs in $DIR)"
    stop_dir "$DIR"
    ((rc != 0)) || rc=1
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

deadline=$((SECONDS + timeout_s))
# zt WHAT ARGS...: run ziti with ARGS, output to setup.log; fail with WHAT and the log's tail.
zt() {
  local what="$1"; shift
  printf '\n$ ziti %s\n' "$*" >>"$setup_log"
  if ! "$ziti" "$@" </dev/null >>"$setup_log" 2>&1; then
    tail -n 15 "$setup_log" >&2
    die "$what failed (see $setup_log)"
  fi
}
# check_alive PID NAME LOG: fail fast when a background process died.
check_alive() {
  if ! kill -0 "$1" 2>/dev/null; then
    tail -n 20 "$3" >&2
    die "$2 exited early (see $3)"
  fi
}

[[ -z "$host_port" ]] || handed_out+="$host_port "
free_port ctrl_port || die "no free port for the controller"
free_port router_port || die "no free port for the router"
if [[ -z "$host_port" ]]; then
  free_port host_port || die "no free port for the service's host side"
fi
password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077 && printf '%s\n' "$password" >"$DIR/admin-password")
ctrl_url="https://127.0.0.1:$ctrl_port"

# ---- controller ------------------------------------------------------------------------------
log "starting the controller on 127.0.0.1:$ctrl_port (logs: $DIR/quickstart.log)"
setsid "$ziti" edge quickstart --no-router --home "$DIR/quickstart-home" \
  --ctrl-address 127.0.0.1 --ctrl-port "$ctrl_port" \
  --username admin --password "$password" \
  </dev/null >"$DIR/quickstart.log" 2>&1 &
qs_pid=$!
printf 'quickstart %s\n' "$qs_pid" >>"$DIR/pids"

# Ready = an admin login succeeds (the admin exists only once the controller is initialized).
until "$ziti" edge login "$ctrl_url" -u admin -p "$password" -y </dev/null >>"$setup_log" 2>&1; do
  check_alive "$qs_pid" "the controller (ziti edge quickstart)" "$DIR/quickstart.log"
  ((SECONDS < deadline)) || die "the controller at $ctrl_url did not accept a login within ${timeout_s}s (see $DIR/quickstart.log)"
  sleep 0.2
done
log "controller ready at $ctrl_url"

# ---- router ----------------------------------------------------------------------------------
router_name="ralph-router"
router_dir="$DIR/router"
mkdir -p "$router_dir"
zt "creating the edge router" edge create edge-router "$router_name" -o "$router_dir/router.jwt" -a public
(
  export ZITI_HOME="$router_dir" ZITI_ROUTER_PORT="$router_port" ZITI_ROUTER_LISTENER_BIND_PORT="$router_port"
  export ZITI_CTRL_ADVERTISED_PORT="$ctrl_port" ZITI_CTRL_EDGE_ADVERTISED_PORT="$ctrl_port"
  zt "writing the router config" create config router edge --routerName "$router_name" \
    --private --tunnelerMode none -o "$router_dir/router.yaml"
)
# The template listens on 0.0.0.0; listen on loopback only.
sed -i 's/tls:0\.0\.0\.0:/tls:127.0.0.1:/g' "$router_dir/router.yaml"
if grep -v '^[[:space:]]*#' "$router_dir/router.yaml" | grep -q '0\.0\.0\.0'; then
  die "the router config $router_dir/router.yaml still listens on 0.0.0.0"
fi
zt "enrolling the edge router" router enroll "$router_dir/router.yaml" --jwt "$router_dir/router.jwt"

log "starting the router on 127.0.0.1:$router_port (logs: $DIR/router.log)"
setsid "$ziti" router run "$router_dir/router.yaml" --cliagent=false \
  </dev/null >"$DIR/router.log" 2>&1 &
router_pid=$!
printf 'router %s\n' "$router_pid" >>"$DIR/pids"

# Ready = the controller reports the router online and its edge listener accepts connections.
until "$ziti" edge list edge-routers "name=\"$router_name\"" -j </dev/null 2>>"$setup_log" \
    | tr -d ' \n' | grep -q '"isOnline":true' && port_in_use "$router_port"; do
  check_alive "$router_pid" "the router" "$DIR/router.log"
  check_alive "$qs_pid" "the controller (ziti edge quickstart)" "$DIR/quickstart.log"
  ((SECONDS < deadline)) || die "the router did not come online within ${timeout_s}s (see $DIR/router.log)"
  sleep 0.2
done
log "router online at 127.0.0.1:$router_port"

# ---- policies, service, identities -----------------------------------------------------------
zt "creating the edge-router policy" edge create edge-router-policy ralph-all-routers \
  --edge-router-roles '#all' --identity-roles '#all'
zt "creating the service-edge-router policy" edge create service-edge-router-policy ralph-all-services \
  --edge-router-roles '#all' --service-roles '#all'

for id in daemon client intruder; do
  rm -f "$DIR/$id.jwt" "$DIR/$id.json"
  zt "creating the identity $id" edge create identity "$id" -o "$DIR/$id.jwt"
  zt "enrolling the identity $id" edge enroll "$DIR/$id.jwt" -o "$DIR/$id.json" --rm
done

host_cfg="$(printf '{"protocol":"tcp","address":"127.0.0.1","port":%d}' "$host_port")"
zt "creating the host.v1 config" edge create config "$service-host" host.v1 "$host_cfg"
zt "creating the service $service" edge create service "$service" --configs "$service-host"
zt "creating the Bind policy" edge create service-policy "$service-bind" Bind \
  --service-roles "@$service" --identity-roles '@daemon'
zt "creating the Dial policy" edge create service-policy "$service-dial" Dial \
  --service-roles "@$service" --identity-roles '@client'


check_alive "$qs_pid" "the controller (ziti edge quickstart)" "$DIR/quickstart.log"
check_alive "$router_pid" "the router" "$DIR/router.log"

json="$(printf '{"ziti": %s, "home": %s, "controller": %s, "identities": {"daemon": %s, "client": %s, "intruder": %s}, "service": %s, "hostPort": %d, "pid": %d, "routerPid": %d, "routerPort": %d, "cliConfigDir": %s, "admin": {"username": "admin", "passwordFile": %s}}' \
  "$(json_str "$ziti")" "$(json_str "$DIR")" "$(json_str "$ctrl_url")" \
  "$(json_str "$DIR/daemon.json")" "$(json_str "$DIR/client.json")" "$(json_str "$DIR/intruder.json")" \
  "$(json_str "$service")" "$host_port" "$qs_pid" "$router_pid" "$router_port" \
  "$(json_str "$ZITI_CONFIG_DIR")" "$(json_str "$DIR/admin-password")")"
printf '%s\n' "$json" >"$DIR/network.json"
started_ok=1
log "network up (stop with: $0 stop $DIR)"
printf '%s\n' "$json"
