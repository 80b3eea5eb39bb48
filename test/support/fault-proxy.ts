/**
 * A fault-injecting HTTP proxy for integration tests: it sits in front of a real registry (see
 * `registry.ts`) and breaks some requests the ways real links and servers do. Test support, not
 * product code.
 *
 * Faults: status answers (503, 429 with and without Retry-After, 500) instead of forwarding; a
 * reset before the response head or right after it; a body cut part-way; a stall (the head, or
 * part of the body, then silence until the client gives up); a slow trickle of the body.
 *
 * Seeded and deterministic: whether a request is faulted, and how, is a pure function of the seed,
 * the request's key (method and path, with upload session ids and query strings removed) and how
 * many times that key was seen before. The same seed gives the same faults to the same requests,
 * whatever order concurrent requests arrive in. Loops are bounded: a key is faulted at most
 * `maxConsecutive` times in a row, so every request passes within a few attempts, and `stats`
 * records every request and fault so a test can bound the total.
 */
import { createHash } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenLocal } from './listen.js';

/** One way of breaking a request. */
export type Fault =
  | { kind: 'status'; status: 500 | 503 | 429; retryAfter?: number }
  | { kind: 'reset-before-head' }
  | { kind: 'reset-after-head' }
  /** Forward the head and `after` bytes of the body, then close the connection. */
  | { kind: 'cut-body'; after: number }
  /** Forward nothing: accept the request and say nothing until the client leaves. */
  | { kind: 'stall-head' }
  /** Forward the head and `after` bytes of the body, then say nothing until the client leaves. */
  | { kind: 'stall-body'; after: number }
  /** Forward the body `bytes` at a time every `everyMs`. */
  | { kind: 'trickle'; bytes: number; everyMs: number };

export type FaultKind = Fault['kind'];

/** What the proxy knows about a request when it decides. */
export interface RequestInfo {
  method: string;
  /** Path and query as sent. */
  url: string;
  /** Method and path with session ids and the query removed: `PUT /v2/a/blobs/uploads/*`. */
  key: string;
  /** How many requests with this key came before this one. */
  occurrence: number;
  headers: IncomingMessage['headers'];
}

export interface FaultProxyOptions {
  /** `HOST:PORT` of the registry to forward to. */
  target: string;
  /** Seed of the fault sequence; without it (and without `decide`) nothing is faulted. */
  seed?: number;
  /** Share of requests faulted (0..1). Default 0.15. */
  rate?: number;
  /** Relative weights of the fault kinds. Default {@link DEFAULT_WEIGHTS}. */
  weights?: Partial<Record<FaultKind, number>>;
  /** Most faults in a row for one key; the next attempt passes. Default 2. */
  maxConsecutive?: number;
  /** Scripted faults: when it returns a fault (or null for "none"), the seed is not consulted. */
  decide?: (req: RequestInfo) => Fault | null | undefined;
  /** A stalled request is dropped after this long even if the client stays (ms). Default 60 000. */
  maxStallMs?: number;
}

/** What went through the proxy. */
export interface FaultStats {
  requests: number;
  faults: number;
  byKind: Partial<Record<FaultKind, number>>;
  /** Every request in arrival order, with its fault. */
  log: Array<{ method: string; url: string; fault?: FaultKind }>;
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`: use as the registry host. */
  host: string;
  stats: FaultStats;
  /** Responses being sent right now (to check that a client closed everything it opened). */
  active(): number;
  /** Forget counts and occurrences and fault under `seed` from now on (undefined: no faults). */
  setSeed(seed: number | undefined): void;
  close(): Promise<void>;
}

/** Cheap faults are common, slow ones (stalls, trickles: each costs a timeout) rarer. */
export const DEFAULT_WEIGHTS: Record<FaultKind, number> = {
  status: 5,
  'reset-before-head': 2,
  'reset-after-head': 2,
  'cut-body': 3,
  'stall-head': 1,
  'stall-body': 2,
  trickle: 1,
};

/** A uniform number in [0, 1) from a seed and a text: the same inputs, the same number. */
function uniform(seed: number, text: string): number {
  return createHash('sha256').update(`${seed}\0${text}`).digest().readUInt32BE(0) / 2 ** 32;
}

/** The request's key: upload session ids (UUIDs) and the query string do not distinguish requests. */
export function requestKey(method: string, url: string): string {
  const path = url.split('?')[0] ?? '';
  return `${method} ${path.replace(/\/blobs\/uploads\/[^/]+$/, '/blobs/uploads/*')}`;
}

/** The seeded choice for one request. */
export function seededFault(
  seed: number,
  info: Pick<RequestInfo, 'key' | 'occurrence' | 'method'>,
  rate: number,
  weights: Record<FaultKind, number>,
): Fault | undefined {
  const id = `${info.key}#${info.occurrence}`;
  if (uniform(seed, `${id}:p`) >= rate) return undefined;
  const kinds = (Object.keys(weights) as FaultKind[]).filter((k) => weights[k] > 0);
  const total = kinds.reduce((n, k) => n + weights[k], 0);
  let pick = uniform(seed, `${id}:k`) * total;
  const kind = kinds.find((k) => (pick -= weights[k]) < 0) ?? kinds[kinds.length - 1]!;
  const r = uniform(seed, `${id}:r`);
  switch (kind) {
    case 'status': {
      const statuses = [503, 503, 429, 429, 500] as const;
      const status = statuses[Math.floor(r * statuses.length)]!;
      // 429 with and without Retry-After; 1 s keeps runs short.
      return status === 429 && r < 0.6 ? { kind, status, retryAfter: 1 } : { kind, status };
    }
    case 'cut-body':
      return { kind, after: Math.floor(r * 2048) };
    case 'stall-body':
      return { kind, after: Math.floor(r * 1024) };
    case 'trickle':
      // ~160 bytes a second: far below any floor a client should accept.
      return { kind, bytes: 16, everyMs: 100 };
    default:
      return { kind } as Fault;
  }
}

/**
 * Start a proxy on a free 127.0.0.1 port.
 * @example
 *   const proxy = await startFaultProxy({ target: reg.host, seed: 7 });
 *   // ... use `${proxy.host}/coreos/etcd:v3.3.0` ...
 *   console.log(proxy.stats.faults, 'faults injected');
 *   await proxy.close();
 */
export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  const [targetHost, targetPort] = opts.target.split(':') as [string, string];
  const rate = opts.rate ?? 0.15;
  const weights = { ...DEFAULT_WEIGHTS, ...opts.weights };
  const maxConsecutive = opts.maxConsecutive ?? 2;
  const maxStallMs = opts.maxStallMs ?? 60_000;
  const upstreamAgent = new Agent({ keepAlive: true });
  const timers = new Set<NodeJS.Timeout>();
  let occurrences = new Map<string, number>();
  let consecutive = new Map<string, number>();
  let activeResponses = 0;
  let seed = opts.seed;
  const stats: FaultStats = { requests: 0, faults: 0, byKind: {}, log: [] };

  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const choose = (req: IncomingMessage): Fault | undefined => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const key = requestKey(method, url);
    const occurrence = occurrences.get(key) ?? 0;
    occurrences.set(key, occurrence + 1);
    const info: RequestInfo = { method, url, key, occurrence, headers: req.headers };
    const scripted = opts.decide?.(info);
    let fault: Fault | undefined;
    if (scripted !== undefined) fault = scripted ?? undefined;
    else if (seed !== undefined && (consecutive.get(key) ?? 0) < maxConsecutive) fault = seededFault(seed, info, rate, weights);
    consecutive.set(key, fault === undefined ? 0 : (consecutive.get(key) ?? 0) + 1);
    stats.requests++;
    stats.log.push({ method, url, ...(fault === undefined ? {} : { fault: fault.kind }) });
    if (fault !== undefined) {
      stats.faults++;
      stats.byKind[fault.kind] = (stats.byKind[fault.kind] ?? 0) + 1;
    }
    return fault;
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const fault = choose(req);
    const socket = req.socket;
    if (fault?.kind === 'reset-before-head') {
      socket.resetAndDestroy();
      return;
    }
    if (fault?.kind === 'stall-head') {
      later(maxStallMs, () => socket.destroy());
      return;
    }
    if (fault?.kind === 'status') {
      // Answer without forwarding; the request body (if any) is not wanted: close afterwards.
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${fault.status}` }] });
      res.writeHead(fault.status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        connection: 'close',
        ...(fault.retryAfter === undefined ? {} : { 'retry-after': String(fault.retryAfter) }),
      });
      res.end(body, () => socket.destroy());
      return;
    }
    const upstream = httpRequest(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers, agent: upstreamAgent },
      (up) => respond(req, res, up, fault),
    );
    upstream.on('error', () => socket.destroy());
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const respond = (req: IncomingMessage, res: ServerResponse, up: IncomingMessage, fault: Fault | undefined): void => {
    const socket = req.socket;
    activeResponses++;
    res.once('close', () => activeResponses--);
    res.on('error', () => {});
    up.on('error', () => socket.destroy());
    res.writeHead(up.statusCode ?? 502, up.statusMessage, up.headers);
    if (fault === undefined) {
      up.pipe(res);
      return;
    }
    if (fault.kind === 'reset-after-head') {
      res.flushHeaders();
      later(10, () => {
        up.destroy();
        socket.resetAndDestroy();
      });
      return;
    }
    if (fault.kind === 'trickle') {
      up.pause();
      let pending = Buffer.alloc(0);
      let ended = false;
      up.on('data', (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        up.pause();
      });
      up.on('end', () => (ended = true));
      const tick = (): void => {
        if (res.destroyed) return;
        if (pending.length === 0) {
          if (ended) {
            res.end();
            return;
          }
          up.resume();
        } else {
          res.write(pending.subarray(0, fault.bytes));
          pending = pending.subarray(fault.bytes);
        }
        later(pending.length === 0 && !ended ? 1 : fault.everyMs, tick);
      };
      res.flushHeaders();
      tick();
      return;
    }
    // cut-body and stall-body: forward `after` bytes of the body, then cut or fall silent.
    const after = fault.kind === 'cut-body' || fault.kind === 'stall-body' ? fault.after : 0;
    let sent = 0;
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      up.destroy();
      if (fault.kind === 'cut-body') later(10, () => socket.destroy());
      else later(maxStallMs, () => socket.destroy());
    };
    res.flushHeaders();
    up.on('data', (d: Buffer) => {
      if (stopped) return;
      const room = after - sent;
      if (d.length >= room) {
        if (room > 0) res.write(d.subarray(0, room));
        sent += room;
        stop();
        return;
      }
      res.write(d);
      sent += d.length;
    });
    up.on('end', () => {
      // The whole body fitted before the cut: the client gets it all, and the fault is moot.
      if (!stopped) res.end();
    });
  };

  const server = createServer(handle);
  server.keepAliveTimeout = 5_000;
  server.on('clientError', (_err, s) => s.destroy());
  const listening = await listenLocal(server);
  return {
    host: listening.host,
    stats,
    active: () => activeResponses,
    setSeed(next) {
      seed = next;
      occurrences = new Map();
      consecutive = new Map();
      stats.requests = 0;
      stats.faults = 0;
      stats.byKind = {};
      stats.log = [];
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      upstreamAgent.destroy();
      await listening.close();
    },
  };
}
