# Shared helpers for the peer scripts (sourced, not run).
#
# Every peer runs on 127.0.0.1 with its data in a fresh temporary directory,
# receives the data set of `pinhouse-bench` (same seed, same sizes), and
# writes one JSON report to $RESULTS (default bench/results/latest).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RESULTS="${RESULTS:-$ROOT/bench/results/latest}"
BENCH="${BENCH:-$ROOT/target/release/pinhouse-bench}"
mkdir -p "$RESULTS"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Install Debian packages that are missing (needs root, as on the CI machine).
need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait until `curl $1` succeeds (at most 60 s).
wait_http() {
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "timed out waiting for $1"
    return 1
}

# Wait until something listens on 127.0.0.1:$1 (at most 30 s).
wait_port() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    log "timed out waiting for port $1"
    return 1
}

# Bytes used by a directory tree (apparent sizes of files).
dir_bytes() { du -sb "$1" | cut -f1; }

# Kill a process and wait for it.
stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# The data-set flags shared by every ingest run (override through env).
DATA_FLAGS=(--devices "${DEVICES:-1000}" --pins "${PINS:-4}" --steps "${STEPS:-360}"
    --interval-secs 10 --seed "${SEED:-1}")

# Write $RESULTS/peer-<name>.json from the JSON a `pinhouse-bench ... --json`
# run printed into <out>, and show it. With <disk bytes>, <divisor key> and
# <pid>, also add the data's size on disk, bytes per point (disk bytes over the
# report's <divisor key> count) and the server's resident memory.
# Usage: peer_report <name> <out> [<disk bytes> <divisor key> <pid>]
peer_report() {
    local name="$1" out="$2" bytes="${3:-}" key="${4:-}" pid="${5:-}" rss_kb=""
    if [[ -n "$pid" ]]; then
        rss_kb="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
    fi
    python3 - "$out" "$bytes" "$key" "$rss_kb" >"$RESULTS/peer-$name.json" <<'PY'
import json, sys
out, disk, key, rss_kb = sys.argv[1:5]
text = open(out).read()
report = json.loads(text[text.index("{"):])
if disk:
    report["disk_bytes"] = int(disk)
    report["bytes_per_point"] = int(disk) / report[key]
if rss_kb:
    report["server_rss_bytes"] = int(rss_kb) * 1024
print(json.dumps(report, indent=2))
PY
    cat "$RESULTS/peer-$name.json"
}
