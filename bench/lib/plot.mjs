// Throughput against p99 latency, one line per variant, log-log, as a PNG.
import { Canvas } from './png.mjs';

const W = 1100;
const H = 700;
const M = { left: 110, right: 300, top: 75, bottom: 90 };
const GRID = [235, 235, 235];
const AXIS = [60, 60, 60];

function niceLogTicks(min, max) {
  const ticks = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min && v <= max) ticks.push(v);
    }
  }
  return ticks;
}

const fmt = (v) => (v >= 1000 ? `${v / 1000}K` : String(v));

/** A canvas with the grid at the ticks, both axes, the title and the axis labels. */
function frame({ title, xLabel, yLabel, xTicks, yTicks, px, py, xText }) {
  const c = new Canvas(W, H);
  for (const t of xTicks) {
    c.line(px(t), M.top, px(t), H - M.bottom, GRID);
    c.text(px(t) - Canvas.textWidth(xText(t)) / 2, H - M.bottom + 8, xText(t), AXIS);
  }
  for (const t of yTicks) {
    c.line(M.left, py(t), W - M.right, py(t), GRID);
    c.text(M.left - Canvas.textWidth(fmt(t)) - 8, py(t) - 7, fmt(t), AXIS);
  }
  c.line(M.left, H - M.bottom, W - M.right, H - M.bottom, AXIS, 2);
  c.line(M.left, M.top, M.left, H - M.bottom, AXIS, 2);
  c.text(M.left, 12, title, [0, 0, 0]);
  c.text(M.left + (W - M.left - M.right) / 2 - Canvas.textWidth(xLabel) / 2, H - 40, xLabel, AXIS);
  c.text(10, M.top - 28, yLabel, AXIS);
  return c;
}

/**
 * series: [{ name, color: [r,g,b], points: [{ x, y, ok }] }] drawn as lines with dots (hollow when
 * the step failed the rule); vlines: [{ name, x, color }] (ceilings); hline: { name, y } (the rule).
 */
export function plotThroughputLatency({ title, xLabel, yLabel, series, vlines = [], hline }) {
  const xs = [...series.flatMap((s) => s.points.map((p) => p.x)), ...vlines.map((v) => v.x)].filter((v) => v > 0);
  const ys = [...series.flatMap((s) => s.points.map((p) => p.y)), hline?.y ?? 1].filter((v) => v > 0);
  const xMin = 10 ** Math.floor(Math.log10(Math.min(...xs, 100)));
  const xMax = 10 ** Math.ceil(Math.log10(Math.max(...xs, 1000)));
  const yMin = 10 ** Math.floor(Math.log10(Math.max(Math.min(...ys), 0.1)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys, 100)));
  const px = (x) => M.left + ((Math.log10(Math.max(x, xMin)) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - ((Math.log10(Math.min(Math.max(y, yMin), yMax)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (H - M.top - M.bottom);

  const c = frame({ title, xLabel, yLabel, xTicks: niceLogTicks(xMin, xMax), yTicks: niceLogTicks(yMin, yMax), px, py, xText: fmt });

  let legendY = M.top;
  const legend = (color, name, dashed) => {
    c.line(W - M.right + 20, legendY + 7, W - M.right + 50, legendY + 7, color, 3, dashed ? 4 : 0);
    c.text(W - M.right + 58, legendY, name.slice(0, 19), color, 2);
    legendY += 26;
  };
  if (hline) {
    c.line(M.left, py(hline.y), W - M.right, py(hline.y), [200, 0, 0], 1, 6);
    legend([200, 0, 0], hline.name, true);
  }
  for (const v of vlines) {
    c.line(px(v.x), M.top, px(v.x), H - M.bottom, v.color, 2, 8);
    legend(v.color, v.name, true);
  }
  for (const s of series) {
    const pts = [...s.points].filter((p) => p.x > 0 && p.y > 0).sort((a, b) => a.x - b.x);
    for (let i = 1; i < pts.length; i++) c.line(px(pts[i - 1].x), py(pts[i - 1].y), px(pts[i].x), py(pts[i].y), s.color, 2);
    for (const p of pts) {
      c.dot(px(p.x), py(p.y), 6, s.color);
      if (p.ok === false) c.dot(px(p.x), py(p.y), 3, [255, 255, 255]);
    }
    legend(s.color, s.name, false);
  }
  c.text(W - M.right + 20, legendY + 10, 'HOLLOW: FAILED', AXIS, 2);
  c.text(W - M.right + 20, legendY + 30, 'THE RULE', AXIS, 2);
  return c.toPng();
}

/** Linear ticks at a round step, about `count` of them. */
function linearTicks(min, max, count = 6) {
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let t = Math.ceil(min / step) * step; t <= max + 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/**
 * Values over time on linear axes (the soak's memory and queue depth): series as
 * [{ name, color, points: [{ x: seconds, y }] }]; the y axis starts at 0, so a flat line looks flat.
 */
export function plotTimeSeries({ title, xLabel, yLabel, series }) {
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const xMax = Math.max(...xs, 1);
  const yMax = Math.max(...ys, 1) * 1.1;
  const px = (x) => M.left + (x / xMax) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - (y / yMax) * (H - M.top - M.bottom);
  const c = frame({ title, xLabel, yLabel, xTicks: linearTicks(0, xMax), yTicks: linearTicks(0, yMax), px, py, xText: String });
  let legendY = M.top;
  for (const s of series) {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    for (let i = 1; i < pts.length; i++) c.line(px(pts[i - 1].x), py(pts[i - 1].y), px(pts[i].x), py(pts[i].y), s.color, 2);
    c.line(W - M.right + 20, legendY + 7, W - M.right + 50, legendY + 7, s.color, 3);
    c.text(W - M.right + 58, legendY, s.name.slice(0, 19), s.color, 2);
    legendY += 26;
  }
  return c.toPng();
}
