/**
 * What a registry client tells its caller about the network as it works: each retry, and (for
 * `--debug`) each HTTP exchange. The library prints nothing; the CLI draws these lines.
 *
 * URLs in events are redacted: no user info, and query values replaced except a few harmless ones
 * (`digest`, `mount`, `from`, `n`, `last`, and a token request's `service` and `scope`), since upload locations carry signed session state and
 * storage redirects carry pre-signed credentials. Request and response headers never appear.
 */
import { AirlockError } from '../errors.js';
import { RegistryHttpError } from './errors.js';
import { seconds, SlowBodyError, type Timeouts } from './timeouts.js';

/** One retry about to happen, after `reason`. */
export interface RetryEvent {
  kind: 'retry';
  /** `GET`, `PUT`…, or `upload` for a whole-blob upload retried by the copy engine. */
  method: string;
  /** Redacted: `quay.io/v2/coreos/etcd/blobs/sha256:…`. */
  url: string;
  /** The attempt about to start, 2 for the first retry. */
  attempt: number;
  /** Attempts allowed in all. */
  attempts: number;
  /** Short text: `connection reset`, `503`, `no data for 60 s`. */
  reason: string;
  /** Wait before the attempt. */
  delayMs: number;
}

/** One HTTP exchange, for `--debug`. */
export interface HttpTraceEvent {
  kind: 'http';
  method: string;
  url: string;
  /** Absent when no response came. */
  status?: number;
  /** The response's Content-Length, when it announced one. */
  bytes?: number;
  /** From sending the request to the response head (or the failure). */
  ms: number;
  /** Why no response came. */
  error?: string;
}

export type RegistryEvent = RetryEvent | HttpTraceEvent;
export type RegistryListener = (event: RegistryEvent) => void;

/** Query parameters whose values say what a request is about and hold nothing secret. */
const SAFE_PARAMS = new Set(['digest', 'mount', 'from', 'n', 'last', 'service', 'scope']);

/** `host/path?name=value`, with user info dropped and every value but the safe ones redacted. */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return String(url).split('?')[0] ?? '';
  }
  const params = [...u.searchParams.keys()].map((name) => `${name}=${SAFE_PARAMS.has(name) ? u.searchParams.get(name) : 'REDACTED'}`);
  return `${u.host}${u.pathname}${params.length === 0 ? '' : `?${params.join('&')}`}`;
}

/** The error's own code or its cause's (undici wraps socket errors). */
function codeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

const REASONS: Record<string, string> = {
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ECONNREFUSED: 'connection refused',
  ECONNABORTED: 'connection aborted',
  UND_ERR_SOCKET: 'connection lost',
  UND_ERR_CLOSED: 'connection closed',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'body cut short',
  ETRUNCATED: 'body cut short',
  EAI_AGAIN: 'name lookup failed',
  ETIMEDOUT: 'connect timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

/** Short text for why a request failed, with the timeout that expired when one did. */
export function failureReason(err: unknown, timeouts?: Timeouts): string {
  if (err instanceof RegistryHttpError) {
    const after = err.retryAfterMs === undefined ? '' : `, Retry-After ${Math.round(err.retryAfterMs / 1000)} s`;
    return `${err.status}${after}`;
  }
  if (err instanceof SlowBodyError) return 'body slower than 1 KiB/s';
  // Mapped already (networkError): the cause says it shorter.
  if (err instanceof AirlockError && err.cause !== undefined) return failureReason(err.cause, timeouts);
  const code = codeOf(err) ?? '';
  const secs = (ms: number | undefined): string => (ms === undefined ? '' : ` for ${seconds(ms)}`);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `no connection${secs(timeouts?.connectMs)}`;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `no response${secs(timeouts?.headersMs)}`;
  if (code === 'UND_ERR_BODY_TIMEOUT') return `no data${secs(timeouts?.bodyMs)}`;
  return REASONS[code] ?? (code === '' ? ((err as Error | undefined)?.message ?? String(err)) : code);
}
