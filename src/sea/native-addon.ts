/**
 * A native addon carried inside the single executable (see scripts/package.mjs) as a SEA asset,
 * loaded the only way Node can load one: from a file. The asset is written once to a private cache
 * directory under a name holding its sha256, checked against that hash before every load, and
 * `process.dlopen`ed from there.
 *
 * The cache is `$XDG_CACHE_HOME/airlock` or `~/.cache/airlock`, a 0700 directory owned by the
 * user, in a directory others may not write (or a sticky one): nobody else may swap the file between
 * the check and the load. When neither is usable (no home, read-only, not ours, mounted noexec), the
 * addon goes to a fresh private directory in the temporary directory instead, which is removed again
 * as soon as the addon is loaded (a loaded library stays mapped after its file is gone).
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, chmodSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { getAsset } from 'node:sea';
import { AirlockError } from '../errors.js';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The cache directories to try, best first. */
function cacheRoots(): string[] {
  const roots: string[] = [];
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) roots.push(xdg);
  let home = process.env.HOME;
  if (home === undefined || !isAbsolute(home)) {
    try {
      home = homedir(); // the password database's home when $HOME is unset (env -i)
    } catch {
      home = undefined;
    }
  }
  if (home !== undefined && isAbsolute(home)) roots.push(join(home, '.cache'));
  return roots;
}

/**
 * Throws unless only this user (or root) may change what is in `root`: whoever may write it may move
 * our directory away and put theirs in its place between the check and the load. Sticky (like
 * /tmp) is fine: others cannot rename what is ours.
 */
function checkRoot(root: string): void {
  const uid = process.getuid?.();
  const st = statSync(root);
  if ((uid !== undefined && st.uid !== uid && st.uid !== 0) || ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0)) {
    throw new Error(`${root} may be written by other users`);
  }
}

/** `root/airlock`, created 0700; throws unless it is a directory that only this user can write. */
function privateDir(root: string): string {
  const dir = join(root, 'airlock');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const uid = process.getuid?.();
  checkRoot(root);
  const st = lstatSync(dir);
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) throw new Error(`${dir} is not a directory of this user`);
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}

/**
 * Whether `path` holds exactly the bytes with `hash`, in a file only this user can have written. A
 * link, or a file another user owns or may write (left there while the directory was open to
 * them), is written again: its owner could change its bytes between this check and the load.
 */
function holds(path: string, hash: string): boolean {
  try {
    const st = lstatSync(path);
    const uid = process.getuid?.();
    if (!st.isFile() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0 || st.nlink !== 1) return false;
    return sha256(readFileSync(path)) === hash;
  } catch {
    return false;
  }
}

/** Write `bytes` to `path` whole or not at all: a temporary name in the same directory, then rename. */
function writeAtomically(path: string, bytes: Uint8Array): void {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(temp, bytes, { mode: 0o700, flag: 'wx' });
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

function dlopen(path: string): unknown {
  const module = { exports: {} as unknown };
  process.dlopen(module, path);
  return module.exports;
}

/**
 * Load the addon stored as asset `name` (its sha256 as asset `name.sha256`) and return its exports.
 * Throws AirlockError IO when it can be loaded from nowhere.
 */
export function loadNativeAsset(name: string): unknown {
  const hash = getAsset(`${name}.sha256`, 'utf8').trim();
  let bytes: Uint8Array | undefined;
  const assetBytes = (): Uint8Array => {
    if (bytes === undefined) {
      bytes = new Uint8Array(getAsset(name));
      // A damaged executable must not get as far as loading damaged machine code.
      if (sha256(bytes) !== hash) {
        throw new AirlockError('IO', `this airlock executable is damaged: its ${name} does not match its sha256`, {
          hint: 'copy the executable again and check it with sha256sum -c before use',
        });
      }
    }
    return bytes;
  };
  const fileName = `${name.replace(/\.node$/, '')}-${hash}.node`;
  const failures: string[] = [];
  for (const root of cacheRoots()) {
    try {
      const path = join(privateDir(root), fileName);
      if (!holds(path, hash)) {
        writeAtomically(path, assetBytes());
        if (!holds(path, hash)) throw new Error(`${path} does not hold what was written`);
      }
      return dlopen(path);
    } catch (err) {
      if (err instanceof AirlockError) throw err;
      failures.push(`${root}: ${(err as Error).message}`);
    }
  }
  // No usable cache: a private directory of this run, gone once the addon is loaded.
  let dir: string | undefined;
  try {
    checkRoot(tmpdir());
    dir = mkdtempSync(join(tmpdir(), 'airlock-addon-'));
    const path = join(dir, fileName);
    writeFileSync(path, assetBytes(), { mode: 0o700, flag: 'wx' });
    return dlopen(path);
  } catch (err) {
    if (err instanceof AirlockError) throw err;
    failures.push(`${tmpdir()}: ${(err as Error).message}`);
    throw new AirlockError('IO', `could not load ${name}, the native library inside this executable (${failures.join('; ')})`, {
      hint: 'set XDG_CACHE_HOME or TMPDIR to a directory you may write to, on a file system that allows executables (not mounted noexec)',
    });
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}
