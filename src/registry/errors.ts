/**
 * Turning HTTP statuses, registry error bodies and undici/Node errors into {@link AirlockError}s that
 * name the registry and the thing asked for, with the operator's next step as the hint.
 *
 * Messages never contain credentials, tokens or request headers. The registry's own words (its
 * error body) are untrusted: a registry or a proxy may echo the request's `Authorization` header or
 * embed terminal escape sequences, so they pass through `cleanText` before they reach a message or
 * the error's details.
 */
import { AirlockError, type ErrorCode } from '../errors.js';
import { seconds, type Timeouts } from './timeouts.js';
import { cleanText, cleanValue } from '../redact.js';

/** What a request is about, for messages. */
export interface Subject {
  /** Registry host as the operator named it: `quay.io`, `127.0.0.1:5000`. */
  host: string;
  repository?: string;
  /** `manifest coreos/etcd:v3.3`, `blob sha256:0123… of coreos/etcd`, `tags of coreos/etcd`. */
  what: string;
  /** Hint when the registry answers 404. */
  notFoundHint?: string;
}

/** One entry of a registry's `{"errors":[…]}` body (distribution spec "Error Codes"). */
export interface RegistryErrorEntry {
  code: string;
  message?: string;
  detail?: unknown;
}

/** A registry answered with a status the request did not expect. */
export class RegistryHttpError extends AirlockError {
  readonly status: number;
  /** The registry's `Retry-After`, in ms from when it was received. */
  readonly retryAfterMs: number | undefined;
  readonly registryErrors: RegistryErrorEntry[];

  constructor(
    code: ErrorCode,
    message: string,
    fields: { status: number; retryAfterMs?: number; registryErrors: RegistryErrorEntry[]; hint?: string; subject?: string },
  ) {
    super(code, message, {
      hint: fields.hint,
      subject: fields.subject,
      details: { status: fields.status, errors: fields.registryErrors },
    });
    this.name = 'RegistryHttpError';
    this.status = fields.status;
    this.retryAfterMs = fields.retryAfterMs;
    this.registryErrors = fields.registryErrors;
  }
}

/** A body that ended before its announced length; resumable and retryable. */
export class TruncatedBodyError extends Error {
  readonly code = 'ETRUNCATED';
  constructor(
    readonly received: number,
    readonly expected: number,
  ) {
    super(`body ended after ${received} of ${expected} bytes`);
    this.name = 'TruncatedBodyError';
  }
}

/** Parse `{"errors":[{code,message,detail}]}`; anything else yields an empty list. */
export function parseRegistryErrors(body: Buffer): RegistryErrorEntry[] {
  try {
    const doc = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return [];
    return doc.errors
      .filter((e): e is Record<string, unknown> => e !== null && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string')
      .map((e) => ({
        code: e.code as string,
        ...(typeof e.message === 'string' ? { message: e.message } : {}),
        ...(e.detail === undefined ? {} : { detail: e.detail }),
      }));
  } catch {
    return [];
  }
}

/** One line, at most 200 characters: registry text goes into our single-line messages. */
function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 197)}...` : flat;
}

/** `MANIFEST_UNKNOWN: manifest unknown` or, for a non-JSON body, its first line (both already cleaned). */
function describeBody(errors: RegistryErrorEntry[], body: Buffer): string {
  if (errors.length > 0) return oneLine(errors.map((e) => (e.message === undefined ? e.code : `${e.code}: ${e.message}`)).join('; '));
  const text = oneLine(cleanText(body.toString('utf8')));
  return /^[\x20-\x7e]*$/.test(text) ? text : '';
}

/** An error entry with secrets and terminal control removed from every string in it. */
function cleanEntry(e: RegistryErrorEntry): RegistryErrorEntry {
  return cleanValue(e) as RegistryErrorEntry;
}

/** Next steps for registry error codes that have a specific one. */
const CODE_HINTS: Record<string, string> = {
  MANIFEST_BLOB_UNKNOWN: 'push the blobs and child manifests first, into the same repository',
  BLOB_UPLOAD_INVALID: 'the upload session expired or was replaced; run the command again',
  BLOB_UPLOAD_UNKNOWN: 'the upload session expired or was replaced; run the command again',
  SIZE_INVALID: 'the content does not match its descriptor size; check the source',
  TOOMANYREQUESTS: 'wait and retry later, or authenticate with --creds for a higher limit',
};

/** The AirlockError for an unexpected status, with the registry's own error text when it sent one. */
export function statusError(status: number, body: Buffer, subject: Subject, retryAfterMs?: number): RegistryHttpError {
  const errors = parseRegistryErrors(body).map(cleanEntry);
  const said = describeBody(errors, body);
  const suffix = said === '' ? '' : `: ${said}`;
  const registry = `registry ${subject.host}`;
  const fields = { status, registryErrors: errors, subject: subject.repository ?? subject.host, retryAfterMs };
  const codeHint = errors.map((e) => CODE_HINTS[e.code]).find((h) => h !== undefined);
  if (status === 404) {
    return new RegistryHttpError('NOT_FOUND', `${subject.what} not found on ${subject.host}${suffix}`, {
      ...fields,
      hint: subject.notFoundHint ?? 'check the repository name and reference',
    });
  }
  if (status === 401 || status === 403) {
    return new RegistryHttpError('AUTH', `${registry} denied access to ${subject.what} (${status})${suffix}`, {
      ...fields,
      hint: `check that the account may access ${subject.repository ?? 'this repository'} (--creds USER:PASS or docker login ${subject.host})`,
    });
  }
  if (status === 429) {
    return new RegistryHttpError('RATE_LIMITED', `${registry} is rate limiting requests (429) for ${subject.what}`, {
      ...fields,
      hint: CODE_HINTS.TOOMANYREQUESTS,
    });
  }
  if (errors.some((e) => e.code === 'DIGEST_INVALID')) {
    return new RegistryHttpError('INTEGRITY', `${registry} rejected ${subject.what}: content does not match its digest${suffix}`, {
      ...fields,
      hint: 'the source content is damaged; fetch it again from its origin',
    });
  }
  if (status >= 500) {
    return new RegistryHttpError('REGISTRY', `${registry} failed with ${status} for ${subject.what}${suffix}`, {
      ...fields,
      hint: codeHint ?? 'the registry is failing; retry later or check its logs',
    });
  }
  return new RegistryHttpError('REGISTRY', `${registry} answered ${status} for ${subject.what}${suffix}`, {
    ...fields,
    ...(codeHint === undefined ? {} : { hint: codeHint }),
  });
}

/** OpenSSL / Node codes of certificate verification failures. */
const UNTRUSTED_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

function tlsHint(host: string): string {
  return `pass --ca-file FILE or install the CA as /etc/docker/certs.d/${host}/ca.crt; use --insecure-skip-tls-verify (or --plain-http for a registry without TLS) only on a network you trust`;
}

/** The code that classifies a failure: the error's own or, for wrapped errors, its cause's. */
function codeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Context for {@link networkError}. */
export interface NetworkContext {
  subject: Subject;
  plainHttp: boolean;
  signal?: AbortSignal;
  /** Attempts made, when more than one: named in the message. */
  attempts?: number;
  /** The client's timeouts, to say how long was waited. */
  timeouts?: Timeouts;
}

/**
 * Map a failure below HTTP (DNS, TCP, TLS, a broken body, an abort) to an AirlockError.
 * AirlockErrors pass through unchanged.
 */
export function networkError(err: unknown, ctx: NetworkContext): unknown {
  if (err instanceof AirlockError) return err;
  const { host, what } = ctx.subject;
  const base = { subject: host, cause: err };
  if (ctx.signal?.aborted === true || (err as Error | undefined)?.name === 'AbortError') {
    return new AirlockError('INTERRUPTED', `${what} on ${host} was interrupted`, base);
  }
  const code = codeOf(err) ?? '';
  const tls = (message: string) => new AirlockError('TLS', message, { ...base, hint: tlsHint(host), details: { code } });
  if (UNTRUSTED_CODES.has(code)) return tls(`TLS certificate of registry ${host} is not trusted (${code})`);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return tls(`TLS certificate of registry ${host} does not match its name`);
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return tls(`TLS certificate of registry ${host} is not valid now (${code})`);
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new AirlockError('TLS', `registry ${host} does not speak TLS on this port (wrong version number)`, {
      ...base,
      hint: 'use --plain-http if the registry serves plain HTTP, or check the port',
      details: { code },
    });
  }
  if (code.startsWith('ERR_SSL_') || code === 'EPROTO' || code.startsWith('ERR_TLS_')) {
    return tls(`TLS handshake with registry ${host} failed (${code})`);
  }
  const attempts = ctx.attempts !== undefined && ctx.attempts > 1 ? ` (${ctx.attempts} attempts)` : '';
  const net = (message: string, hint: string) =>
    new AirlockError('NETWORK', `${message}${attempts}`, {
      ...base,
      hint,
      details: { code, ...(ctx.attempts === undefined ? {} : { attempts: ctx.attempts }) },
    });
  const addressHint = 'check the registry address and port, and use --plain-http for a registry without TLS';
  const slowHint = 'check the link and the registry; on a slow link raise --timeout (e.g. --timeout 5m)';
  const t = ctx.timeouts;
  switch (code) {
    case 'ECONNREFUSED':
      return net(`cannot connect to registry ${host}: connection refused`, addressHint);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return net(`cannot resolve registry host ${host}`, 'check the host name and DNS settings');
    case 'UND_ERR_CONNECT_TIMEOUT':
      return net(
        `cannot connect to registry ${host}: no connection within ${t === undefined ? 'the connect timeout' : seconds(t.connectMs)}`,
        `${addressHint}; check firewalls and proxies`,
      );
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return net(`cannot connect to registry ${host} (${code})`, `${addressHint}; check firewalls and proxies`);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return net(`no response from ${host} for ${t === undefined ? 'the response timeout' : seconds(t.headersMs)} to ${what}`, slowHint);
    case 'UND_ERR_BODY_TIMEOUT':
      return net(`no data from ${host} for ${t === undefined ? 'the idle timeout' : seconds(t.bodyMs)} while reading ${what}`, slowHint);
    case 'ESLOWBODY':
      return net(`${host} sent ${what} slower than 1 KiB/s for ${t === undefined ? 'a whole window' : seconds(t.bodyMs)}`, slowHint);
    default: {
      if (!LOST_CODES.has(code)) return err; // not a network failure: a bug, surfaced as it is
      const hint = ctx.plainHttp ? 'if the registry serves HTTPS, drop --plain-http; otherwise retry later' : 'retry later; check the registry and the network';
      return net(`connection to registry ${host} was lost during ${what} (${code})`, hint);
    }
  }
}

/** Codes of a connection that broke after it was made. */
const LOST_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ETRUNCATED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
