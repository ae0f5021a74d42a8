#!/usr/bin/env bash
# shellcheck disable=SC2317  # the functions below run from traps, which shellcheck cannot see
# `make run`: the daemon and the control room together.
#
#   scripts/run_desk.sh [--config PATH]      # default configs/config.yaml
#
# The control room runs in the background (its output goes to logs/dashboard.log so it does
# not interleave with the daemon's); the daemon runs in the foreground of this script.
# Ctrl+C or SIGTERM is forwarded to the daemon, which finishes the minute in progress and
# exits 0; when the daemon exits for any reason, the control room is stopped too.
set -euo pipefail
# Job control: each background child gets its own process group with default signal
# dispositions. Without it bash starts them with SIGINT ignored, so the daemon would lose a
# Ctrl+C that arrives before it installs its own handler; and a terminal's Ctrl+C now reaches
# only make and this script, which forward exactly one stop request to the daemon.
set -m

CONFIG="configs/config.yaml"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --config)
            [[ $# -ge 2 ]] || { echo "run_desk: --config needs a file" >&2; exit 2; }
            CONFIG="$2"
            shift 2
            ;;
        *)
            echo "run_desk: unknown argument: $1 (usage: scripts/run_desk.sh [--config PATH])" >&2
            exit 2
            ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=.venv/bin/python
PORT="${DESK_DASHBOARD_PORT:-8501}"
URL="http://127.0.0.1:${PORT}"
DASHBOARD_LOG=logs/dashboard.log
[[ -f "$CONFIG" ]] || { echo "run_desk: config file not found: $CONFIG" >&2; exit 2; }
mkdir -p logs

DASHBOARD_PID=""
WATCHER_PID=""
DAEMON_PID=""

stop_pid() {
    # Signal the child's whole process group (it leads one, see set -m), so whatever it started
    # (a `make venv` still running, say) stops too. TERM first so Streamlit closes its
    # sessions; KILL only if that is ignored for 5 s.
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$WATCHER_PID"
    # Only reached with a live daemon if this script itself failed; never leave it orphaned.
    stop_pid "$DAEMON_PID"
    if [[ -n "$DASHBOARD_PID" ]] && kill -0 "$DASHBOARD_PID" 2>/dev/null; then
        stop_pid "$DASHBOARD_PID"
        echo "control room stopped"
    fi
}
trap cleanup EXIT

forward() {
    # The daemon stops cleanly on SIGINT and SIGTERM alike (the minute in progress finishes).
    if [[ -n "$DAEMON_PID" ]]; then
        kill -s "$1" "$DAEMON_PID" 2>/dev/null || true
    fi
}
trap 'forward INT' INT
trap 'forward TERM' TERM
# A closed terminal must not leave the daemon (in its own process group) running unwatched.
trap 'forward TERM' HUP

./run_dashboard.sh --config "$CONFIG" >"$DASHBOARD_LOG" 2>&1 &
DASHBOARD_PID=$!
echo "Control room: ${URL}  (log: ${DASHBOARD_LOG})"

# Say once whether the control room came up, without holding up the daemon's start.
(
    for _ in $(seq 120); do
        if ! kill -0 "$DASHBOARD_PID" 2>/dev/null; then
            echo "control room exited early; see ${DASHBOARD_LOG}" >&2
            exit 0
        fi
        if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
            "${URL}/_stcore/health" >/dev/null 2>&1; then
            echo "control room ready: ${URL}"
            exit 0
        fi
        sleep 0.5
    done
    echo "control room not answering at ${URL} after 60 s; see ${DASHBOARD_LOG}" >&2
) &
WATCHER_PID=$!

# The daemon runs as a background child so the traps above can run while it works (bash
# defers traps until a foreground child exits); `wait` is what keeps it in the foreground.
"$PY" main.py --config "$CONFIG" &
DAEMON_PID=$!
# Every child has its process group now; without monitor mode bash does not print
# "[1]+ Terminated ..." when cleanup stops the control room.
set +m
status=0
while true; do
    wait "$DAEMON_PID" && status=0 || status=$?
    # A trapped signal interrupts `wait` with a status above 128 while the daemon is still
    # stopping; wait again for its real exit code.
    kill -0 "$DAEMON_PID" 2>/dev/null || break
done
# bash remembers a reaped child's status: this yields the daemon's code even when the
# signal and the daemon's exit raced the loop above.
wait "$DAEMON_PID" 2>/dev/null && status=0 || status=$?
DAEMON_PID=""
exit "$status"
