#!/usr/bin/env bash
# usage: run.sh <clone dir> <label>; npm start with request logs on (the default), wrk 64 connections 20 s
set -u
dir=$1; label=$2; data=/tmp/logbench/data-$label; port=18080
rm -rf "$data"
cd "$dir"
NGINX_RATE_PER_SECOND=1000000 NGINX_RATE_BURST=1000000 PG_PORT=15432 PG_REPLICA_PORT=15433 REDIS_PORT=16379 \
  node scripts/start.mjs --data-dir "$data" --port $port > /tmp/logbench/$label.start.log 2>&1 &
sup=$!
for i in $(seq 120); do grep -q 'ready on' /tmp/logbench/$label.start.log && break; sleep 1; done
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
apis=$(node -p "require('$data/cluster.json').api.map(a=>a.pid).join(' ')")
export READ_AT=$(date -u -d '-5 min' +%Y-%m-%dT%H:%M:%SZ)
# warm-up
wrk -t2 -c64 -d5s -s /tmp/logbench/post.lua http://127.0.0.1:$port >/dev/null 2>&1
s0=$(cpu $sup); a0=0; for p in $apis; do a0=$((a0 + $(cpu $p))); done
wrk -t2 -c64 -d20s --latency -s /tmp/logbench/post.lua http://127.0.0.1:$port > /tmp/logbench/$label.wrk.txt 2>&1
s1=$(cpu $sup); a1=0; for p in $apis; do a1=$((a1 + $(cpu $p))); done
rps=$(grep Requests/sec /tmp/logbench/$label.wrk.txt | awk '{print $2}')
non2xx=$(grep -i 'Non-2xx' /tmp/logbench/$label.wrk.txt | awk '{print $NF}')
p99=$(grep ' 99%' /tmp/logbench/$label.wrk.txt | awk '{print $2}')
logbytes=$(cat $data/logs/api-*.log | wc -c)
echo "$label: $rps req/s, p99 $p99, non-2xx ${non2xx:-0}, supervisor CPU $(( (s1 - s0) * 10 )) ms, API CPU $(( (a1 - a0) * 10 )) ms over 20 s, api logs ${logbytes} bytes"
kill -INT $sup; wait $sup
