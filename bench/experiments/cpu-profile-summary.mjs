// Where a process's CPU went: `node bench/experiments/cpu-profile-summary.mjs <file.cpuprofile> [top]`
//
// Summarises a V8 CPU profile (the files MI_CPU_PROF_DIR makes, see per-job-cost.mjs): self time
// by function and by package (node_modules package, the app's dist/ folder, Node's own modules,
// native frames such as writev or the garbage collector), each as a share of the busy time (idle
// excluded). Startup (module loading) is in the profile too and shows up as node:internal/modules.
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: node bench/experiments/cpu-profile-summary.mjs <file.cpuprofile> [top]');
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const sampled = new Map();
profile.samples.forEach((id, i) => sampled.set(id, (sampled.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

function packageOf({ url, functionName }) {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.includes('/dist/')) return `app:${url.split('/dist/')[1].split('/').slice(0, 3).join('/')}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url ? url : `native:${functionName || '?'}`;
}

const byFunction = new Map();
const byPackage = new Map();
let busy = 0;
let total = 0;
for (const node of profile.nodes) {
  const t = sampled.get(node.id) ?? 0;
  total += t;
  if (!t || node.callFrame.functionName === '(idle)') continue;
  busy += t;
  const cf = node.callFrame;
  const fn = `${cf.functionName || '(anonymous)'} ${cf.url.split('/').slice(-3).join('/')}:${cf.lineNumber}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + t);
  byPackage.set(packageOf(cf), (byPackage.get(packageOf(cf)) ?? 0) + t);
}

const share = (t) => `${((t / busy) * 100).toFixed(1).padStart(5)} %`;
console.log(`busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s profiled`);
console.log('\nself time by function');
for (const [name, t] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${share(t)}  ${name}`);
console.log('\nself time by package');
for (const [name, t] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${share(t)}  ${name}`);
