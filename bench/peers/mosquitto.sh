#!/usr/bin/env bash
# Mosquitto (Debian package) holds $SESSIONS idle MQTT sessions with a
# keep-alive; reports the broker's resident memory per session.
source "$(dirname "$0")/common.sh"
need_apt mosquitto
dir="$(mktemp -d)"
port="$(free_port)"
cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_keepalive 65535
CONF
mosquitto -c "$dir/mosquitto.conf" >"$dir/log" 2>&1 &
pid=$!
trap 'stop_pid $pid; rm -rf "$dir"' EXIT
wait_port "$port"
log "mosquitto on :$port"
"$BENCH" connections --target mqtt --addr "127.0.0.1:$port" --count "${SESSIONS:-10000}" \
    --sources "${SOURCES:-4}" --heartbeat "${HEARTBEAT:-30}" --hold "${HOLD:-10}" \
    --server-pid "$pid" --json >"$dir/conn.out"
peer_report mosquitto "$dir/conn.out"
