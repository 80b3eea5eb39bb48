/**
 * The single executable's native addon is loaded from a file in a private cache directory
 * (src/sea/native-addon.ts). What is loaded must be a file only this user could have written: a
 * cached entry that is a symbolic link, or a file another user owns or may write, is written again
 * before the load, however right its bytes are when checked (their owner can change them between
 * the check and the load). A cache root that others may write is not used at all (they could move
 * the private directory away and put their own in its place).
 */
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const ADDON = Buffer.from('not really machine code, but the bytes of the asset');
const HASH = createHash('sha256').update(ADDON).digest('hex');

vi.mock('node:sea', () => ({
  getAsset: (name: string, encoding?: string) => {
    const bytes = name.endsWith('.sha256') ? Buffer.from(`${HASH}\n`) : ADDON;
    return encoding === undefined ? bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) : bytes.toString('utf8');
  },
}));

const { loadNativeAsset } = await import('../../src/sea/native-addon.js');

const FILE = `zstd-${HASH}.node`;

/** What dlopen was given, and what was at that path at that moment. */
function loads(): { path: string; symlink: boolean; uid: number; bytes: Buffer } {
  let seen: { path: string; symlink: boolean; uid: number; bytes: Buffer } | undefined;
  const dlopen = vi.spyOn(process, 'dlopen').mockImplementation((_module, path) => {
    const st = lstatSync(path);
    seen = { path, symlink: st.isSymbolicLink(), uid: st.uid, bytes: readFileSync(path) };
  });
  try {
    loadNativeAsset('zstd.node');
  } finally {
    dlopen.mockRestore();
  }
  return seen!;
}

describe.skipIf(process.getuid?.() !== 0)('the native addon cache (as root: files of another user can be made)', () => {
  let tmp: TempDir;
  const saved = { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, HOME: process.env.HOME, TMPDIR: process.env.TMPDIR };
  beforeAll(async () => {
    tmp = await makeTempDir('addon');
  });
  beforeEach(() => {
    // Not a usable home: the tests never touch the real ~/.cache.
    process.env.HOME = 'no-home';
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  afterAll(async () => {
    await tmp?.remove();
  });

  it('loads a file it wrote itself', () => {
    const root = join(tmp.path, 'fresh');
    mkdirSync(root);
    process.env.XDG_CACHE_HOME = root;
    expect(loads()).toMatchObject({ path: join(root, 'airlock', FILE), symlink: false, uid: 0, bytes: ADDON });
  });

  it('writes again a cached entry that is a symbolic link to a file with the right bytes', () => {
    const root = join(tmp.path, 'link');
    mkdirSync(join(root, 'airlock'), { recursive: true, mode: 0o700 });
    const theirs = join(tmp.path, 'theirs.node');
    writeFileSync(theirs, ADDON);
    chownSync(theirs, 4321, 4321);
    symlinkSync(theirs, join(root, 'airlock', FILE));
    process.env.XDG_CACHE_HOME = root;
    expect(loads()).toMatchObject({ path: join(root, 'airlock', FILE), symlink: false, uid: 0, bytes: ADDON });
  });

  it('writes again a cached file another user owns (left there while the directory was open to them)', () => {
    const root = join(tmp.path, 'owned');
    mkdirSync(join(root, 'airlock'), { recursive: true, mode: 0o700 });
    const path = join(root, 'airlock', FILE);
    writeFileSync(path, ADDON, { mode: 0o755 });
    chownSync(path, 4321, 4321);
    process.env.XDG_CACHE_HOME = root;
    expect(loads()).toMatchObject({ path, symlink: false, uid: 0, bytes: ADDON });
  });

  it('does not use a cache root that other users may write (without the sticky bit)', () => {
    const root = join(tmp.path, 'open');
    mkdirSync(root);
    chmodSync(root, 0o777);
    process.env.XDG_CACHE_HOME = root;
    // A private temporary directory instead (HOME is not usable here).
    const used = loads();
    expect(used.path.startsWith(`${root}/`)).toBe(false);
    expect(used).toMatchObject({ symlink: false, uid: 0, bytes: ADDON });
    // Nor a temporary directory in such a root: nowhere to load it from is an error.
    process.env.TMPDIR = root;
    expect(() => loads()).toThrow(expect.objectContaining({ code: 'IO', message: expect.stringContaining(`${root}: ${root} may be written by other users`) }));
    delete process.env.TMPDIR;
    const sticky = join(tmp.path, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    process.env.XDG_CACHE_HOME = sticky;
    expect(loads().path).toBe(join(sticky, 'airlock', FILE));
  });
});
