/**
 * Verification receipts end to end, with the real CLI and a real docker-registry: `bundle verify
 * --receipt` with and without `--sign-key`, `bundle import --receipt --receipt-key` accepted for the
 * right bundle and key and refused for another bundle, an untrusted key, a tampered receipt and
 * archive bytes that differ from the receipt's (with nothing written to the target), `--json`
 * reporting the receipt, and the auditor's check of a receipt with openssl alone.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
let tmp: TempDir;
let source: TestRegistry;
let target: TestRegistry;
let bundle: string;
let other: string;

beforeAll(async () => {
  tmp = await makeTempDir('receipt');
  const corpus = await writeCorpus(`${tmp.path}/upstream`);
  [source, target] = await Promise.all([startRegistry(), startRegistry()]);
  await seedRegistry(source, corpus.dir);
  for (const name of ['mirror', 'gap', 'stranger']) expect((await airlock(['key', 'generate', '--out', `${tmp.path}/${name}`])).code).toBe(0);
  bundle = `${tmp.path}/mirror.tar.zst`;
  other = `${tmp.path}/other.tar.zst`;
  const create = (ref: string, out: string) =>
    airlock(['bundle', 'create', `${source.host}/${ref}`, '-o', out, '--sign-key', `${tmp.path}/mirror.key`, '--plain-http', '-q']);
  const [a, b] = await Promise.all([create('library/busybox:musl', bundle), create('library/alpine:3.18', other)]);
  expect(a.code).toBe(0);
  expect(b.code).toBe(0);
});

afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
  await tmp?.remove();
});

/** `bundle import FILE --to TARGET/PREFIX` with the mirror key trusted, and more arguments. */
const importInto = (file: string, prefix: string, ...args: string[]) =>
  airlock(['bundle', 'import', file, '--to', `${target.host}/${prefix}`, '--plain-http', '--trust', `${tmp.path}/mirror.pub`, ...args]);

/** The repositories the target registry holds. */
async function catalog(): Promise<string[]> {
  const res = await fetch(`${target.url}/v2/_catalog`);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

interface ReceiptFile {
  mediaType: string;
  receipt: string;
  signature: { keyId: string; signedDigest: string; signature: string } | null;
}

describe('bundle verify --receipt', () => {
  it('writes a signed receipt naming the bundle, the archive sha256, the checks and the result', async () => {
    const out = `${tmp.path}/signed.receipt.json`;
    const r = await airlock([
      'bundle',
      'verify',
      bundle,
      '--trust',
      `${tmp.path}/mirror.pub`,
      '--receipt',
      out,
      '--sign-key',
      `${tmp.path}/gap.key`,
      '--json',
      '-q',
    ]);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { bundleId: string; keyId: string; receipt: { path: string; result: string; signed: boolean; keyId: string } };
    expect(result.receipt).toMatchObject({ path: out, result: 'passed', signed: true });
    const file = JSON.parse(await readFile(out, 'utf8')) as ReceiptFile;
    expect(file.signature?.keyId).toBe(result.receipt.keyId);
    const receipt = JSON.parse(file.receipt) as {
      bundle: { id: string; keyId: string };
      files: Array<{ name: string; sha256: string; size: number }>;
      checks: string[];
      result: string;
    };
    expect(receipt.bundle.id).toBe(result.bundleId);
    expect(receipt.bundle.keyId).toBe(result.keyId);
    const sidecar = (await readFile(`${bundle}.sha256`, 'utf8')).slice(0, 64);
    expect(receipt.files).toEqual([{ name: 'mirror.tar.zst', size: (await readFile(bundle)).length, sha256: sidecar }]);
    expect(receipt.checks).toContain('sidecar');
    expect(receipt.result).toBe('passed');
  });

  it('writes an unsigned receipt without --sign-key, refuses to replace one, and --sign-key alone is a usage error', async () => {
    const out = `${tmp.path}/unsigned.receipt.json`;
    const r = await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/mirror.pub`, '--receipt', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`receipt written to ${out} (unsigned)`);
    expect((JSON.parse(await readFile(out, 'utf8')) as ReceiptFile).signature).toBeNull();
    const again = await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/mirror.pub`, '--receipt', out]);
    expect(again.code).toBe(EXIT_CODES.USAGE);
    expect(again.stderr).toContain(`${out} already exists`);
    const alone = await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/mirror.pub`, '--sign-key', `${tmp.path}/gap.key`]);
    expect(alone.code).toBe(EXIT_CODES.USAGE);
  });

  it('an auditor checks a receipt with openssl alone, as the README shows', async () => {
    const out = `${tmp.path}/audit.receipt.json`;
    expect((await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/mirror.pub`, '--receipt', out, '--sign-key', `${tmp.path}/gap.key`])).code).toBe(
      0,
    );
    const file = JSON.parse(await readFile(out, 'utf8')) as ReceiptFile;
    await writeFile(`${tmp.path}/payload.json`, file.receipt);
    await writeFile(`${tmp.path}/sig.bin`, Buffer.from(file.signature!.signature, 'base64'));
    const { stdout } = await run('openssl', [
      'pkeyutl',
      '-verify',
      '-pubin',
      '-inkey',
      `${tmp.path}/gap.pub`,
      '-rawin',
      '-in',
      `${tmp.path}/payload.json`,
      '-sigfile',
      `${tmp.path}/sig.bin`,
    ]);
    expect(stdout).toContain('Signature Verified Successfully');
    const { stdout: der } = await run('sh', ['-c', `openssl pkey -pubin -in '${tmp.path}/gap.pub' -outform DER | sha256sum`]);
    expect(`sha256:${der.slice(0, 64)}`).toBe(file.signature!.keyId);
  });
});

describe('bundle import --receipt', () => {
  let receipt: string;
  beforeAll(async () => {
    receipt = `${tmp.path}/import.receipt.json`;
    const r = await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/mirror.pub`, '--receipt', receipt, '--sign-key', `${tmp.path}/gap.key`, '-q']);
    expect(r.code).toBe(0);
  });

  it('accepts the receipt for this bundle signed by a trusted gap key, and reports it (--json too)', async () => {
    const r = await importInto(bundle, 'ok', '--receipt', receipt, '--receipt-key', `${tmp.path}/gap.pub`, '-q');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/receipt .*import\.receipt\.json: verified .* signed by receipt key sha256:[a-f0-9]{64}; the archive's sha256 matches/);
    const j = await importInto(bundle, 'json', '--receipt', receipt, '--receipt-key', `${tmp.path}/gap.pub`, '--json', '-q');
    expect(j.code).toBe(0);
    const result = JSON.parse(j.stdout) as { receipt: { path: string; keyId: string; verified: string; checks: string[]; files: Array<{ sha256: string }> } };
    expect(result.receipt.path).toBe(receipt);
    expect(result.receipt.checks).toContain('content');
    expect(result.receipt.files[0]!.sha256).toBe((await readFile(`${bundle}.sha256`, 'utf8')).slice(0, 64));
    expect(await catalog()).toEqual(expect.arrayContaining([expect.stringMatching(/^ok\//), expect.stringMatching(/^json\//)]));
  });

  it('refuses a receipt for another bundle, by an untrusted key, tampered, or without a receipt key; nothing is written', async () => {
    const before = await catalog();
    const another = await importInto(other, 'another', '--receipt', receipt, '--receipt-key', `${tmp.path}/gap.pub`);
    expect(another.code).toBe(EXIT_CODES.INPUT_INVALID);
    expect(another.stderr).toMatch(/is a receipt for bundle sha256:[a-f0-9]{64}, not for .*other\.tar\.zst/);

    const untrusted = await importInto(bundle, 'untrusted', '--receipt', receipt, '--receipt-key', `${tmp.path}/stranger.pub`);
    expect(untrusted.code).toBe(EXIT_CODES.SIGNATURE);
    expect(untrusted.stderr).toMatch(/receipt is signed by key sha256:[a-f0-9]{64}, which is not trusted/);
    expect(untrusted.stderr).toContain('--receipt-key');

    const file = JSON.parse(await readFile(receipt, 'utf8')) as ReceiptFile;
    const tampered = `${tmp.path}/tampered.receipt.json`;
    await writeFile(tampered, JSON.stringify({ ...file, receipt: file.receipt.replace(/"host": "[^"]*"/, '"host": "somewhere-else"') }));
    const t = await importInto(bundle, 'tampered', '--receipt', tampered, '--receipt-key', `${tmp.path}/gap.pub`);
    expect(t.code).toBe(EXIT_CODES.SIGNATURE);
    expect(t.stderr).toContain('the receipt was modified after it was signed');

    const keyless = await importInto(bundle, 'keyless', '--receipt', receipt);
    expect(keyless.code).toBe(EXIT_CODES.USAGE);
    expect(await catalog()).toEqual(before);
  });

  it('refuses archive bytes that differ from the receipt before writing anything', async () => {
    const altered = `${tmp.path}/altered.tar.zst`;
    const bytes = await readFile(bundle);
    const reader = await ArchiveReader.open(bundle);
    // A byte inside a stored (raw) layer: the head, the index and every frame header stay intact.
    const entry = reader.entries().find((e) => e.encoding === 'raw' && e.size > 4096)!;
    await reader.close();
    bytes[entry.offset + 13 + 512 + 2048]! ^= 0xff;
    await writeFile(altered, bytes);
    const before = await catalog();
    const r = await importInto(altered, 'altered', '--receipt', receipt, '--receipt-key', `${tmp.path}/gap.pub`);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toMatch(
      /altered\.tar\.zst has sha256 [a-f0-9]{64} .*recorded [a-f0-9]{64} .*for mirror\.tar\.zst: these are not the bytes that were verified/,
    );
    expect(await catalog()).toEqual(before);
  });

  it('a failed verification leaves a signed receipt that import refuses', async () => {
    const altered = `${tmp.path}/altered.tar.zst`;
    const failed = `${tmp.path}/failed.receipt.json`;
    const v = await airlock(['bundle', 'verify', altered, '--trust', `${tmp.path}/mirror.pub`, '--receipt', failed, '--sign-key', `${tmp.path}/gap.key`]);
    expect(v.code).toBe(EXIT_CODES.INTEGRITY);
    expect(v.stderr).toContain(`${failed} records the failure`);
    const inner = JSON.parse((JSON.parse(await readFile(failed, 'utf8')) as ReceiptFile).receipt) as { result: string; problems: unknown[] };
    expect(inner.result).toBe('failed');
    expect(inner.problems.length).toBeGreaterThan(0);
    const r = await importInto(altered, 'failed', '--receipt', failed, '--receipt-key', `${tmp.path}/gap.pub`);
    expect(r.code).toBe(EXIT_CODES.POLICY);
    expect(r.stderr).toMatch(/records that .*altered\.tar\.zst FAILED verification/);
  });
});

describe('receipts of a split bundle', () => {
  let first: string;
  let receipt: string;
  beforeAll(async () => {
    const out = `${tmp.path}/split/mirror.tar.zst`;
    await run('mkdir', ['-p', `${tmp.path}/split`]);
    const c = await airlock([
      'bundle',
      'create',
      `${source.host}/library/busybox:musl`,
      `${source.host}/coreos/etcd:v3.3.0`,
      `${source.host}/coreos/etcd:v3.5.0`,
      '-o',
      out,
      '--sign-key',
      `${tmp.path}/mirror.key`,
      '--plain-http',
      '--split',
      '64KiB',
      '-q',
    ]);
    expect(c.code).toBe(0);
    first = `${out}.part-001`;
    receipt = `${tmp.path}/split.receipt.json`;
    const v = await airlock(['bundle', 'verify', first, '--trust', `${tmp.path}/mirror.pub`, '--receipt', receipt, '--sign-key', `${tmp.path}/gap.key`, '-q']);
    expect(v.code).toBe(0);
  });

  it('lists every part with its sha256, as the sidecar does, and import from the parts accepts it', async () => {
    const inner = JSON.parse((JSON.parse(await readFile(receipt, 'utf8')) as ReceiptFile).receipt) as { files: Array<{ name: string; sha256: string }> };
    const sidecar = (await readFile(`${tmp.path}/split/mirror.tar.zst.sha256`, 'utf8'))
      .split('\n')
      .filter((l) => /^[a-f0-9]{64} {2}/.test(l))
      .map((l) => ({ sha256: l.slice(0, 64), name: l.slice(66) }));
    expect(sidecar.length).toBeGreaterThan(1);
    expect(inner.files.map((f) => ({ sha256: f.sha256, name: f.name }))).toEqual(sidecar);
    const r = await importInto(first, 'split', '--receipt', receipt, '--receipt-key', `${tmp.path}/gap.pub`, '-q');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('refuses a set whose part differs from the receipt, naming the part', async () => {
    const copy = `${tmp.path}/split-copy`;
    await run('cp', ['-r', `${tmp.path}/split`, copy]);
    await run('rm', [`${copy}/mirror.tar.zst.sha256`]);
    const part = `${copy}/mirror.tar.zst.part-002`;
    const bytes = await readFile(part);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(part, bytes);
    const before = await catalog();
    const r = await importInto(`${copy}/mirror.tar.zst.part-001`, 'split-damaged', '--receipt', receipt, '--receipt-key', `${tmp.path}/gap.pub`);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toMatch(/mirror\.tar\.zst\.part-002 has sha256 [a-f0-9]{64} .*these are not the bytes that were verified/);
    expect(await catalog()).toEqual(before);
  });
});
