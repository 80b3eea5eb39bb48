/**
 * The small servers tests stand up on 127.0.0.1 (stand-in registries, token servers, proxies):
 * listen on a free port, and close without waiting for clients that keep a connection open.
 */
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server, Socket } from 'node:net';
import { testPki } from './registry.js';

/** A server listening on 127.0.0.1. */
export interface Listening {
  port: number;
  /** `127.0.0.1:PORT`, for references. */
  host: string;
  /** Destroy every open connection, then close the server. */
  close(): Promise<void>;
}

/**
 * Listen on a free 127.0.0.1 port. Works for `node:net`, `node:http` and `node:https` servers: the
 * connections are tracked at the TCP level, so `close()` also ends keep-alive and half-read ones.
 * @example
 *   const { host, close } = await listenLocal(createServer((socket) => socket.destroy()));
 */
export async function listenLocal(server: Server): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** An HTTP(S) server of a test's own, listening on 127.0.0.1. */
export interface HttpFixture extends Listening {
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`. */
  url: string;
}

/**
 * Serve `handler` over HTTP, or over HTTPS with the test PKI's server certificate (it names
 * 127.0.0.1 and localhost; clients trust `testPki().caFile`).
 * @example
 *   const server = await serveHttp((req, res) => res.writeHead(200).end('{}'));
 *   try { ... `${server.url}/v2/` ... } finally { await server.close(); }
 */
export async function serveHttp(handler: (req: IncomingMessage, res: ServerResponse) => void, opts: { tls?: boolean } = {}): Promise<HttpFixture> {
  let server: Server;
  if (opts.tls === true) {
    const pki = await testPki();
    server = createHttpsServer({ key: await readFile(pki.keyFile), cert: await readFile(pki.certFile) }, handler as RequestListener);
  } else {
    server = createHttpServer(handler);
  }
  const listening = await listenLocal(server);
  return { ...listening, url: `${opts.tls === true ? 'https' : 'http'}://${listening.host}` };
}
