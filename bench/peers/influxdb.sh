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
rss_kb="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
python3 - "$dir/line.out" "$bytes" "$rss_kb" >"$RESULTS/peer-influxdb.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
report = json.loads(text[text.index("{"):])
report["disk_bytes"] = int(sys.argv[2])
report["bytes_per_point"] = int(sys.argv[2]) / report["values"]
report["server_rss_bytes"] = int(sys.argv[3]) * 1024
print(json.dumps(report, indent=2))
PY
cat "$RESULTS/peer-influxdb.json"
