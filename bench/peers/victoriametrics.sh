#!/usr/bin/env bash
# VictoriaMetrics (Debian package) receives the bench data set as InfluxDB line
# protocol; reports values/s and bytes per stored point after a forced flush.
# VictoriaMetrics keeps numeric fields only, so bytes/point divides by the
# numeric values (the text pin is dropped by the peer, not by us).
source "$(dirname "$0")/common.sh"
need_apt victoria-metrics curl
dir="$(mktemp -d)"
port="$(free_port)"
victoria-metrics -storageDataPath "$dir/data" -httpListenAddr "127.0.0.1:$port" \
    -loggerLevel ERROR >"$dir/log" 2>&1 &
pid=$!
trap 'stop_pid $pid; rm -rf "$dir"' EXIT
wait_http "http://127.0.0.1:$port/health"
log "victoriametrics on :$port"
"$BENCH" line --url "http://127.0.0.1:$port/write" --name victoriametrics \
    --concurrency "${CONCURRENCY:-4}" "${DATA_FLAGS[@]}" --json >"$dir/line.out"
curl -fsS "http://127.0.0.1:$port/internal/force_flush" >/dev/null
curl -fsS "http://127.0.0.1:$port/internal/force_merge" >/dev/null || true
sleep "${SETTLE_SECS:-10}"
bytes="$(dir_bytes "$dir/data")"
peer_report victoriametrics "$dir/line.out" "$bytes" numeric_values "$pid"
