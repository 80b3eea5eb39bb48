/**
 * The create side of rollback protection: how a bundle's sequence is chosen (clock, the key's
 * record in KEY.sequence, the --since parents, --sequence), --expires, and that a resumed bundle
 * keeps the sequence and expiry it started with.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { generateKeyPair, loadSigningKey, type SigningKey } from '../../src/bundle/keys.js';
import { isExpired, parseBundleManifest, sequenceOf, validateBundleManifest, type BundleManifest } from '../../src/bundle/manifest.js';
import { readHead } from '../../src/bundle/read-head.js';
import { expandImages } from '../../src/copy/expand.js';
import { isAirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { createBundle, type CreateOptions } from '../../src/ops/create.js';
import { chooseSequence, parseDuration, readRecordedSequence, sequenceFileFor } from '../../src/rollback/sequence.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const NAME = 'quay.io/seq/app:1';
const T0 = new Date('2026-11-01T12:00:00Z');
const T0_SECONDS = T0.getTime() / 1000;

let work: TempDir;
let corpus: Corpus;
let key: SigningKey;
let n = 0;

async function create(extra: Partial<CreateOptions> = {}): Promise<{ path: string; manifest: BundleManifest }> {
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs([`oci:${corpus.dir}:${NAME}`]).entries, endpoints);
  const path = join(work.path, `b${++n}.tar.zst`);
  await createBundle({ images, output: path, signingKey: key, now: () => new Date(T0), ...extra });
  return { path, manifest: parseBundleManifest((await readHead(path)).bundleJson, path) };
}

beforeAll(async () => {
  work = await makeTempDir('sequence');
  const pair = await generateKeyPair(join(work.path, 'k'));
  key = await loadSigningKey(pair.privateKeyFile);
  corpus = await writeCorpus(join(work.path, 'corpus'), { images: [{ name: NAME, layers: [{ id: 'seq', size: 4096 }] }] });
});
afterAll(async () => {
  await work?.remove();
});

describe('chooseSequence', () => {
  it('takes the clock, the recorded one + 1 and the parents + 1, whichever is largest', () => {
    expect(chooseSequence({ recorded: 0, parents: 0 }, T0)).toBe(T0_SECONDS);
    expect(chooseSequence({ recorded: T0_SECONDS, parents: 0 }, T0)).toBe(T0_SECONDS + 1);
    expect(chooseSequence({ recorded: 5, parents: T0_SECONDS + 10 }, T0)).toBe(T0_SECONDS + 11);
  });

  it('takes an explicit one only above the recorded one and the parents', () => {
    expect(chooseSequence({ explicit: 7, recorded: 6, parents: 2 }, T0)).toBe(7);
    const low = (() => {
      try {
        chooseSequence({ explicit: 6, recorded: 6, parents: 0, file: 'k.key.sequence' }, T0);
      } catch (err) {
        return err;
      }
    })();
    expect(isAirlockError(low, 'USAGE')).toBe(true);
    expect((low as Error).message).toContain('already made sequence 6 (recorded in k.key.sequence)');
    expect(() => chooseSequence({ explicit: 3, recorded: 0, parents: 3 }, T0)).toThrow(/parent has sequence 3/);
  });
});

describe('parseDuration', () => {
  it('reads NUMBER+UNIT groups and refuses the rest', () => {
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('1d12h')).toBe(36 * 3_600_000);
    expect(parseDuration('1s')).toBe(1000);
    expect(parseDuration('2w')).toBe(14 * 86_400_000);
    for (const bad of ['', '30', 'd', '1.5d', '-1d', '0s', '1y', '101000000d', '1d 2h']) {
      expect(() => parseDuration(bad), bad).toThrow(/--expires/);
    }
  });
});

describe('bundle.json sequence and expires', () => {
  it('refuses an expiry that is not after the creation', () => {
    const base = {
      schemaVersion: 1,
      mediaType: 'application/vnd.airlock.bundle.v1+json',
      created: '2026-11-01T12:00:00Z',
      creator: 'x',
      images: [],
      blobs: [],
      layout: { 'oci-layout': { digest: `sha256:${'a'.repeat(64)}`, size: 1 }, 'index.json': { digest: `sha256:${'b'.repeat(64)}`, size: 1 } },
      totals: { images: 0, blobs: 0, bytes: 0, referencedBytes: 0 },
    };
    expect(validateBundleManifest({ ...base, sequence: 3, expires: '2026-11-02T00:00:00Z' })).toEqual([]);
    expect(validateBundleManifest({ ...base, expires: '2026-11-01T12:00:00Z' }).join()).toMatch(/is not after created/);
    expect(validateBundleManifest({ ...base, sequence: 0 }).join()).toMatch(/sequence/);
    expect(validateBundleManifest({ ...base, sequence: 1.5 }).join()).toMatch(/sequence/);
    expect(sequenceOf(base as unknown as BundleManifest)).toBe(0);
    expect(isExpired({ expires: '2026-11-02T00:00:00Z' }, new Date('2026-11-02T00:00:00Z'))).toBe(true);
    expect(isExpired({ expires: '2026-11-02T00:00:00Z' }, new Date('2026-11-01T23:59:59Z'))).toBe(false);
    expect(isExpired({}, new Date('2100-01-01T00:00:00Z'))).toBe(false);
  });
});

describe('bundle create', () => {
  it('writes sequence and expires, records the sequence beside the key, and grows it within one second', async () => {
    const first = await create({ expiresInMs: parseDuration('30d') });
    expect(first.manifest.sequence).toBe(T0_SECONDS);
    expect(first.manifest.expires).toBe('2026-12-01T12:00:00Z');
    const file = sequenceFileFor(key.path!);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ keyId: key.keyId, sequence: T0_SECONDS });
    // The same clock second again: the record, not the clock, makes it grow.
    const second = await create();
    expect(second.manifest.sequence).toBe(T0_SECONDS + 1);
    expect(second.manifest.expires).toBeUndefined();
    // A clock stepped back a day: still above the record.
    const back = await create({ now: () => new Date(T0.getTime() - 86_400_000) });
    expect(back.manifest.sequence).toBe(T0_SECONDS + 2);
    const explicit = await create({ sequence: T0_SECONDS + 100 });
    expect(explicit.manifest.sequence).toBe(T0_SECONDS + 100);
    const refused = await create({ sequence: T0_SECONDS + 100 }).catch((e: unknown) => e);
    expect(isAirlockError(refused, 'USAGE')).toBe(true);
    // A delta is above its parent even where this machine has no record of it.
    await writeFile(file, '{"keyId":"sha256:' + 'c'.repeat(64) + '","sequence":99}\n');
    const warnings: string[] = [];
    expect(await readRecordedSequence(file, key.keyId, (e) => e.kind === 'warning' && warnings.push(e.message))).toBe(0);
    expect(warnings.join()).toContain('belongs to key');
    const delta = await create({ since: [explicit.path] });
    expect(delta.manifest.sequence).toBe(T0_SECONDS + 101);
  });

  it('two creates with one key at the same second take different sequences (the record is locked)', async () => {
    const file = sequenceFileFor(key.path!);
    const recorded = JSON.parse(await readFile(file, 'utf8')) as { sequence: number };
    const [a, b] = await Promise.all([create(), create()]);
    expect([a.manifest.sequence, b.manifest.sequence].sort()).toEqual([recorded.sequence + 1, recorded.sequence + 2]);
  });

  it('an unsigned bundle has a sequence from the clock and no record', async () => {
    const endpoints = {
      registry: () => {
        throw new Error('no registry');
      },
      layout: (d: string) => new Layout(d),
    };
    const images = await expandImages(imageListFromRefs([`oci:${corpus.dir}:${NAME}`]).entries, endpoints);
    const path = join(work.path, 'unsigned.tar.zst');
    await createBundle({ images, output: path, unsigned: true, now: () => new Date(T0) });
    expect(parseBundleManifest((await readHead(path)).bundleJson, path).sequence).toBe(T0_SECONDS);
  });
});
