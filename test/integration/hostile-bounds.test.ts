/**
 * Bounded work on hostile input, measured on the real CLI: a bundle padded with a million unlisted
 * entries made `bundle verify` use 1.5 GB and print 250 MB with `--json`. Peak RSS comes from
 * `/usr/bin/time -v` around the CLI; the bounds are generous (the point is "does not grow with the
 * entries", not a tight number).
 *
 * Two shapes: a million entries each in its own frame, listed by the seek table (refused by count
 * before the table is read), and 200,000 entries hidden in frames the index does not account for
 * (the index is refused, so verify walks the tar stream to name what it finds: the path that grew
 * per entry, and now stops at 100 problems). 200,000 rather than a million there only to keep the
 * generation of the archive short; the pass reads about a hundred of them either way.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { generateKeyPair, loadSigningKey } from '../../src/bundle/keys.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import { createBundle } from '../../src/ops/create.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { AIRLOCK_BIN } from '../support/cli.js';
import { assemble, clone, explode, makeEntry, tinyEntryFrames, type Archive } from '../support/hostile-archives.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const TIME = '/usr/bin/time';
/** Peak RSS allowed: 300 MiB (a small verify takes ~80 MiB here; before the bounds, 1.5 GB). */
const MAX_RSS_KIB = 300 * 1024;
/** `--json` output allowed: 256 KiB (100 problems of ~200 bytes; before, 250 MB). */
const MAX_JSON_BYTES = 256 << 10;

let work: TempDir;
let original: Archive;
let pub: string;

beforeAll(async () => {
  work = await makeTempDir('hostile-bounds');
  const pair = await generateKeyPair(join(work.path, 'k'));
  pub = pair.publicKeyFile;
  const name = 'quay.io/hostile/tiny:1';
  const corpus = await writeCorpus(join(work.path, 'corpus'), { images: [{ name, layers: [{ id: 'l', size: 4096 }] }] });
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs([`oci:${corpus.dir}:${name}`]).entries, endpoints);
  const path = join(work.path, 'original.tar.zst');
  await createBundle({ images, output: path, signingKey: await loadSigningKey(pair.privateKeyFile) });
  original = await explode(path);
});
afterAll(async () => {
  await work?.remove();
});

interface Measured {
  code: number;
  stdout: string;
  stderr: string;
  maxRssKiB: number;
}

/** `airlock --json bundle verify PATH` under `/usr/bin/time -v`. */
function verifyMeasured(path: string): Promise<Measured> {
  return new Promise((resolve) => {
    execFile(
      TIME,
      ['-v', process.execPath, AIRLOCK_BIN, '--json', 'bundle', 'verify', path, '--trust', pub],
      { maxBuffer: 512 << 20, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
        resolve({ code, stdout, stderr, maxRssKiB: rss === null ? NaN : Number(rss[1]) });
      },
    );
  });
}

describe.skipIf(!existsSync(TIME))('bounded work on hostile archives', () => {
  it('a million unlisted entries, each in its own frame: refused by count, memory and --json bounded', async () => {
    const a = clone(original);
    const tiny = makeEntry('u/x', Buffer.from('x'));
    const listed = a.entries.length;
    for (let i = 0; i < 1_000_000; i++) a.entries.push(tiny);
    const path = join(work.path, 'million.tar.zst');
    // The index lists only the signed entries (a full one would be over 64 MiB and refused as such).
    await writeFile(path, assemble(a, { index: (entries) => ({ schemaVersion: 1, entries: entries.slice(0, listed) }) }));
    const r = await verifyMeasured(path);
    expect(r.code, r.stderr.slice(-2000)).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stdout).toMatch(/the seek table lists 1000\d{3} frames; the signed manifest accounts for at most \d+/);
    expect(r.maxRssKiB, r.stderr.slice(-1500)).toBeLessThan(MAX_RSS_KIB);
    expect(r.stdout.length).toBeLessThan(MAX_JSON_BYTES);
  });

  it('200,000 unlisted entries hidden from the index: the sequential pass stops at 100 problems, memory and --json bounded', async () => {
    const a = clone(original);
    const end = a.entries.length;
    a.entries.push({ path: '(hidden)', size: 0, encoding: 'zstd', data: Buffer.alloc(0), frames: tinyEntryFrames(200_000) });
    const path = join(work.path, 'hidden.tar.zst');
    await writeFile(path, assemble(a, { index: (entries) => ({ schemaVersion: 1, entries: entries.slice(0, end) }) }));
    const r = await verifyMeasured(path);
    expect(r.code, r.stderr.slice(-2000)).toBe(EXIT_CODES.INTEGRITY);
    const doc = JSON.parse(r.stdout) as { error: { message: string; details: { problems: unknown[]; stoppedAtProblems?: number } } };
    // the pass stops at 100 problems: it cannot count the rest without reading them all
    expect(doc.error.details.problems).toHaveLength(100);
    expect(doc.error.details.stoppedAtProblems).toBe(100);
    expect(doc.error.message).toMatch(/frames not accounted for by any entry\) \(and 99 more problems, where the check stopped: there may be more\)/);
    expect(doc.error.details.problems.map((p) => (p as { message: string }).message).join('\n')).toContain(
      'entry u/0000050 is not listed in the signed bundle manifest',
    );
    expect(r.maxRssKiB, r.stderr.slice(-1500)).toBeLessThan(MAX_RSS_KIB);
    expect(r.stdout.length).toBeLessThan(MAX_JSON_BYTES);
  });
});
