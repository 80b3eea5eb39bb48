/**
 * A TCP proxy in front of a test registry that slows both directions to a set rate, so that a
 * download (create) or an upload (import) is still in progress when a test interrupts it, and
 * counts the bytes it passed each way.
 *
 * Test support, not product code: plain byte forwarding, no HTTP parsing, no faults.
 */
import { connect, createServer, type Socket } from 'node:net';
import { listenLocal } from './listen.js';

export interface SlowProxy {
  /** `127.0.0.1:PORT`, for references. */
  host: string;
  /** Bytes per second in each direction; Infinity for no limit. */
  rate: number;
  /** Bytes passed from the registry to clients. */
  served: number;
  /** Bytes passed from clients to the registry. */
  received: number;
  close(): Promise<void>;
}

/** Forward `from` to `to`, pausing `from` after each chunk for as long as the rate says. */
function forward(from: Socket, to: Socket, proxy: SlowProxy, count: (n: number) => void): void {
  from.on('data', (chunk: Buffer) => {
    count(chunk.length);
    const drained = to.write(chunk);
    if (proxy.rate !== Infinity) {
      from.pause();
      setTimeout(() => from.resume(), (chunk.length / proxy.rate) * 1000);
    } else if (!drained) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('end', () => to.end());
}

export async function startSlowProxy(target: string): Promise<SlowProxy> {
  const [targetHost, targetPort] = target.split(':') as [string, string];
  const server = createServer((client) => {
    const upstream = connect(Number(targetPort), targetHost);
    // The upstream connection dies with its client (and the client with the server: listenLocal).
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', close);
      s.on('close', close);
    }
    forward(client, upstream, proxy, (n) => (proxy.received += n));
    forward(upstream, client, proxy, (n) => (proxy.served += n));
  });
  const listening = await listenLocal(server);
  const proxy: SlowProxy = {
    host: listening.host,
    rate: Infinity,
    served: 0,
    received: 0,
    close: () => listening.close(),
  };
  return proxy;
}
