#!/usr/bin/env bash
# InfluxDB 1.x (Debian package) receives the bench data set as line protocol;
# reports values/s and bytes per point once the cache is snapshotted and the
# shards fully compacted (cold durations shortened so that happens in seconds).
source "$(dirname "$0")/common.sh"
need_apt influxdb curl
dir="$(mktemp -d)"
port="$(free_port)"
rpc="$(free_port)"
cat >"$dir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "2s"
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
influxd -config "$dir/influxdb.conf" >"$dir/log" 2>&1 &
pid=$!
trap 'stop_pid $pid; rm -rf "$dir"' EXIT
wait_http "http://127.0.0.1:$port/ping"
curl -fsS -XPOST "http://127.0.0.1:$port/query" --data-urlencode 'q=CREATE DATABASE bench' >/dev/null
log "influxdb on :$port"
"$BENCH" line --url "http://127.0.0.1:$port/write?db=bench" --name influxdb \
    --concurrency "${CONCURRENCY:-4}" "${DATA_FLAGS[@]}" --json >"$dir/line.out"
sleep "${SETTLE_SECS:-15}"
bytes="$(( $(dir_bytes "$dir/data") + $(dir_bytes "$dir/wal") ))"
peer_report influxdb "$dir/line.out" "$bytes" values "$pid"
