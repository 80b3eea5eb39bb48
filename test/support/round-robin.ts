/**
 * A load balancer of the tests' own in front of registry replicas: each request goes to the next
 * backend in turn, whatever connection it came on, so the requests of one upload session (POST,
 * PATCH, PUT) land on different replicas, as behind a balancer without session affinity. The
 * `Host` header is passed on unchanged (nginx's `proxy_set_header Host $host`), so the replicas
 * build their `Location` URLs for the balancer's address. Every request is logged with its backend.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenLocal, type Listening } from './listen.js';

export interface BalancedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  /** Index of the backend that served it. */
  backend: number;
  status: number;
  /** The `Location` the replica answered with, if any. */
  location?: string;
}

export interface RoundRobin extends Listening {
  url: string;
  log: BalancedRequest[];
  /** Backends (indexes) that served each upload session, by the session's id in the path. */
  uploadSessions(): Map<string, Set<number>>;
}

/** Balance over `backends` (`127.0.0.1:PORT`, plain HTTP), round robin per request. */
export async function startRoundRobin(backends: readonly string[]): Promise<RoundRobin> {
  const log: BalancedRequest[] = [];
  let next = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const backend = next;
    next = (next + 1) % backends.length;
    const [host, port] = (backends[backend] as string).split(':') as [string, string];
    const entry: BalancedRequest = { method: req.method ?? '', url: req.url ?? '', backend, status: 0 };
    log.push(entry);
    const upstream = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (up) => {
      entry.status = up.statusCode ?? 0;
      if (typeof up.headers.location === 'string') entry.location = up.headers.location;
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const listening = await listenLocal(server);
  return {
    ...listening,
    url: `http://${listening.host}`,
    log,
    uploadSessions() {
      const sessions = new Map<string, Set<number>>();
      for (const e of log) {
        // A POST names its session only in the Location it answers with.
        const id = /\/blobs\/uploads\/([^/?]+)/.exec(e.url)?.[1] ?? /\/blobs\/uploads\/([^/?]+)/.exec(e.location ?? '')?.[1];
        if (id === undefined) continue;
        const seen = sessions.get(id) ?? new Set<number>();
        seen.add(e.backend);
        sessions.set(id, seen);
      }
      return sessions;
    },
  };
}
