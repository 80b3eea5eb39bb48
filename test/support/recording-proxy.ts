/**
 * A small HTTP reverse proxy in front of a test registry that records every request (method, path,
 * status, response body bytes) and can answer a request itself instead of forwarding it. Tests use
 * it to prove how many bytes a run fetched, and to fail one chosen request (a tag PUT) the way a
 * real registry would, without touching the registry.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenLocal } from './listen.js';

export interface ProxiedRequest {
  method: string;
  path: string;
  /** Request headers as received (lower-case names). */
  headers: IncomingMessage['headers'];
  status: number;
  /** Response body bytes sent to the client. */
  bytes: number;
}

/** An answer of the proxy's own, instead of the registry's. */
export interface CannedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface RecordingProxy {
  /** `127.0.0.1:PORT`: use it as the registry host. */
  host: string;
  readonly requests: ProxiedRequest[];
  /** Decide per request: an answer of its own, or undefined to forward. */
  intercept?: (req: IncomingMessage) => CannedAnswer | undefined;
  /** Called as each request arrives, with its 1-based number (e.g. to kill the client there). */
  onRequest?: (req: IncomingMessage, n: number) => void;
  /** Response body bytes per second to clients; Infinity (the default) for no limit. */
  rate: number;
  /**
   * Resolves once every request forwarded so far has been answered by the registry or abandoned
   * (a client killed mid-body: the proxy then resets that upstream request too), so that what the
   * registry stores can be inspected without racing a request it is still working on.
   */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/** Start a proxy to `upstream` (`127.0.0.1:PORT`, plain HTTP). */
export async function startRecordingProxy(upstream: string): Promise<RecordingProxy> {
  const [upHost, upPort] = upstream.split(':') as [string, string];
  const requests: ProxiedRequest[] = [];
  const inFlight = new Set<Promise<void>>();
  const proxy: RecordingProxy = {
    host: '',
    requests,
    rate: Infinity,
    settled: async () => {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
    stop: () => listening.close(),
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const record: ProxiedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, status: 0, bytes: 0 };
    requests.push(record);
    proxy.onRequest?.(req, requests.length);
    const canned = proxy.intercept?.(req);
    if (canned !== undefined) {
      req.resume();
      const body = Buffer.from(canned.body ?? '');
      record.status = canned.status;
      record.bytes = body.length;
      res.writeHead(canned.status, { 'content-length': String(body.length), ...canned.headers });
      res.end(body);
      return;
    }
    // The Host header stays the proxy's, so the registry's absolute Location URLs lead back here.
    let answered!: () => void;
    const exchange = new Promise<void>((resolve) => (answered = resolve));
    inFlight.add(exchange);
    void exchange.then(() => inFlight.delete(exchange));
    const out = request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers }, (up) => {
      answered();
      record.status = up.statusCode ?? 0;
      if (res.destroyed) {
        up.destroy();
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.on('data', (chunk: Buffer) => {
        record.bytes += chunk.length;
        if (proxy.rate === Infinity) return;
        up.pause();
        setTimeout(() => up.resume(), (chunk.length / proxy.rate) * 1000);
      });
      up.pipe(res);
      // A client that goes away mid-body must not leave the upstream response paused forever.
      res.once('close', () => up.destroy());
    });
    out.once('error', () => res.destroy());
    out.once('close', answered);
    // A client that died mid-request: the registry must not wait for the rest of the body.
    req.once('close', () => {
      if (!req.complete) out.destroy();
    });
    req.pipe(out);
  };
  const listening = await listenLocal(createServer(handle));
  proxy.host = listening.host;
  return proxy;
}
