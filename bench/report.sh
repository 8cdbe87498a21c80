#!/usr/bin/env bash
# The whole benchmark report in one command, on a fresh machine of the project's kind:
# builds pinhouse and pinhouse-bench, starts a pinhouse server on free loopback ports, runs
# every scenario (ingest over tcp/tls/ws/quic/http, from many devices one frame per write,
# at half load with the live probe; connections, mixed, storage (also with 1 M devices), query with
# DuckDB) and every peer script (VictoriaMetrics, InfluxDB 1.x, Mosquitto), and writes the
# JSON reports, the PNG charts and report.md (targets met / not met, ratios to the peers)
# into one directory.
#
#   bench/report.sh [OUT_DIR]        default OUT_DIR: bench/results/<UTC time>
#
# Environment knobs:
#   SCALE=full|small|tiny   sizes (full: the sizes of BENCHMARKS.md, about an hour on 2
#                           cores; small: minutes; tiny: seconds, for trying the script)
#   PROFILE=release|debug   build profile (release for real figures: a cold release build
#                           takes 30+ minutes on 2 cores)
#   PEERS=1|0               run the peer scripts (need root to apt-get install the peers)
#   DUCKDB=1|0              time the query statements in DuckDB too (pip install duckdb)
#   WORK_DIR                where data sets live during the run (default: a fresh temp dir,
#                           removed at the end; use a real disk, not tmpfs)
# Needs: cargo, python3, curl; Debian's fonts-dejavu-core for chart text (installed when
# missing and root).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="${1:-$ROOT/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}"
SCALE="${SCALE:-full}"
PROFILE="${PROFILE:-release}"
PEERS="${PEERS:-1}"
DUCKDB="${DUCKDB:-1}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

case "$SCALE" in
full)
    INGEST=(--devices 100 --values 20000 --frames-per-write 100)
    FLEET=(--devices 10000 --values 100)
    LIVE=(100 20)
    SESSIONS=10000
    MIXED=(--devices 1000 --rate 100 --dashboards 8 --sql 2 --warmup 10 --duration 60)
    STORAGE=(--values 10000000 --devices 10000 --hours 1)
    STORAGE_FLEET=(--values 20000000 --devices 1000000 --interval-s 3600 --policies interval)
    QUERY=(--devices 10000 --values 2500 --days 365)
    PEER_ENV=(DEVICES=10000 STEPS=360 SESSIONS=10000)
    ;;
small)
    INGEST=(--devices 50 --values 4000 --frames-per-write 100)
    FLEET=(--devices 2000 --values 50)
    LIVE=(50 10)
    SESSIONS=2000
    MIXED=(--devices 200 --rate 50 --dashboards 4 --sql 1 --warmup 5 --duration 20)
    STORAGE=(--values 1000000 --devices 1000 --hours 1)
    STORAGE_FLEET=(--values 2000000 --devices 100000 --interval-s 3600 --policies interval)
    QUERY=(--devices 1000 --values 500 --days 30 --runs 100)
    PEER_ENV=(DEVICES=1000 STEPS=360 SESSIONS=2000)
    ;;
tiny)
    INGEST=(--devices 3 --values 200 --frames-per-write 20)
    FLEET=(--devices 10 --values 20)
    LIVE=(3 2)
    SESSIONS=20
    MIXED=(--devices 4 --rate 100 --dashboards 2 --sql 1 --warmup 1 --duration 3)
    STORAGE=(--values 20000 --writers 2 --devices 50 --interval-s 60)
    STORAGE_FLEET=(--values 20000 --writers 2 --devices 1000 --interval-s 3600 --policies interval)
    QUERY=(--devices 20 --values 100 --days 10 --runs 5 --sql-runs 1)
    PEER_ENV=(DEVICES=50 STEPS=60 SESSIONS=20 HOLD=2 SETTLE_SECS=3)
    ;;
*)
    echo "SCALE must be full, small or tiny" >&2
    exit 2
    ;;
esac

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Chart text needs a TrueType font (see bench/src/chart.rs).
if [[ -z "${PINHOUSE_BENCH_FONT:-}" && ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
    if [[ "$(id -u)" -eq 0 ]]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null
    else
        log "no DejaVu Sans: charts need fonts-dejavu-core (or PINHOUSE_BENCH_FONT)"
    fi
fi

log "building pinhouse and pinhouse-bench ($PROFILE) into $TARGET_DIR"
# The whole workspace, not `-p`: with `-p` cargo unifies dependency features over the picked
# packages only, so the dependencies would be rebuilt apart from a `--workspace` build's.
if [[ "$PROFILE" == release ]]; then
    cargo build --locked --release --workspace
    BIN="$TARGET_DIR/release"
else
    cargo build --locked --workspace
    BIN="$TARGET_DIR/debug"
fi
BENCH="$BIN/pinhouse-bench"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK="${WORK_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
free_port() {
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, getattr(socket, sys.argv[1])); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"
}
HTTP="127.0.0.1:$(free_port SOCK_STREAM)"
HW="127.0.0.1:$(free_port SOCK_STREAM)"
TLS="127.0.0.1:$(free_port SOCK_STREAM)"
QUIC="127.0.0.1:$(free_port SOCK_DGRAM)"
export PINHOUSE_ADMIN_EMAIL="bench@example.com"
export PINHOUSE_ADMIN_PASSWORD="bench report password"
SERVER_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -z "${WORK_DIR:-}" ]] && rm -rf "$WORK"
    true
}
trap cleanup EXIT

# A fresh server (its own data dir and log) for each group of scenarios, so that none pays
# for what an earlier one left behind (memtables, flushes, compactions, rollups).
serve() {
    stop_server
    log "starting pinhouse for $1 (data in $WORK/server-$1, log $OUT/server-$1.log)"
    "$BIN/pinhouse" serve --data-dir "$WORK/server-$1" --http "$HTTP" --hardware "$HW" --tls "$TLS" \
        --quic "$QUIC" --message-rate 0 --login-rate-per-ip 0 >"$OUT/server-$1.log" 2>&1 &
    SERVER_PID=$!
    SERVER_NAME="$1"
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "http://$HTTP/healthz" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://$HTTP/healthz"
    CONNECT=(--http "http://$HTTP" --hardware "$HW" --tls "$TLS" --quic "$QUIC"
        --ca "$WORK/server-$1/tls/ca.pem")
}
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        rm -rf "${WORK:?}/server-$SERVER_NAME"
    fi
}

serve connections
log "connections ($SESSIONS idle sessions)"
"$BENCH" connections --http "http://$HTTP" --addr "$HW" --count "$SESSIONS" --sources 4 \
    --heartbeat 30 --hold 10 --server-pid "$SERVER_PID" --json-file "$OUT/connections.json"
for transport in tcp tls ws quic http; do
    serve "ingest-$transport"
    log "ingest over $transport"
    "$BENCH" ingest --transport "$transport" "${CONNECT[@]}" "${INGEST[@]}" \
        --chart-dir "$OUT" --json-file "$OUT/ingest-$transport.json"
done
serve ingest-fleet
log "ingest from ${FLEET[1]} devices over tcp, one frame per write"
"$BENCH" ingest "${CONNECT[@]}" "${FLEET[@]}" --frames-per-write 1 --sources 4 \
    --json-file "$OUT/ingest-fleet.json"
# Half of the TCP rate just measured, spread over LIVE[0] devices for LIVE[1] seconds, with
# the device → live subscriber probe.
RATE="$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(max(1, int(r["committed_values_per_sec"] / 2 / int(sys.argv[2]))))' \
    "$OUT/ingest-tcp.json" "${LIVE[0]}")"
serve ingest-live
log "ingest over tcp at half that rate ($RATE values/s × ${LIVE[0]} devices), live probe"
"$BENCH" ingest "${CONNECT[@]}" --devices "${LIVE[0]}" --rate "$RATE" \
    --values "$((RATE * LIVE[1]))" --frames-per-write 100 --live-probe \
    --json-file "$OUT/ingest-live.json"
serve mixed
log "mixed"
"$BENCH" mixed "${CONNECT[@]}" "${MIXED[@]}" --latency --chart-dir "$OUT" \
    --json-file "$OUT/mixed.json"
stop_server

log "storage (in-process)"
mkdir -p "$WORK/storage"
"$BENCH" storage --dir "$WORK/storage" "${STORAGE[@]}" --json-file "$OUT/storage.json"
# The same engine under a large fleet: costs that grow with the number of series (a
# catalog rewritten per flush once made 1 M devices 25 times slower than 10 k).
log "storage at fleet scale (in-process)"
"$BENCH" storage --dir "$WORK/storage" "${STORAGE_FLEET[@]}" --json-file "$OUT/storage-fleet.json"
QUERY_FLAGS=()
if [[ "$DUCKDB" == 1 ]]; then
    python3 -c 'import duckdb' 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "duckdb==2.0.1"
    QUERY_FLAGS+=(--duckdb)
fi
log "query (in-process${QUERY_FLAGS[*]:+, with DuckDB})"
"$BENCH" query --dir "$WORK/query" "${QUERY[@]}" "${QUERY_FLAGS[@]}" --json-file "$OUT/query.json"

if [[ "$PEERS" == 1 ]]; then
    for peer in victoriametrics influxdb mosquitto; do
        log "peer $peer"
        env "${PEER_ENV[@]}" RESULTS="$OUT" BENCH="$BENCH" "$ROOT/bench/peers/$peer.sh" \
            >"$OUT/peer-$peer.log" 2>&1 || log "peer $peer failed (see $OUT/peer-$peer.log)"
    done
fi

"$BENCH" report --results "$OUT" \
    --note "Run of \`bench/report.sh\` (SCALE=$SCALE, PROFILE=$PROFILE) at $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(date -u '+%Y-%m-%d %H:%M UTC')."
log "done: $OUT/report.md"
