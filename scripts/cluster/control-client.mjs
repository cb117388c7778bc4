// The one client of the supervisor's control socket (<data folder>/supervisor.sock), for
// `npm run cluster`, the benchmark and the tests. Node built-ins only.
import { request } from 'node:http';

/**
 * One call: resolves with the status code and the parsed JSON answer whatever the status;
 * rejects only when the socket cannot be reached (err.code ENOENT, ECONNREFUSED, …).
 */
export function controlCall(socketPath, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      let data = '';
      res.on('data', (chunk) => (data += chunk));
      res.on('end', () => {
        let parsed;
        try {
          parsed = JSON.parse(data);
        } catch {
          parsed = { error: data };
        }
        resolve({ status: res.statusCode, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** One call that must succeed: resolves with the answer of a 200, rejects with "<status>: <answer>" otherwise. */
export async function control(socketPath, method, path, body) {
  const res = await controlCall(socketPath, method, path, body);
  if (res.status !== 200) throw new Error(`${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}
