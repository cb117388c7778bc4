// What the API's body and header checks cost per request: `node bench/experiments/body-checks-cost.mjs`
//
// The JSON parser takes the body as a Buffer and checks it is UTF-8 (node:buffer isUtf8) before
// decoding it; before 2026-12-04 Fastify decoded it to a string itself, replacing invalid bytes.
// This times both paths on a typical single submission, and the header-count check, in one process.
import { isUtf8 } from 'node:buffer';

const body = Buffer.from(JSON.stringify({ meterId: 'MTR-00012345', accountId: '1234567890', readAt: '2026-11-20T09:30:00.000Z', values: { t1: 12345.6, t2: 6789.1 }, source: 'web' }));
const rawHeaders = Array.from({ length: 24 }, (_, i) => (i % 2 ? 'value' : `x-header-${i}`));
const n = 2_000_000;
const time = (name, fn) => {
  for (let i = 0; i < 100_000; i++) fn();
  const t0 = process.hrtime.bigint();
  let sink = 0;
  for (let i = 0; i < n; i++) sink += fn();
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${name.padEnd(44)} ${ns.toFixed(1)} ns per request (${sink > 0 ? 'ok' : ''})`);
  return ns;
};
console.log(`body ${body.length} bytes, ${rawHeaders.length / 2} headers, ${n} iterations, node ${process.version}`);
const before = time('decode only (before)', () => JSON.parse(body.toString('utf8')).values.t1);
const after = time('isUtf8 + decode (now)', () => (isUtf8(body) ? JSON.parse(body.toString('utf8')).values.t1 : 0));
time('header count check', () => (rawHeaders.length > 200 ? 0 : 1));
console.log(`added by the UTF-8 check: ${(after - before).toFixed(1)} ns per request`);
