/**
 * nginx sets this header on every request it passes on (nginx/shared/proxy.conf), replacing any
 * value a client sent. A request that carries it came from outside, through the public port:
 * it gets no internals (readiness details, metrics). A request without it reached the
 * replica's own port, which only the supervisor, Prometheus and operators can reach.
 */
export const EDGE_HEADER = 'x-meter-edge';

export function viaEdge(headers: Record<string, string | string[] | undefined>): boolean {
  return headers[EDGE_HEADER] !== undefined;
}
