#!/bin/bash
# Does Redis keep every acknowledged write through a kill -9 while the disk is busy?
# `bash bench/experiments/redis-aof-sigkill.sh everysec|always [port]`
#
# A client sends INCR back to back and remembers the last value Redis acknowledged; meanwhile
# dd floods the same disk with buffered writes so that Redis's background fsync of its AOF is
# slow. After 3 s Redis is killed with SIGKILL and started again from its AOF. With
# `everysec` Redis postpones writing its AOF buffer (up to 2 s) while a background fsync is in
# progress, yet still replies, so the replayed counter can be below the acknowledged one. With
# `always` it writes and fsyncs before every reply. Not a test: whether the window opens
# depends on the disk. Results: docs/ARCHITECTURE.md#limits-of-the-promise.
set -u
mode=${1:?everysec or always}
port=${2:-56998}
dir=$(mktemp -d)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1; rm -rf "$dir"' EXIT
start() {
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync "$mode" --save '' \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 200); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.2; done
  echo "redis did not start; its log:"; tail -5 "$dir/redis.log"; exit 1
}
start
(for i in 1 2 3; do dd if=/dev/zero of="$dir/junk$i" bs=1M count=1500 status=none; done) &
flood=$!
sleep 1.5
acked=$(PID_FILE="$dir/redis.pid" PORT="$port" node -e '
  const net = require("node:net");
  const s = net.connect(Number(process.env.PORT), "127.0.0.1");
  let last = 0;
  s.on("data", (b) => { const m = String(b).match(/:(\d+)/g); if (m) last = Number(m[m.length - 1].slice(1)); s.write("INCR c\r\n"); });
  s.write("INCR c\r\n");
  setTimeout(() => { process.kill(Number(require("node:fs").readFileSync(process.env.PID_FILE, "utf8")), "SIGKILL"); console.log(last); process.exit(0); }, 3000);
')
kill "$flood" 2>/dev/null; wait 2>/dev/null
rm -f "$dir"/junk*
start
replayed=$(redis-cli -p "$port" get c)
lost=$(( acked > replayed ? acked - replayed : 0 ))
echo "appendfsync $mode: acknowledged $acked, replayed $replayed, lost $lost"
