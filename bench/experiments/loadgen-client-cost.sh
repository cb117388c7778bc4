#!/bin/bash
# What does the load generator itself cost per request? `bash bench/experiments/loadgen-client-cost.sh [seconds]`
#
# Runs the built generator (dist/, so `npm run build` first) against a stub HTTP server that
# answers every submission 202 at once, at 500, 1,000 and 2,000 singles/s, and prints the
# generator's own CPU (user + system, from bash's `time` of the child) per request, less the CPU
# of starting and stopping it. The stub
# runs in its own process, so its CPU is not counted. Compare builds in one session only.
set -eu
cd "$(dirname "$0")/../.."
seconds=${1:-15}
[ -f dist/apps/loadgen/src/main.js ] || { echo "no build: run npm run build first"; exit 1; }
port_file=$(mktemp)
node -e '
  const http = require("node:http");
  let n = 0;
  const ids = new Map();
  const srv = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.url === "/health/live") return res.end("{\"status\":\"ok\"}");
      if (req.url === "/metrics") return res.end("queue_depth_jobs 0\n");
      // A resend (same idempotency key) gets the same id, as from the real service.
      const key = req.headers["idempotency-key"];
      if (!ids.has(key)) ids.set(key, `00000000-0000-4000-8000-${String(n++).padStart(12, "0")}`);
      const body = JSON.stringify({ id: ids.get(key), status: "queued" });
      res.writeHead(202, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  srv.keepAliveTimeout = 75_000;
  srv.listen(0, "127.0.0.1", () => require("node:fs").writeFileSync(process.argv[1], String(srv.address().port)));
' "$port_file" &
stub=$!
trap 'kill $stub 2>/dev/null; rm -f "$port_file"' EXIT
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
port=$(cat "$port_file")
# CPU seconds of one generator run (user + system).
cpu_of() { # rate duration
  local out user sys
  out=$( { TIMEFORMAT='%U %S'; time node dist/apps/loadgen/src/main.js --url "http://127.0.0.1:$port" --rate "$1" --duration "$2" --batch-share 0 --quiet --json >"$port_file.json" 2>"$port_file.err" || echo "the generator failed: $(tail -3 "$port_file.err")" >&2; } 2>&1 )
  read -r user sys <<<"$out"
  node -p "($user + $sys).toFixed(3)"
}
# Start-up and shutdown (loading modules, the probe): a run of 0.1 s, taken off every figure below.
fixed=$(cpu_of 10 0.1)
echo "start-up and exit: ${fixed} s of CPU"
for rate in 500 1000 2000; do
  cpu=$(cpu_of "$rate" "$seconds")
  requests=$(node -p "require('$port_file.json').requests")
  node -e "const [r, c, f, n] = process.argv.slice(1).map(Number); console.log(\`\${r}/s: \${n} requests, generator CPU \${c.toFixed(2)} s; less start-up \${((c - f) * 1000 / n).toFixed(3)} ms per request (\${((c - f) / ${seconds}).toFixed(2)} core)\`)" "$rate" "$cpu" "$fixed" "$requests"
done
rm -f "$port_file.json" "$port_file.err"
