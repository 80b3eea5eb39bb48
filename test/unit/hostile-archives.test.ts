/**
 * The hostile corpus: crafted variants of one real, signed bundle (test/support/hostile-archives.ts).
 * Each must be refused by `verify` with INTEGRITY (or SIGNATURE) and a message naming the problem,
 * and by `import` too, before anything is written wherever that is cheap to see (the tail, the
 * signed head, frame headers and tar headers; damage inside content is found while streaming it,
 * and then nothing is tagged).
 *
 * Each case says what happened before this suite existed:
 * - `[verify OK]`: verify accepted it (and import failed with INTEGRITY midway, or even succeeded);
 * - `[guard]`: it was already refused; the case guards the refusal (and often its message).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { generateKeyPair, loadPublicKey, loadSigningKey, type SigningKey, type TrustedKey } from '../../src/bundle/keys.js';
import { expandImages } from '../../src/copy/expand.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { Layout } from '../../src/layout/layout.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import type { RawManifest } from '../../src/oci/manifest.js';
import { createBundle } from '../../src/ops/create.js';
import { importBundle } from '../../src/ops/import.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { verifyBundle } from '../../src/ops/verify.js';
import type { Sink, Source } from '../../src/transport/types.js';
import { SEEK_FOOTER_SIZE } from '../../src/bundle/seek-table.js';
import { RAW_FRAME_HEADER_SIZE } from '../../src/bundle/zstd-frames.js';
import {
  assemble,
  clone,
  explode,
  makeEntry,
  paxPathOverride,
  skippable,
  tarContent,
  tarHeader,
  withBundleJson,
  zstdFrame,
  type Archive,
  type Entry,
  type Frame,
} from '../support/hostile-archives.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const KiB = 1024;
const IMAGE = 'quay.io/hostile/app:1';

/** Records every write; consumes blob bodies so that a damaged entry fails as in a real import. */
class RecordingSink implements Sink, Source {
  readonly description = 'recording';
  readonly readBack: Source = this;
  readonly log: string[] = [];
  async hasBlob(): Promise<boolean> {
    return false;
  }
  async putBlob(repository: string, desc: Descriptor, body: Readable): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    if (sha256Digest(Buffer.concat(chunks)) !== desc.digest) throw new AirlockError('INTEGRITY', `sink: ${desc.digest} does not match`);
    this.log.push(`blob ${repository} ${desc.digest}`);
  }
  async putManifest(repository: string, m: RawManifest, tag: string | undefined): Promise<void> {
    this.log.push(`manifest ${repository} ${m.digest} ${tag ?? ''}`);
  }
  // Readable like every registry, and empty: import reads its rollback record (none yet) back.
  async getManifest(repository: string, reference: string): Promise<RawManifest> {
    throw new AirlockError('NOT_FOUND', `recording: no manifest ${repository}:${reference}`);
  }
  async openBlob(repository: string, desc: Descriptor): Promise<Readable> {
    throw new AirlockError('NOT_FOUND', `recording: no blob ${repository}@${desc.digest}`);
  }
  async listTags(): Promise<string[]> {
    return [];
  }
}

let work: TempDir;
let original: Archive;
let originalPath: string;
let key: SigningKey;
let trusted: TrustedKey[];

beforeAll(async () => {
  work = await makeTempDir('hostile');
  const pair = await generateKeyPair(join(work.path, 'k'));
  key = await loadSigningKey(pair.privateKeyFile);
  trusted = [await loadPublicKey(pair.publicKeyFile)];
  const corpus = await writeCorpus(join(work.path, 'corpus'), {
    images: [
      {
        name: IMAGE,
        layers: [
          { id: 'gz', size: 40 * KiB },
          { id: 'plain', size: 24 * KiB, uncompressed: true },
        ],
      },
    ],
  });
  const endpoints = {
    registry: () => {
      throw new Error('no registry');
    },
    layout: (d: string) => new Layout(d),
  };
  const images = await expandImages(imageListFromRefs([`oci:${corpus.dir}:${IMAGE}`]).entries, endpoints);
  originalPath = join(work.path, 'original.tar.zst');
  await createBundle({ images, output: originalPath, signingKey: key });
  original = await explode(originalPath);
});
afterAll(async () => {
  await work?.remove();
});

/** Index of the first blob entry of the given kind (raw: the gzip layer; zstd: a JSON blob or the plain layer). */
function blobAt(a: Archive, encoding: 'raw' | 'zstd', minSize = 0): number {
  const i = a.entries.findIndex((e) => e.path.startsWith('blobs/') && e.encoding === encoding && e.size >= minSize);
  if (i < 0) throw new Error(`no ${encoding} blob`);
  return i;
}

/** `entry` with its content re-framed by `frames` (content = header + data + padding). */
function reframed(entry: Entry, frames: (content: Buffer) => Frame[], header?: Buffer): Entry {
  return { ...entry, frames: frames(tarContent(header ?? tarHeader(entry.path, entry.size), entry.data)) };
}

function replace(a: Archive, i: number, entry: Entry): Archive {
  const out = clone(a);
  out.entries[i] = entry;
  return out;
}

/** A frame of airlock's Raw-block layout whose first block is a compressed block (the tar header). */
function mixedFrame(content: Buffer): Frame {
  const compressed = zstdFrame(content.subarray(0, 512)).bytes;
  const fhd = compressed[4]!;
  const headerSize = 4 + 1 + ((fhd & 0x20) !== 0 ? 0 : 1) + [(fhd & 0x20) !== 0 ? 1 : 0, 2, 4, 8][fhd >>> 6]!;
  const bh = compressed.readUIntLE(headerSize, 3);
  if (((bh >>> 1) & 3) !== 2) throw new Error('expected a compressed block');
  const block = Buffer.from(compressed.subarray(headerSize, headerSize + 3 + (bh >>> 3)));
  block.writeUIntLE(bh & ~1, 0, 3); // not the last block
  const rest = content.subarray(512);
  const parts: Buffer[] = [Buffer.alloc(RAW_FRAME_HEADER_SIZE), block];
  parts[0]!.writeUInt32LE(0xfd2fb528, 0);
  parts[0]![4] = 0x80;
  parts[0]![5] = 0x38;
  parts[0]!.writeUInt32LE(content.length, 6);
  for (let at = 0; at < rest.length; at += 128 * KiB) {
    const piece = rest.subarray(at, at + 128 * KiB);
    const h = Buffer.alloc(3);
    h.writeUIntLE((piece.length << 3) | (at + 128 * KiB >= rest.length ? 1 : 0), 0, 3);
    parts.push(h, piece);
  }
  return { bytes: Buffer.concat(parts), content: content.length };
}

interface Case {
  name: string;
  build: () => Buffer;
  /** What verify's error (message or one of its problems) must say. */
  verify: RegExp;
  /** True when import must refuse before writing anything; else it must fail before tagging. */
  importBeforeWrite: boolean;
}

const CASES: Case[] = [
  {
    name: '[verify OK] seek table shifted by 3 bytes between two entries',
    build: () => {
      const k = blobAt(original, 'zstd');
      const frameOfK = original.entries.slice(0, k + 1).reduce((n, e) => n + e.frames.length, 0) - 1;
      return assemble(original, {
        seek: (s) =>
          s.map((f, i) =>
            i === frameOfK ? { ...f, compressedSize: f.compressedSize - 3 } : i === frameOfK + 1 ? { ...f, compressedSize: f.compressedSize + 3 } : f,
          ),
        index: (entries) => ({ schemaVersion: 1, entries: entries.map((e, i) => (i === k + 1 ? { ...e, offset: e.offset - 3 } : e)) }),
      });
    },
    verify: /does not start with a zstd frame header|frame \d+ is incomplete/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] the index says Raw blocks for a compressed entry',
    build: () =>
      assemble(original, {
        index: (entries) => ({ schemaVersion: 1, entries: entries.map((e, i) => (i === blobAt(original, 'zstd') ? { ...e, encoding: 'raw' } : e)) }),
      }),
    verify: /index says Raw blocks, but frame \d+ has another header/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK, import OK] the index says compressed for a Raw-block entry',
    build: () =>
      assemble(original, {
        index: (entries) => ({ schemaVersion: 1, entries: entries.map((e, i) => (i === blobAt(original, 'raw') ? { ...e, encoding: 'zstd' } : e)) }),
      }),
    verify: /index says compressed, but frame \d+ is a Raw-block frame/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] a Raw-block frame mixing a compressed block with Raw blocks',
    build: () => {
      const k = blobAt(original, 'raw');
      return assemble(
        replace(
          original,
          k,
          reframed(original.entries[k]!, (c) => [mixedFrame(c)]),
        ),
      );
    },
    verify: /block type 2 in a raw frame/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK, import OK] a skippable frame inside an entry, before its frame',
    build: () => {
      const k = blobAt(original, 'zstd');
      const e = original.entries[k]!;
      const f = e.frames[0]!;
      return assemble(
        replace(original, k, { ...e, frames: [{ bytes: Buffer.concat([skippable(Buffer.from('hidden')).bytes, f.bytes]), content: f.content }] }),
      );
    },
    verify: /frame \d+ is a skippable frame inside the entry/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] a skippable frame inside an entry, after its Raw-block frame',
    build: () => {
      const k = blobAt(original, 'raw');
      const e = original.entries[k]!;
      const f = e.frames[0]!;
      return assemble(
        replace(original, k, { ...e, frames: [{ bytes: Buffer.concat([f.bytes, skippable(Buffer.from('hidden')).bytes]), content: f.content }] }),
      );
    },
    verify: /data after the last block/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] a skippable frame inside an entry, after its compressed frame',
    build: () => {
      const k = blobAt(original, 'zstd');
      const e = original.entries[k]!;
      const f = e.frames[0]!;
      return assemble(replace(original, k, { ...e, frames: [{ bytes: Buffer.concat([f.bytes, skippable(Buffer.alloc(40)).bytes]), content: f.content }] }));
    },
    verify: /data after the end of frame/,
    importBeforeWrite: false,
  },
  {
    name: '[guard] a skippable frame listed in the seek table as a frame of an entry',
    build: () => {
      const k = blobAt(original, 'zstd');
      const e = original.entries[k]!;
      return assemble(replace(original, k, { ...e, frames: [skippable(Buffer.from('x')), ...e.frames] }));
    },
    verify: /frame \d+ has an invalid size/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] two zstd frames in one seek-table frame',
    build: () => {
      const k = blobAt(original, 'zstd', 600);
      const e = original.entries[k]!;
      return assemble(
        replace(
          original,
          k,
          reframed(e, (c) => {
            const a = zstdFrame(c.subarray(0, 600));
            const b = zstdFrame(c.subarray(600));
            return [{ bytes: Buffer.concat([a.bytes, b.bytes]), content: c.length }];
          }),
        ),
      );
    },
    verify: /data after the end of frame/,
    importBeforeWrite: false,
  },
  {
    name: '[verify OK, import OK] a frame boundary inside a tar header',
    build: () => {
      const k = blobAt(original, 'zstd');
      return assemble(
        replace(
          original,
          k,
          reframed(original.entries[k]!, (c) => [zstdFrame(c.subarray(0, 300)), zstdFrame(c.subarray(300))]),
        ),
      );
    },
    verify: /only an entry's last frame may hold less than 1 GiB/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] entry offsets overlapping',
    build: () =>
      assemble(original, { index: (entries) => ({ schemaVersion: 1, entries: entries.map((e, i, all) => (i === 3 ? { ...e, offset: all[2]!.offset } : e)) }) }),
    verify: /is not where the frames put it/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] the index points past the end of the file',
    build: () =>
      assemble(original, {
        index: (entries) => ({ schemaVersion: 1, entries: entries.map((e, i, all) => (i === all.length - 1 ? { ...e, offset: 1e12 } : e)) }),
      }),
    verify: /is not where the frames put it/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] the seek table covers more than the file',
    build: () => assemble(original, { seek: (s) => s.map((f, i) => (i === 0 ? { ...f, compressedSize: f.compressedSize + 1e6 } : f)) }),
    verify: /frames cover \d+ bytes/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] duplicate entry paths',
    build: () => {
      const out = clone(original);
      out.entries.push(original.entries[blobAt(original, 'zstd')]!);
      return assemble(out);
    },
    verify: /duplicate entry blobs\/sha256\//,
    importBeforeWrite: true,
  },
  {
    name: '[guard] an unlisted entry',
    build: () => {
      const out = clone(original);
      out.entries.push(makeEntry(`blobs/sha256/${'ab'.repeat(32)}`, Buffer.from('unsigned')));
      return assemble(out);
    },
    verify: /entry blobs\/sha256\/(ab)+ is not listed in the signed bundle manifest/,
    importBeforeWrite: true,
  },
  ...(
    [
      ['a `..` path', { path: '../../etc/cron.d/evil' }, /path "..\/..\/etc\/cron.d\/evil", the index says/],
      ['an absolute path', { path: '/etc/passwd' }, /path "\/etc\/passwd", the index says/],
      ['a symlink', { type: 'SymbolicLink', linkpath: '/etc/shadow' }, /type SymbolicLink, not a regular file/],
      ['a hard link', { type: 'Link', linkpath: 'index.json' }, /type Link, not a regular file/],
      ['a character device', { type: 'CharacterDevice' }, /type CharacterDevice, not a regular file/],
      ['a FIFO', { type: 'FIFO' }, /type FIFO, not a regular file/],
    ] as const
  ).map(
    ([what, h, re]): Case => ({
      name: `[guard] a tar header with ${what} where the index names a blob`,
      build: () => {
        const k = blobAt(original, 'zstd');
        const e = original.entries[k]!;
        const header = tarHeader('path' in h ? h.path : e.path, e.size, {
          type: 'type' in h ? h.type : 'File',
          ...('linkpath' in h ? { linkpath: h.linkpath } : {}),
        });
        return assemble(
          replace(
            original,
            k,
            reframed(e, (c) => [zstdFrame(c)], header),
          ),
        );
      },
      verify: re,
      importBeforeWrite: true,
    }),
  ),
  {
    name: '[guard] an unsafe path in the index itself',
    build: () => {
      const out = clone(original);
      out.entries.push(makeEntry('../evil', Buffer.from('x'), 'zstd', tarHeader('../evil', 1, { type: 'File' })));
      return assemble(out);
    },
    verify: /entry \d+ is malformed \('\.\.' in path: "\.\.\/evil"\)/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] a PAX header overriding the path, in the frame of a blob',
    build: () => {
      const k = blobAt(original, 'zstd');
      const e = original.entries[k]!;
      const pax = paxPathOverride('../../evil');
      const content = Buffer.concat([pax, tarContent(tarHeader(e.path, e.size), e.data)]);
      return assemble(replace(original, k, { ...e, size: e.size + pax.length, frames: [zstdFrame(content)] }));
    },
    verify: /type ExtendedHeader, not a regular file/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] a PAX header as an entry of its own',
    build: () => {
      const k = blobAt(original, 'zstd');
      const out = clone(original);
      const pax = paxPathOverride('../../evil');
      out.entries.splice(k, 0, { path: 'PaxHeader/x', size: pax.length - 512, encoding: 'zstd', data: pax.subarray(512), frames: [zstdFrame(pax)] });
      return assemble(out);
    },
    verify: /entry PaxHeader\/x is not listed in the signed bundle manifest/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK, import OK] a tar header with the old GNU magic (GNU tar reads its prefix field as times)',
    build: () => {
      const k = blobAt(original, 'zstd');
      const e = original.entries[k]!;
      return assemble(
        replace(
          original,
          k,
          reframed(e, (c) => [zstdFrame(c)], tarHeader(e.path, e.size, { gnuMagic: true })),
        ),
      );
    },
    verify: /not a POSIX ustar header/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] the tar header size disagrees with the index',
    build: () => {
      const k = blobAt(original, 'zstd');
      const e = original.entries[k]!;
      return assemble(
        replace(
          original,
          k,
          reframed(e, (c) => [zstdFrame(c)], tarHeader(e.path, e.size + 1)),
        ),
      );
    },
    verify: /its tar header does not match the index: size \d+, the index says \d+/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK, import OK] non-zero bytes in the tar padding',
    build: () => {
      const k = original.entries.findIndex((e) => e.path.startsWith('blobs/') && e.encoding === 'zstd' && e.size % 512 !== 0);
      const e = original.entries[k]!;
      return assemble(
        replace(
          original,
          k,
          reframed(e, (c) => {
            const dirty = Buffer.from(c);
            dirty[dirty.length - 1] = 0x41;
            return [zstdFrame(dirty)];
          }),
        ),
      );
    },
    verify: /non-zero bytes in its tar padding/,
    importBeforeWrite: false,
  },
  {
    name: '[guard, now also import] the tar end frame hides another entry',
    build: () => {
      const out = clone(original);
      out.end = zstdFrame(Buffer.concat([tarHeader('extra', 0), Buffer.alloc(512)]));
      return assemble(out);
    },
    verify: /the tar end frame is damaged: it does not hold exactly 1024 zero bytes/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] trailing garbage after the seek table',
    build: () => assemble(original, { trailing: Buffer.from('garbage after the seek table') }),
    verify: /no seek table at the end of the file/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] the seek table claims a billion frames',
    build: () => {
      const b = assemble(original);
      b.writeUInt32LE(1e9, b.length - SEEK_FOOTER_SIZE);
      return b;
    },
    verify: /implausible frame count 1000000000/,
    importBeforeWrite: true,
  },
  {
    name: '[guard, now bounded] an index with 200,000 entries more than the manifest signs',
    build: () => {
      const fake = Array.from({ length: 200_000 }, (_, i) => ({ path: `x/${i}`, size: 0, offset: 0, frames: 1, dataOffset: 512, encoding: 'zstd' }));
      return assemble(original, { index: (entries) => ({ schemaVersion: 1, entries: [...entries, ...fake] }) });
    },
    verify: /the index frame is \d+ bytes, more than the \d+ entries of the signed manifest can take/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] bundle.json with a duplicate key, re-signed',
    build: () => {
      const text = original.entries[0]!.data.toString('utf8');
      const twice = text.replace(/\n {2}"creator": ("[^"]*"),/, (_m, v: string) => `\n  "creator": "someone else",\n  "creator": ${v},`);
      if (twice === text) throw new Error('no creator to duplicate');
      return assemble(withBundleJson(original, Buffer.from(twice), key));
    },
    verify: /invalid bundle\.json: duplicate key "creator"/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] bundle.json with a byte order mark, re-signed',
    build: () => assemble(withBundleJson(original, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), original.entries[0]!.data]), key)),
    verify: /invalid bundle\.json: starts with a byte order mark/,
    importBeforeWrite: true,
  },
  {
    name: '[guard] bundle.json with trailing data, re-signed',
    build: () => assemble(withBundleJson(original, Buffer.concat([original.entries[0]!.data, Buffer.from('{"images":[]}\n')]), key)),
    verify: /invalid bundle\.json: data after the JSON value/,
    importBeforeWrite: true,
  },
  {
    name: '[verify OK] bundle.json with a lone surrogate escape, re-signed',
    build: () =>
      assemble(withBundleJson(original, Buffer.from(original.entries[0]!.data.toString('utf8').replace(/"creator": "/, '"creator": "\\ud800')), key)),
    verify: /invalid bundle\.json: a lone surrogate escape/,
    importBeforeWrite: true,
  },
];

/** Every message an error carries: its own and those of its problems. */
function messages(err: unknown): string {
  const e = err as AirlockError;
  const problems = (e.details?.problems as Array<{ message: string }> | undefined) ?? [];
  return [e.message, ...problems.map((p) => p.message)].join('\n');
}

async function refusal(p: Promise<unknown>): Promise<AirlockError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof AirlockError)) throw new Error(`expected an AirlockError, got ${String(err)}`);
  return err;
}

describe('hostile archives', () => {
  it('the original verifies and imports (the corpus starts from a good bundle)', async () => {
    await verifyBundle({ path: originalPath, trusted });
    const sink = new RecordingSink();
    await importBundle({ path: originalPath, target: parseImportTarget('registry.lan/m'), sink, trusted });
    expect(sink.log.some((l) => l.startsWith('manifest') && l.endsWith(' 1'))).toBe(true);
    // and so does the same archive taken apart and put back together
    const path = join(work.path, 'reassembled.tar.zst');
    await writeFile(path, assemble(original));
    await verifyBundle({ path, trusted });
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const path = join(work.path, `${c.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 80)}.tar.zst`);
    await writeFile(path, c.build());
    const err = await refusal(verifyBundle({ path, trusted }));
    expect(['INTEGRITY', 'SIGNATURE'], err.message).toContain(err.code);
    expect(messages(err)).toMatch(c.verify);

    const sink = new RecordingSink();
    const failed = await refusal(importBundle({ path, target: parseImportTarget('registry.lan/m'), sink, trusted }));
    expect(failed.code, failed.message).toBe('INTEGRITY');
    if (c.importBeforeWrite) expect(sink.log, failed.message).toEqual([]);
    expect(sink.log.filter((l) => l.startsWith('manifest') && !l.endsWith(' '))).toEqual([]); // nothing tagged
  });

  it('[guard] a truncated archive, cut at several points, is refused by both', async () => {
    const whole = assemble(original);
    for (const at of [200, Math.floor(whole.length * 0.4), whole.length - 300, whole.length - SEEK_FOOTER_SIZE - 1, whole.length - 1]) {
      const path = join(work.path, `cut-${at}.tar.zst`);
      await writeFile(path, whole.subarray(0, at));
      const err = await refusal(verifyBundle({ path, trusted }));
      expect(err.code, `cut at ${at}: ${err.message}`).toBe('INTEGRITY');
      const sink = new RecordingSink();
      const failed = await refusal(importBundle({ path, target: parseImportTarget('registry.lan/m'), sink, trusted }));
      expect(failed.code).toBe('INTEGRITY');
      expect(sink.log).toEqual([]);
    }
  });
});
