import { createServer, type Server, type Socket, connect } from 'node:net';
import { freePort } from '../../scripts/lib/stack.mjs';

/**
 * A userspace TCP proxy on 127.0.0.1 that can fail the way a network does (this kernel has no
 * `tc netem`): cut every connection at once and refuse new ones (a partition), drop every byte (a blackhole: only timeouts notice), or cut a
 * connection at the moment the client sends a given byte sequence, after forwarding it, so the
 * server acts on it but its answer never comes back (a cut during COMMIT).
 */
export class FaultyProxy {
  private server?: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  private partitioned = false;
  private blackholed = false;
  private cutOn?: { marker: Buffer; remaining: number };
  /** How many connections were cut on the marker. */
  cuts = 0;
  port = 0;

  constructor(private readonly targetPort: number) {}

  get url(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port = await freePort();
    this.server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    return this;
  }

  private accept(client: Socket): void {
    if (this.partitioned) {
      client.destroy();
      return;
    }
    if (this.blackholed) {
      // Accepted and then silent, as behind a firewall that drops packets: only timeouts notice.
      client.on('error', () => undefined).resume();
      this.pairs.add([client, client]);
      return;
    }
    const upstream = connect(this.targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    upstream.pipe(client);
    client.on('data', (chunk: Buffer) => {
      if (this.blackholed) return;
      const cut = this.cutOn;
      if (cut && cut.remaining > 0 && chunk.includes(cut.marker)) {
        cut.remaining--;
        this.cuts++;
        // The server gets the bytes and acts on them; its reply is never relayed.
        upstream.unpipe(client);
        upstream.write(chunk, () => setTimeout(close, 50));
        return;
      }
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
  }

  /** Cut the next `count` connections that send `marker`, right after forwarding it. */
  cutWhenClientSends(marker: string | Buffer, count = 1): void {
    this.cutOn = { marker: Buffer.isBuffer(marker) ? marker : Buffer.from(marker), remaining: count };
  }

  /** A partition: every open connection is cut and new ones are refused until heal(). */
  partition(): void {
    this.partitioned = true;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** Packets dropped both ways: open connections go silent and new ones connect but get no answer. */
  blackhole(): void {
    this.blackholed = true;
    for (const [client, upstream] of this.pairs) {
      if (client !== upstream) upstream.unpipe(client);
    }
  }

  heal(): void {
    this.partitioned = false;
    if (this.blackholed) {
      this.blackholed = false;
      // The silent connections are dead to both ends now; cut them so the clients reconnect.
      for (const [a, b] of this.pairs) {
        a.destroy();
        b.destroy();
      }
      this.pairs.clear();
    }
  }

  async stop(): Promise<void> {
    this.partition();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
