#!/usr/bin/env bash
# VictoriaMetrics (Debian package) receives the bench data set as InfluxDB line
# protocol; reports values/s and bytes per stored point after a forced flush. The
# samples it stored are counted back (PromQL) and must be every value sent or every
# numeric one; bytes/point divides by that count.
source "$(dirname "$0")/common.sh"
need_apt victoria-metrics curl
dir="$(mktemp -d)"
port="$(free_port)"
# The data set is dated from 2026-01-01 (`pinhouse-bench line --start`): without a long
# retention VictoriaMetrics (default: one month) drops older samples without an error.
victoria-metrics -storageDataPath "$dir/data" -httpListenAddr "127.0.0.1:$port" \
    -retentionPeriod 100y -loggerLevel ERROR >"$dir/log" 2>&1 &
pid=$!
trap 'stop_pid $pid; rm -rf "$dir"' EXIT
wait_http "http://127.0.0.1:$port/health"
log "victoriametrics on :$port"
"$BENCH" line --url "http://127.0.0.1:$port/write" --name victoriametrics \
    --concurrency "${CONCURRENCY:-4}" "${DATA_FLAGS[@]}" --json >"$dir/line.out"
curl -fsS "http://127.0.0.1:$port/internal/force_flush" >/dev/null
curl -fsS "http://127.0.0.1:$port/internal/force_merge" >/dev/null || true
sleep "${SETTLE_SECS:-10}"
# Count the samples VictoriaMetrics stored: a peer that silently dropped data would
# otherwise look fast and small.
end=$((1767225600 + ${STEPS:-360} * 10))
stored="$(curl -fsS "http://127.0.0.1:$port/api/v1/query" \
    --data-urlencode "query=sum(count_over_time({__name__=~\"sensors_.*\"}[$((${STEPS:-360} * 10 + 60))s]))" \
    --data-urlencode "time=$end" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)')"
field() { python3 -c 'import json,sys; t=open(sys.argv[1]).read(); print(json.loads(t[t.index("{"):])[sys.argv[2]])' "$dir/line.out" "$1"; }
values="$(field values)"
numeric="$(field numeric_values)"
log "victoriametrics stored $stored samples ($values values sent, $numeric numeric)"
if [[ "$stored" == "$values" ]]; then
    divisor=values
elif [[ "$stored" == "$numeric" ]]; then
    divisor=numeric_values
else
    echo "victoriametrics stored $stored samples of $values values sent ($numeric numeric)" >&2
    exit 1
fi
bytes="$(dir_bytes "$dir/data")"
peer_report victoriametrics "$dir/line.out" "$bytes" "$divisor" "$pid"
