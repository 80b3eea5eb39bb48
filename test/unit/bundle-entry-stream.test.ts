import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { Header, Pax } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { streamEntries, type StreamedEntry } from '../../src/bundle/entry-stream.js';
import { isAirlockError } from '../../src/errors.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const MTIME = new Date('2024-05-01T12:00:00Z');

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('bundle-entries');
});
afterEach(async () => {
  await dir.remove();
});

/** One tar entry built by hand: header (any type, any path), data, padding. */
function tarEntry(fields: ConstructorParameters<typeof Header>[0] & object, data = Buffer.alloc(0)): Buffer {
  const block = Buffer.alloc(512);
  new Header({ mode: 0o644, uid: 0, gid: 0, mtime: MTIME, size: data.length, ...fields }).encode(block, 0);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([block, data, pad]);
}

const END = Buffer.alloc(1024);

async function writeZst(name: string, tar: Buffer): Promise<string> {
  const path = join(dir.path, name);
  await writeFile(path, compress(tar));
  return path;
}

async function collect(path: string): Promise<{ entries: StreamedEntry[]; bodies: Buffer[]; error?: unknown }> {
  const entries: StreamedEntry[] = [];
  const bodies: Buffer[] = [];
  try {
    await streamEntries(path, async (entry, body) => {
      entries.push(entry);
      bodies.push(await buffer(body));
    });
    return { entries, bodies };
  } catch (error) {
    return { entries, bodies, error };
  }
}

describe('streamEntries', () => {
  it('passes every entry of a good bundle with its body', async () => {
    const path = join(dir.path, 'good.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME, maxFrameContent: 4096 });
    await w.addBuffer('bundle.json', Buffer.from('{}'), { compress: true });
    await w.addStream('blobs/sha256/a', 10_000, Readable.from([Buffer.alloc(10_000, 1)]), { compress: false });
    await w.finish();
    const { entries, bodies, error } = await collect(path);
    expect(error).toBeUndefined();
    expect(entries.map((e) => [e.path, e.size, e.type, e.problems])).toEqual([
      ['bundle.json', 2, 'File', []],
      ['blobs/sha256/a', 10_000, 'File', []],
    ]);
    expect(bodies[1]!.equals(Buffer.alloc(10_000, 1))).toBe(true);
  });

  it('reports .. paths, absolute paths, links, directories and PAX path overrides', async () => {
    const pax = new Pax({ path: 'blobs/sha256/../../etc/cron.d/x' }).encode();
    const tar = Buffer.concat([
      tarEntry({ path: '../escape', type: 'File' }, Buffer.from('evil')),
      tarEntry({ path: '/etc/passwd', type: 'File' }, Buffer.from('root')),
      tarEntry({ path: 'blobs/sha256/link', type: 'SymbolicLink', linkpath: '/etc/shadow' }),
      tarEntry({ path: 'blobs/sha256/hard', type: 'Link', linkpath: 'bundle.json' }),
      tarEntry({ path: 'blobs/', type: 'Directory' }),
      pax,
      tarEntry({ path: 'innocent', type: 'File' }, Buffer.from('x')),
      tarEntry({ path: 'dev', type: 'CharacterDevice' }),
      END,
    ]);
    const { entries, error } = await collect(await writeZst('hostile.tar.zst', tar));
    expect(error).toBeUndefined();
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect(byPath.get('../escape')!.problems).toEqual(["unsafe path: '..' in path"]);
    expect(byPath.get('/etc/passwd')!.problems).toEqual(['unsafe path: absolute path']);
    expect(byPath.get('blobs/sha256/link')!.problems).toEqual(['not a regular file: SymbolicLink -> /etc/shadow']);
    expect(byPath.get('blobs/sha256/hard')!.type).toBe('Link');
    expect(byPath.get('blobs/')!.problems[0]).toMatch(/not a regular file: Directory/);
    const overridden = byPath.get('blobs/sha256/../../etc/cron.d/x')!;
    expect(overridden.problems).toEqual(["unsafe path: '..' in path", 'extended header overrides path']);
    expect(byPath.get('dev')!.problems).toEqual(['not a regular file: CharacterDevice']);
  });

  it('reports a backslash and a NUL-free control character', async () => {
    const tar = Buffer.concat([tarEntry({ path: 'a\\b', type: 'File' }), tarEntry({ path: 'a\u0001b', type: 'File' }), END]);
    const { entries } = await collect(await writeZst('names.tar.zst', tar));
    expect(entries.map((e) => e.problems[0])).toEqual(['unsafe path: backslash in path', 'unsafe path: control character or NUL in path']);
  });

  it('fails on a bundle cut inside a zstd frame, naming the last good entry', async () => {
    const path = join(dir.path, 'cut.tar.zst');
    const w = await ArchiveWriter.create(path, { mtime: MTIME });
    await w.addBuffer('bundle.json', Buffer.from('{}'), { compress: true });
    await w.addBuffer('blobs/sha256/big', Buffer.alloc(100_000, 7), { compress: false });
    await w.finish();
    const file = await readFile(path);
    await writeFile(path, file.subarray(0, 50_000));
    const { error } = await collect(path);
    expect(isAirlockError(error, 'INTEGRITY')).toBe(true);
    expect((error as Error).message).toMatch(/ends inside a zstd frame, after entry bundle.json/);
    // A callback still reading the cut entry is released with the error, not left waiting.
    let released: unknown;
    await expect(
      streamEntries(path, async (entry, body) => {
        if (entry.path !== 'blobs/sha256/big') return;
        await buffer(body).catch((e: unknown) => (released = e));
      }),
    ).rejects.toThrow(/ends inside a zstd frame/);
    await new Promise((r) => setImmediate(r));
    expect(isAirlockError(released, 'INTEGRITY')).toBe(true);
  });

  it('fails on a tar cut inside data, inside a header, or missing its end blocks', async () => {
    const good = tarEntry({ path: 'bundle.json', type: 'File' }, Buffer.from('{}'));
    const data = tarEntry({ path: 'blobs/sha256/a', type: 'File' }, Buffer.alloc(5000, 1));
    const cases: Array<[string, Buffer, RegExp]> = [
      ['in-data', Buffer.concat([good, data.subarray(0, 2000)]), /ends inside the data of blobs\/sha256\/a, after entry bundle\.json/],
      ['in-header', Buffer.concat([good, data.subarray(0, 300)]), /end-of-archive blocks are missing, after entry bundle\.json/],
      ['no-end', Buffer.concat([good, data]), /end-of-archive blocks are missing, after entry blobs\/sha256\/a/],
      ['half-end', Buffer.concat([good, data, Buffer.alloc(512)]), /end-of-archive blocks are missing/],
    ];
    for (const [name, tar, pattern] of cases) {
      const { error } = await collect(await writeZst(`${name}.tar.zst`, tar));
      expect(isAirlockError(error, 'INTEGRITY'), `${name}: ${String(error)}`).toBe(true);
      expect((error as Error).message, name).toMatch(pattern);
    }
  });

  it('fails on content that is not tar, and rethrows callback errors', async () => {
    const { error } = await collect(await writeZst('junk.tar.zst', Buffer.alloc(2048, 0x41)));
    expect((error as Error).message).toMatch(/not a tar archive/);
    const path = await writeZst('ok.tar.zst', Buffer.concat([tarEntry({ path: 'a', type: 'File' }, Buffer.alloc(100_000)), END]));
    await expect(
      streamEntries(path, async () => {
        throw new Error('callback says no');
      }),
    ).rejects.toThrow('callback says no');
  });

  it('drains bodies the callback leaves unread and reports entry types node-tar skips', async () => {
    const sparse = tarEntry({ path: 'sparse', type: 'File' }, Buffer.alloc(600, 2));
    sparse[156] = 'S'.charCodeAt(0); // GNU sparse file: node-tar ignores it, GNU tar extracts it
    fixChecksum(sparse);
    const tar = Buffer.concat([
      tarEntry({ path: 'big', type: 'File' }, Buffer.alloc(3 << 20, 1)),
      sparse,
      tarEntry({ path: 'after', type: 'File' }, Buffer.from('ok')),
      END,
    ]);
    const seen: Array<[string, string, string[]]> = [];
    let after = '';
    await streamEntries(await writeZst('unread.tar.zst', tar), async (entry, body) => {
      seen.push([entry.path, entry.type, entry.problems]);
      if (entry.path === 'after') after = (await buffer(body)).toString();
    });
    expect(seen).toEqual([
      ['big', 'File', []],
      ['sparse', 'Unsupported(S)', ['not a regular file: Unsupported(S)']],
      ['after', 'File', []],
    ]);
    expect(after).toBe('ok');
  });

  it('fails on a header with a bad checksum', async () => {
    const bad = tarEntry({ path: 'b', type: 'File' }, Buffer.from('x'));
    bad[0] = 'c'.charCodeAt(0);
    const tar = Buffer.concat([tarEntry({ path: 'a', type: 'File' }, Buffer.from('x')), bad, END]);
    const { error } = await collect(await writeZst('cksum.tar.zst', tar));
    expect(isAirlockError(error, 'INTEGRITY')).toBe(true);
    expect((error as Error).message).toMatch(/bad tar data \(TAR_ENTRY_INVALID: checksum failure\)/);
  });
});

/** Recompute a hand-edited header's checksum (octal, 6 digits, NUL, space). */
function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += block[i]!;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}
