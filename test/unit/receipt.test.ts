/**
 * Verification receipts: the document (made, signed, read back, refused when tampered, of another
 * document type, or signed by an untrusted key, with every schema problem named), verify writing
 * one for a pass and for a failure, and import relying on one without skipping anything.
 */
import { failure } from '../support/failure.js';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { writeCorpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { generateKeyPair, keyIdOf, loadPublicKey, loadSigningKey, type SigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { parseBundleManifest } from '../../src/bundle/manifest.js';
import { readHead } from '../../src/bundle/read-head.js';
import { signBundle } from '../../src/bundle/signing.js';
import { partName, splitSidecar } from '../../src/bundle/split-set.js';
import { expandImages } from '../../src/copy/expand.js';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { verifyBundle } from '../../src/ops/verify.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { bundleFiles, hashFiles } from '../../src/receipt/files.js';
import { checkReceiptFiles, checkReceiptFor, parseReceipt, RECEIPT_MEDIA_TYPE, writeReceipt, type Receipt } from '../../src/receipt/receipt.js';
import { verifyWithReceipt } from '../../src/receipt/verify-receipt.js';
import validateReceiptPayload from '../../src/generated/receipt-validate.js';
import validateReceiptFile from '../../src/generated/receipt-file-validate.js';
import { MemoryRegistry } from '../support/memory-registry.js';
import { MemoryStateStore } from '../support/memory-state.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

function key(): { signing: SigningKey; trusted: TrustedKey } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(publicKey);
  return { signing: { privateKey, keyId }, trusted: { publicKey, keyId, path: 'gap.pub' } };
}

const BUNDLE_ID = sha256Digest('bundle.json') as Digest;
const HEX = 'ab'.repeat(32);

const passed: Receipt = {
  schemaVersion: 1,
  mediaType: RECEIPT_MEDIA_TYPE,
  bundle: { id: BUNDLE_ID, created: '2026-12-01T10:00:00Z', keyId: sha256Digest('signer'), sequence: 1764583200, expires: '2026-12-31T10:00:00Z' },
  result: 'passed',
  files: [{ name: 'mirror.tar.zst', size: 1234, sha256: HEX }],
  checks: ['signature', 'manifest', 'expiry', 'structure', 'content', 'completeness', 'references', 'sidecar'],
  verified: '2026-12-01T11:00:00.000Z',
  verifier: 'airlock/0.1.0',
  host: 'verify-station',
};

/** The code (and reason) an action fails with, or "ok" (the outcome, where test/support/failure.ts wants a failure). */
function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (!(err instanceof AirlockError)) throw err;
    const reason = err.details?.reason;
    return typeof reason === 'string' ? `${err.code}:${reason}` : err.code;
  }
}

/** A receipt file with its inner receipt string changed by `edit` (the signature kept). */
function editInner(file: Buffer, edit: (inner: string) => string): Buffer {
  const doc = JSON.parse(file.toString()) as { receipt: string };
  doc.receipt = edit(doc.receipt);
  return Buffer.from(JSON.stringify(doc));
}

describe('the receipt document', () => {
  it('round-trips unsigned and signed; the signed one names its key and covers the exact bytes', () => {
    const k = key();
    const plain = parseReceipt(writeReceipt(passed), 'r.json');
    expect(plain.receipt).toEqual(passed);
    expect(plain.signed).toBe(false);
    expect(plain.keyId).toBeUndefined();
    const file = writeReceipt(passed, k.signing);
    const signed = parseReceipt(file, 'r.json', [k.trusted]);
    expect(signed.receipt).toEqual(passed);
    expect(signed.keyId).toBe(k.trusted.keyId);
    const doc = JSON.parse(file.toString()) as { mediaType: string; receipt: string; signature: { signedDigest: string } };
    expect(doc.mediaType).toBe(RECEIPT_MEDIA_TYPE);
    expect(doc.signature.signedDigest).toBe(sha256Digest(doc.receipt));
    expect(signed.id).toBe(sha256Digest(doc.receipt));
    // What it is about and its result come first, for a reader of the file.
    expect(Object.keys(JSON.parse(doc.receipt) as object).slice(0, 4)).toEqual(['schemaVersion', 'mediaType', 'bundle', 'result']);
    expect(validateReceiptFile(doc)).toBe(true);
  });

  it('refuses a tampered field, an untrusted key, an unsigned receipt when keys are given, and a signature from another document', () => {
    const k = key();
    const file = writeReceipt(passed, k.signing);
    expect(
      outcome(() =>
        parseReceipt(
          editInner(file, (s) => s.replace('"passed"', '"passed" ')),
          'r.json',
          [k.trusted],
        ),
      ),
    ).toBe('SIGNATURE:modified');
    expect(
      outcome(() =>
        parseReceipt(
          editInner(file, (s) => s.replace('verify-station', 'other-station')),
          'r.json',
          [k.trusted],
        ),
      ),
    ).toBe('SIGNATURE:modified');
    expect(outcome(() => parseReceipt(file, 'r.json', [key().trusted]))).toBe('SIGNATURE:untrusted');
    expect(outcome(() => parseReceipt(writeReceipt(passed), 'r.json', [k.trusted]))).toBe('SIGNATURE:unsigned');
    // A signature that does not verify (same digest claimed, other bytes signed).
    const forged = JSON.parse(file.toString()) as { signature: { signature: string } };
    forged.signature.signature = JSON.parse(writeReceipt({ ...passed, host: 'x' }, k.signing).toString()).signature.signature;
    expect(outcome(() => parseReceipt(Buffer.from(JSON.stringify(forged)), 'r.json', [k.trusted]))).toBe('SIGNATURE:invalid');
  });

  it('an untrusted receipt names --receipt-key, not --trust', () => {
    const k = key();
    expect(() => parseReceipt(writeReceipt(passed, k.signing), 'r.json', [key().trusted])).toThrow(
      expect.objectContaining({
        message: expect.stringMatching(/^r\.json: receipt is signed by key sha256:[a-f0-9]{64}, which is not trusted/),
        hint: expect.stringContaining('--receipt-key'),
      }),
    );
  });

  it('never takes a bundle signature for a receipt signature, nor the other way round', () => {
    const k = key();
    const bundleJson = Buffer.from(JSON.stringify({ schemaVersion: 1, mediaType: 'application/vnd.airlock.bundle.v1+json' }, null, 2) + '\n');
    const bundleSig = JSON.parse(signBundle(bundleJson, k.signing).bytes.toString()) as unknown;
    // bundle.json and bundle.json.sig, both genuine, wrapped up as a receipt: the signature verifies, the document is not a receipt.
    const wrapped = Buffer.from(JSON.stringify({ mediaType: RECEIPT_MEDIA_TYPE, receipt: bundleJson.toString(), signature: bundleSig }));
    expect(outcome(() => parseReceipt(wrapped, 'r.json', [k.trusted]))).toBe('SIGNATURE:wrong-document');
    // A receipt's bytes and signature presented as bundle.json and bundle.json.sig: not a bundle manifest.
    const receiptDoc = JSON.parse(writeReceipt(passed, k.signing).toString()) as { receipt: string };
    expect(outcome(() => parseBundleManifest(Buffer.from(receiptDoc.receipt), 'b.tar.zst'))).toBe('INTEGRITY');
    // Another airlock document (an inventory envelope) is not a receipt file.
    const inventory = Buffer.from(JSON.stringify({ mediaType: 'application/vnd.airlock.inventory.v1+json', inventory: '{}', signature: null }));
    expect(outcome(() => parseReceipt(inventory, 'r.json', [k.trusted]))).toBe('INPUT_INVALID');
  });

  it('refuses a deeply nested receipt before building it: a 32 MiB one took ~19 s and 1.8 GB', () => {
    // The envelope is parsed before its signature can be checked: anyone can hand one over.
    const deep = Buffer.from(`${'['.repeat(1 << 20)}${']'.repeat(1 << 20)}`);
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(() => parseReceipt(deep, 'r.json')).toThrow(/nested deeper than 64 levels/);
      expect(parse).not.toHaveBeenCalled();
    } finally {
      parse.mockRestore();
    }
  });

  it('names every schema problem', () => {
    const bad = { ...passed, result: 'maybe', files: [{ name: '', size: -1, sha256: 'XYZ' }], extra: 1 } as unknown as Receipt;
    let err: AirlockError | undefined;
    try {
      parseReceipt(writeReceipt(bad), 'r.json');
    } catch (e) {
      err = e as AirlockError;
    }
    expect(err?.code).toBe('INPUT_INVALID');
    const problems = err?.details?.problems as string[];
    expect(problems).toEqual(
      expect.arrayContaining([
        '/receipt: unknown field "extra"',
        expect.stringMatching(/^\/receipt\/result: "maybe" must be equal to one of the allowed values/),
        expect.stringMatching(/^\/receipt\/files\/0\/name: "" /),
        expect.stringMatching(/^\/receipt\/files\/0\/size: -1 /),
        expect.stringMatching(/^\/receipt\/files\/0\/sha256: "XYZ" /),
      ]),
    );
    expect(err?.message).toMatch(/^r\.json: not a valid airlock receipt: /);
    // A passed receipt must name its bundle and carries no problems; a failed one must list them.
    const { bundle: _bundle, ...noBundle } = passed;
    expect(validateReceiptPayload(noBundle)).toBe(false);
    expect(validateReceiptPayload({ ...passed, problems: [{ code: 'INTEGRITY', subject: 'x', message: 'y' }] })).toBe(false);
    expect(validateReceiptPayload({ ...passed, result: 'failed' })).toBe(false);
    expect(validateReceiptPayload({ ...noBundle, result: 'failed', problems: [{ code: 'INTEGRITY', subject: 'x', message: 'y' }] })).toBe(true);
    // Not JSON, not strict JSON, an impossible date.
    expect(outcome(() => parseReceipt(Buffer.from('{"mediaType":1,"mediaType":2}'), 'r.json'))).toBe('INPUT_INVALID');
    expect(outcome(() => parseReceipt(writeReceipt({ ...passed, verified: '2026-02-31T00:00:00Z' }), 'r.json'))).toBe('INPUT_INVALID');
  });

  it('the compiled validators judge as ajv does at run time', async () => {
    const schema = JSON.parse(await readFile(new URL('../../schemas/receipt.schema.json', import.meta.url), 'utf8')) as { $id: string };
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    ajv.addSchema(schema);
    const payload = ajv.getSchema(`${schema.$id}#/$defs/payload`)!;
    for (const doc of [passed, {}, { ...passed, result: 'failed' }, { ...passed, checks: ['signature', 'signature'] }]) {
      expect(validateReceiptPayload(doc)).toBe(payload(doc));
    }
  });

  it('is accepted only for its bundle, with a pass, and for the bytes it lists', () => {
    const read = parseReceipt(writeReceipt(passed), 'r.json');
    expect(outcome(() => checkReceiptFor(read, 'r.json', 'b.tar.zst', BUNDLE_ID))).toBe('ok');
    expect(outcome(() => checkReceiptFor(read, 'r.json', 'b.tar.zst', sha256Digest('other')))).toBe('INPUT_INVALID');
    const failed = parseReceipt(writeReceipt({ ...passed, result: 'failed', problems: [{ code: 'INTEGRITY', subject: 's', message: 'damaged' }] }), 'r.json');
    expect(() => checkReceiptFor(failed, 'r.json', 'b.tar.zst', BUNDLE_ID)).toThrow(/r\.json records that b\.tar\.zst FAILED verification: damaged/);
    expect(outcome(() => checkReceiptFiles(read, 'r.json', [{ name: 'renamed.tar.zst', size: 1234, sha256: HEX }]))).toBe('ok');
    expect(outcome(() => checkReceiptFiles(read, 'r.json', [{ name: 'mirror.tar.zst', size: 1234, sha256: 'cd'.repeat(32) }]))).toBe('INTEGRITY');
    expect(outcome(() => checkReceiptFiles(read, 'r.json', [{ name: 'mirror.tar.zst', size: 1235, sha256: HEX }]))).toBe('INTEGRITY');
    expect(outcome(() => checkReceiptFiles(read, 'r.json', []))).toBe('INTEGRITY');
  });
});

describe('verify --receipt and import --receipt', () => {
  let work: TempDir;
  let bundle: string;
  let trusted: TrustedKey[];
  let gap: SigningKey;
  let gapPub: TrustedKey;
  const TARGET = parseImportTarget('registry.lan/m');

  beforeAll(async () => {
    work = await makeTempDir('receipt');
    const signer = await generateKeyPair(join(work.path, 'mirror'));
    trusted = [await loadPublicKey(signer.publicKeyFile)];
    const g = await generateKeyPair(join(work.path, 'gap'));
    gap = await loadSigningKey(g.privateKeyFile);
    gapPub = await loadPublicKey(g.publicKeyFile);
    const corpus = await writeCorpus(join(work.path, 'corpus'), {
      images: [{ name: 'quay.io/a/one:1', layers: [{ id: 'base', size: 40 << 10 }] }],
    });
    const endpoints = {
      registry: () => {
        throw new Error('no registry');
      },
      layout: (d: string) => new Layout(d),
    };
    const images = await expandImages(imageListFromRefs([`oci:${corpus.dir}:quay.io/a/one:1`]).entries, endpoints);
    bundle = join(work.path, 'b.tar.zst');
    await createBundle({ images, output: bundle, signingKey: await loadSigningKey(signer.privateKeyFile), expiresInMs: 86_400_000 });
  });
  afterAll(async () => {
    await work?.remove();
  });

  it('records the bundle, its files and the checks verify made, signed with the gap key', async () => {
    const out = join(work.path, 'pass.json');
    const { result, receipt } = await verifyWithReceipt({ path: bundle, trusted }, { output: out, signingKey: gap });
    expect(receipt).toMatchObject({ path: out, result: 'passed', signed: true, keyId: gap.keyId });
    const read = parseReceipt(await readFile(out), out, [gapPub]);
    const m = parseBundleManifest((await readHead(bundle)).bundleJson, bundle);
    expect(read.receipt.bundle).toEqual({ id: result.bundleId, created: m.created, keyId: trusted[0]!.keyId, sequence: m.sequence, expires: m.expires });
    expect(read.receipt.files).toEqual(await hashFiles(await bundleFiles(bundle)));
    expect(read.receipt.files[0]!.sha256).toBe((await readFile(`${bundle}.sha256`, 'utf8')).slice(0, 64));
    expect(read.receipt.checks).toEqual(result.checks);
    expect(read.receipt.checks).toEqual(['signature', 'manifest', 'expiry', 'structure', 'content', 'completeness', 'references', 'sidecar']);
    expect(read.receipt.result).toBe('passed');
    expect(read.receipt.verifier).toMatch(/^airlock\/\d/);
    // A receipt is a record: an existing one is never replaced.
    await expect(verifyWithReceipt({ path: bundle, trusted }, { output: out })).rejects.toMatchObject({ code: 'USAGE' });
  });

  it("checks the sidecar against the receipt's hash of the archive, not a second one", async () => {
    const wrong = Promise.resolve({ sha256: '00'.repeat(32), parts: [] });
    await expect(verifyBundle({ path: bundle, trusted, fileHash: wrong })).rejects.toMatchObject({
      code: 'INTEGRITY',
      message: expect.stringContaining(`the file's sha256 ${'00'.repeat(32)} differs from ${bundle}.sha256`),
    });
    expect((await verifyBundle({ path: bundle, trusted })).checks).toContain('sidecar');
  });

  it('verifies, and imports with its receipt, a split set whose sidecar is over 1 MiB (thousands of parts)', async () => {
    // Real sets get there with 64 KiB parts of a 700 MB bundle (~10,000 parts, a line of ~100 bytes
    // each); here long names and tiny parts make as large a sidecar from the small bundle.
    const bytes = await readFile(bundle);
    const cut = Math.ceil(bytes.length / 4_500);
    const base = join(work.path, `${'n'.repeat(200)}.tar.zst`);
    const parts: Array<{ path: string; sha256: string }> = [];
    for (let i = 0, at = 0; at < bytes.length; i++, at += cut) {
      const path = partName(base, i + 1, 4);
      const piece = bytes.subarray(at, at + cut);
      await writeFile(path, piece);
      parts.push({ path, sha256: createHash('sha256').update(piece).digest('hex') });
    }
    const sidecar = splitSidecar(base, parts, createHash('sha256').update(bytes).digest('hex'));
    expect(sidecar.length).toBeGreaterThan(1 << 20);
    await writeFile(`${base}.sha256`, sidecar);
    const out = join(work.path, 'many-parts.json');
    const { result } = await verifyWithReceipt({ path: partName(base, 1, 4), trusted }, { output: out, signingKey: gap });
    expect(result.checks).toContain('sidecar');
    const imported = await importBundle({
      path: partName(base, 1, 4),
      target: TARGET,
      sink: new MemoryRegistry(),
      state: new MemoryStateStore(),
      trusted,
      receipt: { path: out, trusted: [gapPub] },
    });
    expect(imported.receipt?.files.length).toBe(parts.length);
  }, 60_000);

  it('records the bundle and the sidecar check of a split set that fails, named by its joined name or a part', async () => {
    const bytes = await readFile(bundle);
    const base = join(work.path, 'failing-set.tar.zst');
    const cut = Math.ceil(bytes.length / 3);
    const parts: Array<{ path: string; sha256: string }> = [];
    for (let i = 0; i * cut < bytes.length; i++) {
      const piece = Buffer.from(bytes.subarray(i * cut, (i + 1) * cut));
      parts.push({ path: partName(base, i + 1), sha256: createHash('sha256').update(piece).digest('hex') });
      if (i === 1) piece[100]! ^= 0xff; // damaged after the sidecar was written
      await writeFile(partName(base, i + 1), piece);
    }
    await writeFile(`${base}.sha256`, splitSidecar(base, parts, createHash('sha256').update(bytes).digest('hex')));
    const id = sha256Digest((await readHead(bundle)).bundleJson);
    for (const [name, path] of [
      ['joined', base],
      ['part', partName(base, 1)],
    ] as const) {
      const out = join(work.path, `failing-set-${name}.json`);
      await expect(verifyWithReceipt({ path, trusted }, { output: out })).rejects.toMatchObject({ code: 'INTEGRITY' });
      const read = parseReceipt(await readFile(out), out);
      expect(read.receipt.result, name).toBe('failed');
      expect(read.receipt.bundle?.id, name).toBe(id);
      expect(read.receipt.checks, name).toContain('sidecar');
      expect(read.receipt.files.length, name).toBe(3);
    }
  });

  it('records a split set found incomplete (a part missing), with the parts that are there', async () => {
    const bytes = await readFile(bundle);
    const base = join(work.path, 'incomplete-set.tar.zst');
    const cut = Math.ceil(bytes.length / 3);
    const parts: Array<{ path: string; sha256: string }> = [];
    for (let i = 0; i * cut < bytes.length; i++) {
      const piece = bytes.subarray(i * cut, (i + 1) * cut);
      parts.push({ path: partName(base, i + 1), sha256: createHash('sha256').update(piece).digest('hex') });
      if (i !== 1) await writeFile(partName(base, i + 1), piece); // part 2 never arrived
    }
    await writeFile(`${base}.sha256`, splitSidecar(base, parts, createHash('sha256').update(bytes).digest('hex')));
    // (Named one by one, a part that is not there is a wrong argument, INPUT_INVALID: no verdict.)
    for (const [name, path] of [
      ['first part', partName(base, 1)],
      ['joined name', base],
    ] as const) {
      const out = join(work.path, `incomplete-${name.replaceAll(' ', '-')}.json`);
      const err = await failure(verifyWithReceipt({ path, trusted }, { output: out }));
      expect(err, name).toMatchObject({ code: 'INTEGRITY' });
      expect(err.message, name).toMatch(/^part 2 of 3 \(incomplete-set\.tar\.zst\.part-002\) is missing/);
      expect((err.details as { receipt?: { path: string } }).receipt?.path, name).toBe(out);
      const read = parseReceipt(await readFile(out), out);
      expect(read.receipt.result, name).toBe('failed');
      expect(read.receipt.bundle?.id, name).toBe(sha256Digest((await readHead(bundle)).bundleJson));
      expect(
        read.receipt.files.map((f) => f.name),
        name,
      ).toEqual(['incomplete-set.tar.zst.part-001', 'incomplete-set.tar.zst.part-003']);
      expect(read.receipt.files[0]!.sha256, name).toBe(parts[0]!.sha256);
      expect(read.receipt.problems?.[0]?.message, name).toMatch(/part 2 of 3 .* is missing/);
    }
  });

  it('names what it was told to accept, and leaves out the checks it did not make', async () => {
    const out = join(work.path, 'unsigned.json');
    await verifyWithReceipt({ path: bundle, trusted: [], allowUnsigned: true, checksum: false }, { output: out });
    const read = parseReceipt(await readFile(out), out);
    expect(read.signed).toBe(false);
    expect(read.receipt.accepted).toEqual(['unsigned']);
    expect(read.receipt.checks).not.toContain('signature');
    expect(read.receipt.checks).not.toContain('sidecar');
    expect(read.receipt.bundle?.keyId).toBeUndefined();
  });

  it('records a failed verification with its problems, and still fails', async () => {
    const damaged = join(work.path, 'damaged.tar.zst');
    const bytes = await readFile(bundle);
    const reader = await ArchiveReader.open(bundle);
    const entry = reader.entries().find((e) => e.path.startsWith('blobs/') && e.size > 20_000)!;
    await reader.close();
    bytes[entry.offset + 13 + 512 + 1000]! ^= 0xff;
    await writeFile(damaged, bytes);
    const out = join(work.path, 'failed.json');
    const err = await verifyWithReceipt({ path: damaged, trusted, checksum: false }, { output: out, signingKey: gap }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INTEGRITY', hint: expect.stringContaining(`${out} records the failure`) });
    const read = parseReceipt(await readFile(out), out, [gapPub]);
    expect(read.receipt.result).toBe('failed');
    expect(read.receipt.problems?.[0]).toMatchObject({ code: 'INTEGRITY', message: expect.stringContaining('is damaged') });
    expect(read.receipt.bundle?.id).toBe(sha256Digest((await readHead(bundle)).bundleJson));
    expect(read.receipt.files[0]!.sha256).not.toBe((await hashFiles([bundle]))[0]!.sha256);
    // Import refuses a receipt that records a failure, before anything is written.
    const sink = new MemoryRegistry();
    const refused = await importBundle({
      path: damaged,
      target: TARGET,
      sink,
      state: new MemoryStateStore(),
      trusted,
      receipt: { path: out, trusted: [gapPub] },
    }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'POLICY' });
    expect(sink.log).toEqual([]);
  });

  it('writes no receipt for what is not a verdict (a missing file)', async () => {
    const out = join(work.path, 'none.json');
    await expect(verifyWithReceipt({ path: join(work.path, 'missing.tar.zst'), trusted }, { output: out })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    await expect(readFile(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('import relies on the receipt only for these exact bytes, and reports it', async () => {
    const out = join(work.path, 'for-import.json');
    await verifyWithReceipt({ path: bundle, trusted }, { output: out, signingKey: gap });
    const sink = new MemoryRegistry();
    const result = await importBundle({
      path: bundle,
      target: TARGET,
      sink,
      state: new MemoryStateStore(),
      trusted,
      receipt: { path: out, trusted: [gapPub] },
    });
    expect(result.receipt).toMatchObject({ path: out, keyId: gap.keyId, files: await hashFiles([bundle]) });
    expect(result.images.every((i) => i.tagged)).toBe(true);

    // The same bundle.json in an archive with other bytes: refused before the first write.
    const altered = join(work.path, 'altered.tar.zst');
    const bytes = await readFile(bundle);
    const reader = await ArchiveReader.open(bundle);
    const entry = reader.entries().find((e) => e.path.startsWith('blobs/') && e.size > 20_000)!;
    await reader.close();
    bytes[entry.offset + 13 + 512 + 1000]! ^= 0xff;
    await writeFile(altered, bytes);
    const empty = new MemoryRegistry();
    const refused = await importBundle({
      path: altered,
      target: TARGET,
      sink: empty,
      state: new MemoryStateStore(),
      trusted,
      receipt: { path: out, trusted: [gapPub] },
    }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'INTEGRITY', message: expect.stringContaining('these are not the bytes that were verified') });
    expect(empty.log).toEqual([]);

    // A receipt key is required, and must be the one that signed.
    const stranger = key().trusted;
    await expect(
      importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted, receipt: { path: out, trusted: [] } }),
    ).rejects.toMatchObject({
      code: 'USAGE',
    });
    await expect(
      importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted, receipt: { path: out, trusted: [stranger] } }),
    ).rejects.toMatchObject({ code: 'SIGNATURE' });
  });

  it('import still checks everything: a receipt does not make an untrusted bundle acceptable', async () => {
    const out = join(work.path, 'unsigned-accepted.json');
    await verifyWithReceipt({ path: bundle, trusted: [], allowUnsigned: true }, { output: out, signingKey: gap });
    const sink = new MemoryRegistry();
    await expect(
      importBundle({ path: bundle, target: TARGET, sink, state: new MemoryStateStore(), trusted: [], receipt: { path: out, trusted: [gapPub] } }),
    ).rejects.toMatchObject({ code: 'SIGNATURE' });
    expect(sink.log).toEqual([]);
  });
});
