# Shared settings for the dev/test stack scripts. Sourced, never run.
# Everything the stack writes lives under $JVNC_STATE (default /var/lib/jupyter-vnc-dev), so a
# newcomer can see and delete it in one place.

set -euo pipefail

JVNC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JVNC_STATE=${JVNC_STATE:-/var/lib/jupyter-vnc-dev}
JVNC_VENV=${JVNC_VENV:-/opt/jupyter-vnc/venv}
JVNC_LOGS=$JVNC_STATE/logs
JVNC_REDIS_PORT=${JVNC_REDIS_PORT:-16379}
JVNC_HUB_PORT=${JVNC_HUB_PORT:-8000}
# The demo's users and the tests' users are different people: a test run never touches a desktop
# someone has open in the demo.
JVNC_DEMO_USERS=${JVNC_DEMO_USERS:-"ada ben cleo"}
JVNC_TEST_USERS=${JVNC_TEST_USERS:-"alice bob carol dave erin fred gina hugo iris jack kate liam mona nick omar pete"}
JVNC_OFFSITE_USERS=${JVNC_OFFSITE_USERS:-"olga"}  # the user of the hub off the submit host (tests)
JVNC_SSH_PORT=${JVNC_SSH_PORT:-2222}
APPTAINER_PREFIX=${APPTAINER_PREFIX:-/opt/apptainer-sid}

log() { printf '[devstack] %s\n' "$*" >&2; }
die() { printf '[devstack] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "run this as root (it installs packages and starts system daemons)"
}

# A pid file names a live process only if that process exists and is not a zombie: stopped daemons
# linger as zombies on these machines, and `kill -0` alone would call them alive.
pid_alive() {
  local pid=$1 state
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
  [ "$state" != Z ] && [ "$state" != X ]
}

pidfile_alive() { [ -f "$1" ] && pid_alive "$(cat "$1")"; }

# Stop the process named by a pid file: TERM, wait up to ~5 s, then KILL.
stop_pidfile() {
  local file=$1 name=$2 pid i
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$file"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2 i
  shift 2
  for i in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$what did not come up within ${secs}s"
}

# Which code a hub started now runs: the checkout whose jupyter_vnc the venv imports (or $1), and a hash
# of its Python package and templates. Each hub records it as it starts ($DIR/code-stamp); the tests
# restart a running hub whose record is not their own checkout's (tests/conftest.py), so they never
# test code older than the checkout.
code_stamp() {
  local root=${1:-} sum
  if [ -z "$root" ]; then
    root=$("$JVNC_VENV/bin/python" -c 'import jupyter_vnc, os
print(os.path.dirname(os.path.dirname(os.path.abspath(jupyter_vnc.__file__))))' 2>/dev/null) || root=unknown
  fi
  sum=$(cd "$root" 2>/dev/null && find jupyter_vnc templates devstack -type f \( -name '*.py' -o -name '*.j2' -o -name '*.html' \) \
    -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-16) || sum=unknown
  echo "$root $sum"
}
