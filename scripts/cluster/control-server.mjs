// The supervisor's control socket (<data folder>/supervisor.sock): HTTP over a Unix socket, for
// `npm run cluster`, the benchmark and the tests (their one client: control-client.mjs).
//   GET  /status                        every part, with its health
//   POST /scale {"api": N, "writers": M}
//   POST /stop/<postgres|redis>, POST /start/<postgres|redis>   outage drills
// Node built-ins only.
import { createServer } from 'node:http';

/**
 * @param {object} handlers
 * @param {() => string | undefined} handlers.refusal  why no command is taken now (503), or undefined
 * @param {() => Promise<object>} handlers.status
 * @param {(target: { api?: number, writers?: number }) => Promise<void>} handlers.scale
 * @param {(part: 'postgres' | 'redis', action: 'stop' | 'start') => Promise<void>} handlers.drill
 */
export function createControlServer({ refusal, status, scale, drill }) {
  return createServer((req, res) => {
    const reply = (code, body) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const refused = refusal();
    if (refused) return reply(503, { error: refused });
    if (req.method === 'GET' && req.url === '/status') {
      status().then((s) => reply(200, s), (err) => reply(500, { error: String(err) }));
      return;
    }
    if (req.method === 'POST' && req.url === '/scale') {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        let target;
        try {
          target = JSON.parse(body);
        } catch {
          return reply(400, { error: 'body must be JSON {"api": N, "writers": M}' });
        }
        for (const [k, v] of Object.entries(target)) {
          if (!['api', 'writers'].includes(k) || !Number.isInteger(v) || v < (k === 'api' ? 1 : 0) || v > 32) {
            return reply(400, { error: `${k}=${v}: expected api=1..32 and writers=0..32` });
          }
        }
        scale(target)
          .then(() => status())
          .then((s) => reply(200, s), (err) => reply(500, { error: String(err) }));
      });
      return;
    }
    const drillPath = /^\/(stop|start)\/(postgres|redis)$/.exec(req.url ?? '');
    if (req.method === 'POST' && drillPath) {
      drill(drillPath[2], drillPath[1]).then(() => reply(200, { [drillPath[2]]: drillPath[1] === 'stop' ? 'stopped' : 'started' }), (err) => reply(500, { error: String(err) }));
      return;
    }
    reply(404, { error: 'GET /status, POST /scale, POST /stop/<postgres|redis> or POST /start/<postgres|redis>' });
  });
}
