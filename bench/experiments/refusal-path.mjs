// The spike's floor: how fast can this machine refuse? `node bench/experiments/refusal-path.mjs [seconds] [rates...]`
//
// Runs the project's nginx config (rendered as under `npm start`, client keep-alive off) with no
// replica at all, so every submission gets nginx's own 503 + Retry-After (the answer a spike's
// excess gets once every replica is at NGINX_UPSTREAM_MAX_CONNS), and drives it with the built
// load generator (dist/, so `npm run build` first) at each rate. Prints, per rate, the client's
// refusal p50/p99 (from the intended send time, so the generator's own lag counts) and the CPU
// of nginx and of the generator. Nothing else runs: this is the best the spike step can do on
// this machine, the generator included. GENERATOR_NODE_FLAGS=--trace-gc adds the generator's GC pauses.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NginxProcess, nginxSettings } from '../../scripts/cluster/nginx.mjs';
import { root } from '../../scripts/lib/setup.mjs';
import { freePort } from '../../scripts/lib/stack.mjs';
import { processSnapshot, treeCpuSeconds } from '../lib/cpu.mjs';

const [secondsArg, ...rateArgs] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 20);
const rates = rateArgs.length ? rateArgs.map(Number) : [2000, 4000, 6000, 8000];
const prefix = mkdtempSync(join(tmpdir(), 'mi-refusal-'));
const port = await freePort();
const nginx = new NginxProcess(prefix, port, nginxSettings({ ...process.env, NGINX_TLS: 'off', NGINX_RATE_PER_SECOND: '1000000', NGINX_RATE_BURST: '1000000' }));
try {
  await nginx.start([]);
  for (const rate of rates) {
    const nginxBefore = treeCpuSeconds(processSnapshot(), nginx.child.pid);
    const gen = spawn(process.execPath, [...(process.env.GENERATOR_NODE_FLAGS ?? '').split(' ').filter(Boolean), 'dist/apps/loadgen/src/main.js', 'run', '--url', `http://127.0.0.1:${port}`, '--rate', String(rate), '--duration', String(seconds), '--batch-share', '0', '--json', '--quiet', '--max-in-flight', '20000'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    gen.stdout.on('data', (c) => (out += c));
    let genCpu = 0;
    const sampler = setInterval(() => (genCpu = Math.max(genCpu, treeCpuSeconds(processSnapshot(), gen.pid))), 200);
    await new Promise((resolve) => gen.once('exit', resolve));
    clearInterval(sampler);
    const nginxCpu = treeCpuSeconds(processSnapshot(), nginx.child.pid) - nginxBefore;
    // With GENERATOR_NODE_FLAGS=--trace-gc, V8's GC lines ("[pid:isolate] ...") share stdout with the summary.
    const lines = out.split('\n');
    const s = JSON.parse(lines.filter((l) => !l.startsWith('[')).join('\n'));
    const pauses = lines.map((l) => /(Scavenge|Mark-Compact)[^,]*, ([\d.]+) \/ [\d.]+ ms/.exec(l)).filter(Boolean);
    if (pauses.length) {
      const by = (kind) => pauses.filter((m) => m[1] === kind).map((m) => Number(m[2]));
      for (const kind of ['Scavenge', 'Mark-Compact']) {
        const ms = by(kind);
        if (ms.length) console.log(`  generator GC ${kind}: ${ms.length} pauses, total ${ms.reduce((a, b) => a + b, 0).toFixed(0)} ms, longest ${Math.max(...ms).toFixed(0)} ms`);
      }
    }
    const r = s.refusals;
    console.log(
      `${rate}/s: achieved ${s.achievedRequestsPerSec}/s, ${JSON.stringify(s.byStatus)}, generator fell behind ${s.clientOverloaded}; ` +
        `refusals p50 ${r.latencyMs.p50.toFixed(1)} ms, p99 ${r.latencyMs.p99.toFixed(1)} ms, max ${r.latencyMs.max.toFixed(0)} ms, ${r.withoutRetryAfter} without Retry-After; ` +
        `CPU: nginx ${(nginxCpu / seconds).toFixed(2)} core, generator >= ${(genCpu / seconds).toFixed(2)} core`,
    );
  }
} finally {
  await nginx.stop();
  rmSync(prefix, { recursive: true, force: true });
}
