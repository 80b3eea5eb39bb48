import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { parseDigest, sha256Digest } from '../../src/digest/digest.js';
import { VerifyingStream, verifiedChunks } from '../../src/digest/verify.js';
import { isAirlockError } from '../../src/errors.js';

function chunks(data: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

type Run = (data: Buffer, expected: { digest: string; size: number }) => Promise<{ got: Buffer; err: unknown }>;

async function runStream(data: Buffer, expected: { digest: string; size: number }): Promise<{ got: Buffer; err: unknown }> {
  const got: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      cb();
    },
  });
  const v = new VerifyingStream(expected as never, 'blob under test');
  const err = await pipeline(Readable.from(chunks(data, 1000)), v, sink).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { got: Buffer.concat(got), err };
}

async function runChunks(data: Buffer, expected: { digest: string; size: number }): Promise<{ got: Buffer; err: unknown }> {
  const got: Buffer[] = [];
  try {
    for await (const chunk of verifiedChunks(Readable.from(chunks(data, 1000)), expected as never, 'blob under test')) got.push(chunk);
    return { got: Buffer.concat(got), err: undefined };
  } catch (err) {
    return { got: Buffer.concat(got), err };
  }
}

describe.each<[string, Run]>([
  ['VerifyingStream', runStream],
  ['verifiedChunks', runChunks],
])('%s', (_name, run) => {
  const data = Buffer.from('x'.repeat(10_000));
  const good = { digest: sha256Digest(data), size: data.length };

  it('passes correct content through unchanged', async () => {
    const { got, err } = await run(data, good);
    expect(err).toBeUndefined();
    expect(got.equals(data)).toBe(true);
  });

  it('fails on a wrong digest and never hands on the last chunk', async () => {
    const bad = Buffer.from(data);
    bad[bad.length - 1] = 0x79;
    const { got, err } = await run(bad, good);
    expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
    expect((err as Error).message).toContain(good.digest);
    expect(got.length).toBeLessThan(data.length);
  });

  it('fails on short content', async () => {
    const { err } = await run(data.subarray(0, 9000), good);
    expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
    expect((err as Error).message).toContain('expected 10000 bytes, got 9000');
  });

  it('fails as soon as content runs over the expected size', async () => {
    const { err, got } = await run(Buffer.concat([data, data]), good);
    expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
    expect(got.length).toBeLessThanOrEqual(data.length);
  });
});

describe('parseDigest', () => {
  it('accepts sha256 and rejects the rest with distinct codes', () => {
    const d = sha256Digest('a');
    expect(parseDigest(d)).toBe(d);
    expect(() => parseDigest('sha512:' + 'a'.repeat(128))).toThrowError(/only sha256/);
    expect(() => parseDigest('sha256:XYZ')).toThrowError(/not a valid sha256 digest/);
  });
});
