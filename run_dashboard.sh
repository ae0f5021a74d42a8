#!/usr/bin/env bash
# Start the Streamlit control room on its own, inside the project's .venv.
#
#   ./run_dashboard.sh                      # watch the store of configs/config.yaml (what the daemon writes)
#   ./run_dashboard.sh --config PATH        # watch the store named in another config
#   ./run_dashboard.sh --store DIR          # watch a folder holding journal/ and desk.db (a backtest's output)
#   DESK_DASHBOARD_PORT=8600 ./run_dashboard.sh
#
# The control room reads the store (its operator actions only queue commands in the store's
# inbox and edit the config file), so it runs with or without the daemon. Which store: see
# dashboard/common.py (DESK_STORE_DIR, else DESK_CONFIG's store section). Server settings live
# in .streamlit/config.toml.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

STORE_DIR=""
CONFIG_PATH=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store)
            [[ $# -ge 2 ]] || { echo "run_dashboard: --store needs a directory" >&2; exit 2; }
            STORE_DIR="$2"
            shift 2
            ;;
        --config)
            [[ $# -ge 2 ]] || { echo "run_dashboard: --config needs a file" >&2; exit 2; }
            CONFIG_PATH="$2"
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "run_dashboard: unknown argument: $1 (see --help)" >&2
            exit 2
            ;;
    esac
done

# Options override the environment: with either one given, a DESK_STORE_DIR or DESK_CONFIG
# inherited from the shell must not point the control room at a different store (DESK_STORE_DIR
# wins over DESK_CONFIG), e.g. away from the daemon that `make run` starts next to it.
if [[ -n "$STORE_DIR" || -n "$CONFIG_PATH" ]]; then
    unset DESK_STORE_DIR DESK_CONFIG
fi
# Resolve user paths before changing directory, so relative paths mean what the caller meant.
if [[ -n "$STORE_DIR" ]]; then
    [[ -d "$STORE_DIR" ]] || { echo "run_dashboard: store directory not found: $STORE_DIR" >&2; exit 2; }
    export DESK_STORE_DIR
    DESK_STORE_DIR="$(cd "$STORE_DIR" && pwd)"
fi
if [[ -n "$CONFIG_PATH" ]]; then
    [[ -f "$CONFIG_PATH" ]] || { echo "run_dashboard: config file not found: $CONFIG_PATH" >&2; exit 2; }
    export DESK_CONFIG
    DESK_CONFIG="$(cd "$(dirname "$CONFIG_PATH")" && pwd)/$(basename "$CONFIG_PATH")"
fi

# The repository root: dashboard/app.py and .streamlit/config.toml are found relative to it,
# and a config's relative store paths resolve against it, as they do for the daemon.
cd "$(dirname "${BASH_SOURCE[0]}")"

# Same bootstrap as `make run` / `make test`: creates .venv from requirements.txt when it is
# missing or stale, and is a no-op otherwise.
if [[ ! -x .venv/bin/python || ! -f .venv/.requirements.stamp || requirements.txt -nt .venv/.requirements.stamp ]]; then
    make --no-print-directory venv
fi

PORT="${DESK_DASHBOARD_PORT:-8501}"
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "run_dashboard: DESK_DASHBOARD_PORT must be a port number, got: $PORT" >&2; exit 2; }

echo "Control room: http://127.0.0.1:${PORT}"
# Loopback only (also in .streamlit/config.toml; repeated here so a missing or edited file
# can never expose the operator's controls on the network). Headless: never try to open a
# browser or ask for an e-mail address on first run, which would block an unattended start.
exec .venv/bin/python -m streamlit run dashboard/app.py \
    --server.address 127.0.0.1 \
    --server.port "$PORT" \
    --server.headless true \
    --browser.gatherUsageStats false
