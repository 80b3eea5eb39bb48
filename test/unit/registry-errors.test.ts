import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.js';
import { BodyTooLargeError, readCapped } from '../../src/registry/body.js';
import { networkError, parseRegistryErrors, statusError } from '../../src/registry/errors.js';
import { contentRangeStart } from '../../src/registry/blobs.js';
import { parseLinkNext } from '../../src/registry/tags.js';

const subject = { host: 'r.example', repository: 'team/app', what: 'manifest team/app:v1', notFoundHint: 'check the tag' };
const body = (doc: unknown): Buffer => Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
const coded = (code: string): Error => Object.assign(new Error(`x ${code}`), { code });

describe('parseRegistryErrors', () => {
  it('reads code, message and detail', () => {
    expect(parseRegistryErrors(body({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'v1' } }] }))).toEqual([
      { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'v1' } },
    ]);
  });
  it.each([['not json'], ['{"errors":"x"}'], ['{"errors":[{"message":"no code"}]}'], ['null'], ['']])('yields nothing for %s', (text) => {
    expect(parseRegistryErrors(body(text))).toEqual([]);
  });
});

describe('statusError', () => {
  it('maps 404 to NOT_FOUND naming the thing and the host, with the hint', () => {
    const err = statusError(404, body({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }), subject);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toBe('manifest team/app:v1 not found on r.example: MANIFEST_UNKNOWN: manifest unknown');
    expect(err.hint).toBe('check the tag');
    expect(err.details).toMatchObject({ status: 404, errors: [{ code: 'MANIFEST_UNKNOWN' }] });
  });
  it('maps 403 to AUTH, 429 to RATE_LIMITED with Retry-After, 5xx to REGISTRY', () => {
    expect(statusError(403, body(''), subject).code).toBe('AUTH');
    const limited = statusError(429, body(''), subject, 3000);
    expect([limited.code, limited.retryAfterMs]).toEqual(['RATE_LIMITED', 3000]);
    expect(statusError(503, body('Service Unavailable'), subject)).toMatchObject({
      code: 'REGISTRY',
      message: 'registry r.example failed with 503 for manifest team/app:v1: Service Unavailable',
    });
  });
  it('maps DIGEST_INVALID to INTEGRITY', () => {
    const err = statusError(400, body({ errors: [{ code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' }] }), subject);
    expect(err.code).toBe('INTEGRITY');
  });
  it('gives a specific hint for MANIFEST_BLOB_UNKNOWN', () => {
    const err = statusError(400, body({ errors: [{ code: 'MANIFEST_BLOB_UNKNOWN', message: 'blob unknown to registry' }] }), subject);
    expect(err.code).toBe('REGISTRY');
    expect(err.hint).toContain('push the blobs and child manifests first');
  });
  it('keeps messages on one line and short, and drops binary bodies', () => {
    const long = statusError(500, body(`line one\nline two ${'x'.repeat(500)}`), subject);
    expect(long.message).not.toContain('\n');
    expect(long.message.length).toBeLessThan(300);
    expect(statusError(500, Buffer.from([0, 1, 2, 255]), subject).message).toBe('registry r.example failed with 500 for manifest team/app:v1');
  });
});

describe('networkError', () => {
  const ctx = { subject, plainHttp: false };
  it.each([
    ['ECONNREFUSED', 'NETWORK', 'cannot connect to registry r.example: connection refused'],
    ['ENOTFOUND', 'NETWORK', 'cannot resolve registry host r.example'],
    ['UND_ERR_CONNECT_TIMEOUT', 'NETWORK', 'cannot connect to registry r.example: no connection within the connect timeout'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'TLS', 'TLS certificate of registry r.example is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'TLS', 'TLS certificate of registry r.example is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'TLS', 'TLS certificate of registry r.example does not match its name'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'TLS', 'registry r.example does not speak TLS on this port (wrong version number)'],
    ['ECONNRESET', 'NETWORK', 'connection to registry r.example was lost during manifest team/app:v1 (ECONNRESET)'],
  ])('%s → %s', (code, want, message) => {
    const err = networkError(coded(code), ctx) as AirlockError;
    expect(err).toBeInstanceOf(AirlockError);
    expect([err.code, err.message]).toEqual([want, message]);
    expect(err.hint).toBeTruthy();
  });
  it('hints at --ca-file, certs.d and --insecure-skip-tls-verify for TLS trust problems', () => {
    const err = networkError(coded('SELF_SIGNED_CERT_IN_CHAIN'), ctx) as AirlockError;
    expect(err.hint).toContain('--ca-file');
    expect(err.hint).toContain('/etc/docker/certs.d/r.example/ca.crt');
    expect(err.hint).toContain('--insecure-skip-tls-verify');
  });
  it('hints at --plain-http for a refused connection', () => {
    expect((networkError(coded('ECONNREFUSED'), ctx) as AirlockError).hint).toContain('--plain-http');
  });
  it('reports an abort as INTERRUPTED', () => {
    const ac = new AbortController();
    ac.abort();
    expect((networkError(new Error('whatever'), { ...ctx, signal: ac.signal }) as AirlockError).code).toBe('INTERRUPTED');
  });
  it('passes AirlockErrors and unknown errors through', () => {
    const own = new AirlockError('AUTH', 'x');
    expect(networkError(own, ctx)).toBe(own);
    const bug = new TypeError('bug');
    expect(networkError(bug, ctx)).toBe(bug);
  });
});

describe('readCapped', () => {
  const stream = (...chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c)));
  it('reads a body under the cap', async () => {
    expect((await readCapped(stream('ab', 'cd'), 10, 'throw')).toString()).toBe('abcd');
  });
  it('truncates or throws at the cap', async () => {
    expect((await readCapped(stream('abc', 'def', 'ghi'), 5, 'truncate')).toString()).toBe('abcde');
    await expect(readCapped(stream('abc', 'def'), 5, 'throw')).rejects.toBeInstanceOf(BodyTooLargeError);
  });
});

describe('parseLinkNext', () => {
  it.each([
    ['</v2/a/tags/list?last=x&n=1000>; rel="next"', '/v2/a/tags/list?last=x&n=1000'],
    ['<https://r.example/v2/a/tags/list?last=b>; rel=next', 'https://r.example/v2/a/tags/list?last=b'],
    ['</prev>; rel="prev", </next>; rel="next"', '/next'],
    ['</both>; title="a;b"; rel="prev next"', '/both'],
    ['</x>;REL="NEXT"', '/x'],
  ])('%s', (header, want) => {
    expect(parseLinkNext(header)).toBe(want);
  });
  it('reads several header values', () => {
    expect(parseLinkNext(['</p>; rel="prev"', '</n>; rel="next"'])).toBe('/n');
  });
  it.each([[undefined], [''], ['</p>; rel="prev"'], ['garbage'], ['</x>; rel="nextpage"']])('finds no next in %s', (header) => {
    expect(parseLinkNext(header)).toBeUndefined();
  });
});

describe('contentRangeStart', () => {
  it.each([
    ['bytes 100-199/200', 100],
    ['bytes 0-0/*', 0],
    [undefined, undefined],
    ['bytes */200', undefined],
    ['items 1-2/3', undefined],
  ])('%s → %s', (value, want) => {
    expect(contentRangeStart(value)).toBe(want);
  });
});
