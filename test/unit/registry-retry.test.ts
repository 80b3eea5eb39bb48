import { describe, expect, it } from 'vitest';
import { statusError } from '../../src/registry/errors.js';
import { backoffDelay, DEFAULT_RETRY, isTemporary, parseRetryAfter, retryDelay, withRetry, type RetryOptions } from '../../src/registry/retry.js';

const subject = { host: 'r.example', repository: 'a/b', what: 'manifest a/b:1' };
const http = (status: number, retryAfterMs?: number) => statusError(status, Buffer.alloc(0), subject, retryAfterMs);
const coded = (code: string): Error => Object.assign(new Error(code), { code });

function fastRetry(overrides: Partial<RetryOptions> = {}): RetryOptions & { slept: number[] } {
  const slept: number[] = [];
  return {
    ...DEFAULT_RETRY,
    random: () => 0.5,
    sleep: async (ms) => {
      slept.push(ms);
    },
    ...overrides,
    slept,
  };
}

describe('backoffDelay', () => {
  const opts = { baseDelayMs: 100, maxDelayMs: 1000 };
  it('doubles per attempt with equal jitter and a cap', () => {
    expect(backoffDelay(0, { ...opts, random: () => 0 })).toBe(50);
    expect(backoffDelay(0, { ...opts, random: () => 0.999999 })).toBe(100);
    expect(backoffDelay(3, { ...opts, random: () => 0 })).toBe(400);
    expect(backoffDelay(10, { ...opts, random: () => 0.999999 })).toBe(1000);
    expect(backoffDelay(10, { ...opts, random: () => 0 })).toBe(500);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['Wed, 01 May 2024 12:00:30 GMT', 30_000],
    ['Wed, 01 May 2024 11:00:00 GMT', 0],
  ])('%s → %d ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });
  it.each([[undefined], [''], ['-5'], ['1.5'], ['soon'], ['12abc']])('ignores %s', (value) => {
    expect(parseRetryAfter(value, now)).toBeUndefined();
  });
});

describe('isTemporary', () => {
  it.each([429, 502, 503, 504])('retries HTTP %d for any method', (status) => {
    expect(isTemporary(http(status), { idempotent: false })).toBe(true);
  });
  it('retries 500 only for idempotent requests', () => {
    expect(isTemporary(http(500), { idempotent: true })).toBe(true);
    expect(isTemporary(http(500), { idempotent: false })).toBe(false);
  });
  it.each([400, 401, 403, 404, 416, 501])('does not retry HTTP %d', (status) => {
    expect(isTemporary(http(status), { idempotent: true })).toBe(false);
  });
  it.each(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETRUNCATED', 'EAI_AGAIN'])('retries %s', (code) => {
    expect(isTemporary(coded(code))).toBe(true);
  });
  it('retries a refused connection only once the registry has answered', () => {
    expect(isTemporary(coded('ECONNREFUSED'), { contacted: false })).toBe(false);
    expect(isTemporary(coded('ECONNREFUSED'), { contacted: true })).toBe(true);
    expect(isTemporary(coded('UND_ERR_CONNECT_TIMEOUT'), { contacted: true })).toBe(true);
  });
  it('looks at the cause of a wrapped error', () => {
    expect(isTemporary(new Error('wrapped', { cause: coded('ECONNRESET') }))).toBe(true);
  });
  it.each(['ENOTFOUND', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER'])('does not retry %s', (code) => {
    expect(isTemporary(coded(code), { contacted: true, idempotent: true })).toBe(false);
  });
  it('decides by code, not by message text', () => {
    expect(isTemporary(new Error('ECONNRESET socket hang up'))).toBe(false);
    expect(isTemporary(new TypeError('boom'))).toBe(false);
  });
});

describe('retryDelay', () => {
  it('honours Retry-After up to the cap, else backs off', () => {
    const opts = fastRetry({ maxRetryAfterMs: 5000 });
    expect(retryDelay(http(429, 2000), 0, opts)).toBe(2000);
    expect(retryDelay(http(429, 90_000), 0, opts)).toBe(5000);
    expect(retryDelay(http(503), 2, opts)).toBe(backoffDelay(2, opts));
  });
});

describe('withRetry', () => {
  it('retries temporary failures, then succeeds', async () => {
    const opts = fastRetry();
    let calls = 0;
    const got = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw http(503);
        return 'ok';
      },
      opts,
      () => ({ idempotent: true }),
    );
    expect(got).toBe('ok');
    expect(calls).toBe(3);
    expect(opts.slept).toEqual([backoffDelay(0, opts), backoffDelay(1, opts)]);
  });

  it('stops after the configured retries and throws the last error', async () => {
    const opts = fastRetry({ retries: 2 });
    let calls = 0;
    const err = await withRetry(
      async () => {
        calls++;
        throw http(429, 10);
      },
      opts,
      () => ({}),
    ).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect(opts.slept).toEqual([10, 10]);
    expect((err as { code: string }).code).toBe('RATE_LIMITED');
  });

  it('does not retry permanent failures', async () => {
    const opts = fastRetry();
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw http(404);
        },
        opts,
        () => ({ idempotent: true }),
      ),
    ).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(calls).toBe(1);
  });

  it('does not retry once the signal has aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw coded('ECONNRESET');
        },
        fastRetry(),
        () => ({}),
        ac.signal,
      ),
    ).rejects.toThrow('ECONNRESET');
    expect(calls).toBe(1);
  });
});
