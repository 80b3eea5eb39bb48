/**
 * When and how long to wait before trying a registry request again.
 *
 * The decision is made by {@link isTemporary} on structured fields (error codes, HTTP status),
 * never on message text. Waits grow exponentially with jitter, and a server's `Retry-After` is
 * honoured up to a cap. The sleep function and the random source are injectable so tests run fast.
 */
import { backoffDelay, sleep } from '../sync/backoff.js';
import { isAirlockError } from '../errors.js';

export { backoffDelay } from '../sync/backoff.js';
import { RegistryHttpError } from './errors.js';

/** Retry settings of a client; see {@link DEFAULT_RETRY} for the defaults and why. */
export interface RetryOptions {
  /** Further attempts after the first one. */
  retries: number;
  /** Wait before the first retry, doubled for every further one. */
  baseDelayMs: number;
  /** Upper bound of one backoff wait. */
  maxDelayMs: number;
  /** Upper bound for a server's `Retry-After`. */
  maxRetryAfterMs: number;
  /** Waits `ms` milliseconds; rejects when `signal` aborts. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Uniform random number in [0, 1), for jitter. */
  random: () => number;
  /** Current time in ms since the epoch, for `Retry-After` dates. */
  now: () => number;
}

/**
 * Defaults.
 * - 5 retries with a 250 ms base and a 10 s cap wait at most ~20 s in all: long enough to ride out
 *   a registry restart or a load balancer shuffle, short enough that a dead registry fails while the
 *   operator is still watching.
 * - `Retry-After` is honoured up to 60 s: Docker Hub asks for minutes when a pull quota is spent,
 *   and then failing with RATE_LIMITED (and its hint) beats hanging silently.
 */
export const DEFAULT_RETRY: RetryOptions = {
  retries: 5,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 60_000,
  sleep,
  random: Math.random,
  now: Date.now,
};

/**
 * Parse a `Retry-After` value: delta-seconds or an HTTP date. Returns milliseconds from `now`
 * (never negative), or undefined when the value is missing or unparseable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Node and undici error codes of failures that may not happen again. */
const TEMPORARY_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_CLOSED',
  'ETRUNCATED',
  // a body below the rate floor (timeouts.ts)
  'ESLOWBODY',
]);

/** Codes that are temporary only once the registry has answered before: on first contact they mean a wrong address. */
const TEMPORARY_AFTER_CONTACT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Statuses worth another try whatever the method. */
const TEMPORARY_STATUSES = new Set([429, 502, 503, 504]);

/** What {@link isTemporary} needs to know about the request besides the error. */
export interface TemporaryContext {
  /** The request may be repeated without changing the outcome (GET, HEAD, PUT of a manifest). */
  idempotent?: boolean;
  /** The registry has answered this client before (so "refused" means restarting, not absent). */
  contacted?: boolean;
}

/** The error's own code or that of its cause (undici sometimes wraps the socket error). */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/**
 * True when `err` is worth retrying: connection resets and timeouts, truncated bodies, 429,
 * 502/503/504 always, 500 only for idempotent requests, and refused connections once the registry
 * has answered before.
 */
export function isTemporary(err: unknown, ctx: TemporaryContext = {}): boolean {
  if (err instanceof RegistryHttpError) {
    if (TEMPORARY_STATUSES.has(err.status)) return true;
    return err.status === 500 && ctx.idempotent === true;
  }
  const codes = errorCodes(err);
  if (codes.some((c) => TEMPORARY_CODES.has(c))) return true;
  return ctx.contacted === true && codes.some((c) => TEMPORARY_AFTER_CONTACT_CODES.has(c));
}

/**
 * True for a blob upload that failed in a way a fresh attempt (a new upload session and a new
 * stream of the body) may not meet again: a lost connection, 408, 429, 5xx, or an upload session
 * the registry dropped or replaced. The client cannot retry these itself: the body is a stream it
 * has consumed.
 */
export function isRetryableUpload(err: unknown): boolean {
  if (err instanceof RegistryHttpError) {
    return err.status === 408 || err.status === 429 || err.status >= 500 || isExpiredSession(err);
  }
  if (isAirlockError(err)) return err.code === 'NETWORK' || err.code === 'RATE_LIMITED';
  return isTemporary(err, { idempotent: true, contacted: true });
}

/** The registry dropped or replaced the upload session: a new one will do, even before any byte was sent. */
export function isExpiredSession(err: unknown): boolean {
  return err instanceof RegistryHttpError && err.registryErrors.some((e) => e.code === 'BLOB_UPLOAD_INVALID' || e.code === 'BLOB_UPLOAD_UNKNOWN');
}

/** How long to wait after `err` before attempt `attempt + 1`. */
export function retryDelay(err: unknown, attempt: number, opts: RetryOptions): number {
  if (err instanceof RegistryHttpError && err.retryAfterMs !== undefined) {
    return Math.min(err.retryAfterMs, opts.maxRetryAfterMs);
  }
  return backoffDelay(attempt, opts);
}

/**
 * Run `fn` until it succeeds, fails with a non-temporary error, or the retries are spent; the last
 * error is thrown as it is (callers map it to an AirlockError). `onRetry` hears of each retry
 * before its wait, with the number of the attempt to come (2 for the first retry).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions,
  ctx: () => TemporaryContext,
  signal?: AbortSignal,
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (signal?.aborted === true || attempt >= opts.retries || !isTemporary(err, ctx())) throw err;
      const delayMs = retryDelay(err, attempt, opts);
      onRetry?.(err, attempt + 2, delayMs);
      await opts.sleep(delayMs, signal);
    }
  }
}
