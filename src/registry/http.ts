/**
 * One registry's HTTP layer: the API check (`GET /v2/`), authorisation, one retry after a 401,
 * retries of temporary failures, and the mapping of every failure to an AirlockError.
 *
 * Requests carry `Authorization` only to the registry's own origin: a redirect or upload
 * `Location` on another host (a storage bucket, a CDN) never sees the registry credentials.
 */
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { AirlockError } from '../errors.js';
import type { Authenticator } from './auth.js';
import { abandon, discard, readCapped, MAX_ERROR_BODY_BYTES } from './body.js';
import { networkError, statusError, type Subject } from './errors.js';
import { failureReason, redactUrl, type RegistryEvent, type RegistryListener } from './events.js';
import { parseRetryAfter, withRetry, type RetryOptions } from './retry.js';
import type { Timeouts } from './timeouts.js';

/** HTTP methods the registry API uses. */
export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** An undici response; its body must always be read or discarded. */
export type Response = Dispatcher.ResponseData;

/** One registry request, with what it is about and which statuses mean success. */
export interface HttpRequest {
  method: Method;
  /** `/v2/…` on the registry, or an absolute URL (an upload `Location`, a redirect). */
  url: string | URL;
  headers?: Record<string, string>;
  /** A stream body is sent once: such requests are never retried. */
  body?: Buffer | string | Readable;
  /** Token scopes the request needs (see `repositoryScope`). */
  scopes: readonly string[];
  repository?: string;
  subject: Subject;
  /** Statuses that are success; anything else becomes an error. */
  expect: readonly number[];
  /** Safe to repeat (decides whether a 500 is retried). Default: true except POST and PATCH. */
  idempotent?: boolean;
  signal?: AbortSignal;
  /** Wait this long for the response head instead of the client's `headersMs` (a commit PUT). */
  headersTimeoutMs?: number;
}

/** What a {@link RegistryHttp} needs from its client. */
export interface HttpOptions {
  /** Registry host as the operator named it (`docker.io`, `127.0.0.1:5000`). */
  host: string;
  /** Host and port actually contacted (`registry-1.docker.io`). */
  apiHost: string;
  plainHttp: boolean;
  dispatcher: () => Promise<Dispatcher>;
  userAgent: string;
  retry: RetryOptions;
  timeouts: Timeouts;
  auth: Authenticator;
  /** Hears of retries and of every exchange (see events.ts). */
  onEvent?: RegistryListener;
  /** Aborts every request of this client. */
  signal?: AbortSignal;
}

/** First value of a response header. */
export function header(res: Response, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isStream(body: HttpRequest['body']): body is Readable {
  return body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body);
}

/** The registry's API host for a host as named: Docker Hub's API lives on registry-1.docker.io. */
export function apiHostFor(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

/** The HTTP layer of one registry client: one per {@link RegistryClient}. */
export class RegistryHttp {
  readonly #opts: HttpOptions;
  readonly origin: string;
  #pinged: Promise<void> | undefined;
  /** Whether the registry has answered at least once (then a refused connection is worth a retry). */
  #contacted = false;

  constructor(opts: HttpOptions) {
    this.#opts = opts;
    this.origin = `${opts.plainHttp ? 'http' : 'https'}://${opts.apiHost}`;
  }

  get host(): string {
    return this.#opts.host;
  }

  get retry(): RetryOptions {
    return this.#opts.retry;
  }

  get plainHttp(): boolean {
    return this.#opts.plainHttp;
  }

  get timeouts(): Timeouts {
    return this.#opts.timeouts;
  }

  /** Tell the client's listener (if any). */
  emit(event: RegistryEvent): void {
    this.#opts.onEvent?.(event);
  }

  /** Report a retry of `method url` after `err` (see {@link withRetry}'s `onRetry`). */
  retried(method: string, url: string | URL, err: unknown, attempt: number, delayMs: number): void {
    if (this.#opts.onEvent === undefined) return;
    this.emit({
      kind: 'retry',
      method,
      url: redactUrl(new URL(url, this.origin)),
      attempt,
      attempts: this.retry.retries + 1,
      reason: failureReason(err, this.timeouts),
      delayMs,
    });
  }

  /** The call's signal combined with the client's. */
  signal(signal?: AbortSignal): AbortSignal | undefined {
    const all = [this.#opts.signal, signal].filter((s): s is AbortSignal => s !== undefined);
    return all.length <= 1 ? all[0] : AbortSignal.any(all);
  }

  /** Check the API once per client (repeated after a failure); every call waits for it. */
  ensurePinged(signal?: AbortSignal): Promise<void> {
    this.#pinged ??= this.ping(signal).catch((err: unknown) => {
      this.#pinged = undefined;
      throw err;
    });
    return this.#pinged;
  }

  /** `GET /v2/`: 200 means open, 401 teaches us the challenge; anything else is an error. */
  async ping(signal?: AbortSignal): Promise<void> {
    const subject: Subject = { host: this.host, what: 'the registry API check (GET /v2/)' };
    const sig = this.signal(signal);
    let attempts = 0;
    const run = async (): Promise<void> => {
      attempts++;
      const res = await this.#send({ method: 'GET', url: '/v2/', scopes: [], subject, expect: [] }, undefined, sig);
      const body = await readCapped(res.body, MAX_ERROR_BODY_BYTES, 'truncate', this.timeouts.bodyMs);
      if (res.statusCode === 200) return;
      if (res.statusCode === 401) {
        this.#opts.auth.learn(res.headers['www-authenticate']);
        return;
      }
      if (res.statusCode === 400 && this.plainHttp && /HTTPS/i.test(body.toString('utf8'))) {
        throw new AirlockError('TLS', `registry ${this.host} expects HTTPS, not plain HTTP`, {
          subject: this.host,
          hint: 'drop --plain-http',
        });
      }
      if (res.statusCode === 404) {
        throw new AirlockError('REGISTRY', `${this.host} does not serve the registry API (GET /v2/ answered 404)`, {
          subject: this.host,
          hint: 'check the registry address; the API must be at /v2/ on that host and port',
        });
      }
      throw statusError(res.statusCode, body, subject, parseRetryAfter(header(res, 'retry-after'), this.retry.now()));
    };
    try {
      await withRetry(
        run,
        this.retry,
        () => ({ idempotent: true, contacted: this.#contacted }),
        sig,
        (err, attempt, delayMs) => this.retried('GET', '/v2/', err, attempt, delayMs),
      );
    } catch (err) {
      throw networkError(err, { subject, plainHttp: this.plainHttp, signal: sig, attempts, timeouts: this.timeouts });
    }
  }

  /**
   * Send a request and hand the response to `consume`, retrying temporary failures of both
   * (unless the body is a stream). `consume` owns the body; on its error the body is destroyed.
   */
  async call<T>(req: HttpRequest, consume: (res: Response) => Promise<T>): Promise<T> {
    const sig = this.signal(req.signal);
    let attempts = 0;
    const once = async (): Promise<T> => {
      attempts++;
      const res = await this.#exchange(req, sig);
      try {
        return await consume(res);
      } catch (err) {
        abandon(res.body);
        throw err;
      }
    };
    const idempotent = req.idempotent ?? !(req.method === 'POST' || req.method === 'PATCH');
    const retry = isStream(req.body) ? { ...this.retry, retries: 0 } : this.retry;
    try {
      await this.ensurePinged(sig);
      return await withRetry(
        once,
        retry,
        () => ({ idempotent, contacted: this.#contacted }),
        sig,
        (err, attempt, delayMs) => this.retried(req.method, req.url, err, attempt, delayMs),
      );
    } catch (err) {
      throw networkError(err, { subject: req.subject, plainHttp: this.plainHttp, signal: sig, attempts, timeouts: this.timeouts });
    }
  }

  /** One exchange with authorisation, and one retry with fresh authorisation after a 401. */
  async #exchange(req: HttpRequest, signal?: AbortSignal): Promise<Response> {
    const sameOrigin = new URL(req.url, this.origin).origin === this.origin;
    const auth = this.#opts.auth;
    const sent = sameOrigin ? await auth.authorization(req.scopes, req.repository) : undefined;
    let res = await this.#send(req, sent, signal);
    if (res.statusCode === 401 && sameOrigin && !req.expect.includes(401)) {
      await discard(res.body, this.timeouts.bodyMs);
      // A stream body is spent: it cannot be sent again, so a 401 on it is final.
      if (isStream(req.body)) throw await auth.refused(req.repository);
      const fresh = await auth.reauthorize(res.headers['www-authenticate'], req.scopes, req.repository, sent);
      res = await this.#send(req, fresh, signal);
      if (res.statusCode === 401) {
        await discard(res.body, this.timeouts.bodyMs);
        throw await auth.refused(req.repository);
      }
    }
    if (!req.expect.includes(res.statusCode)) {
      const body = await readCapped(res.body, MAX_ERROR_BODY_BYTES, 'truncate', this.timeouts.bodyMs);
      throw statusError(res.statusCode, body, req.subject, parseRetryAfter(header(res, 'retry-after'), this.retry.now()));
    }
    return res;
  }

  /**
   * One HTTP exchange, with the client's timeouts (whatever the dispatcher's); marks the registry as
   * contacted when it answers, and traces the exchange for `--debug`.
   */
  async #send(req: HttpRequest, authorization: string | undefined, signal?: AbortSignal): Promise<Response> {
    const url = new URL(req.url, this.origin);
    const headers: Record<string, string> = { 'user-agent': this.#opts.userAgent, ...req.headers };
    if (authorization !== undefined) headers.authorization = authorization;
    const started = performance.now();
    let res: Response;
    try {
      res = await request(url, {
        method: req.method,
        headers,
        body: req.body ?? null,
        dispatcher: await this.#opts.dispatcher(),
        signal: signal ?? null,
        headersTimeout: req.headersTimeoutMs ?? this.timeouts.headersMs,
        bodyTimeout: this.timeouts.bodyMs,
      });
    } catch (err) {
      this.#trace(req.method, url, started, undefined, err);
      throw err;
    }
    if (url.origin === this.origin) this.#contacted = true;
    this.#trace(req.method, url, started, res);
    return res;
  }

  #trace(method: string, url: URL, started: number, res: Response | undefined, err?: unknown): void {
    if (this.#opts.onEvent === undefined) return;
    const ms = Math.round(performance.now() - started);
    const length = res === undefined ? NaN : Number(header(res, 'content-length'));
    this.emit({
      kind: 'http',
      method,
      url: redactUrl(url),
      ms,
      ...(res === undefined ? { error: failureReason(err, this.timeouts) } : { status: res.statusCode }),
      ...(Number.isSafeInteger(length) ? { bytes: length } : {}),
    });
  }
}
