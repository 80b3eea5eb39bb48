/**
 * Where a command may write, checked before any network work: a run of an hour must not fail at
 * its last step because `-o` names a directory that does not exist, lies under a file, is
 * read-only, or is a kernel file system such as /proc (where Node's recursive mkdir spins forever:
 * the kernel answers ENOENT for a directory whose parent exists, and libuv retries).
 */
import { constants } from 'node:fs';
import { access, mkdir, realpath, stat, statfs } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { AirlockError, fromFsError } from '../errors.js';

/** Paths that are kernel interfaces, not storage. */
const SYSTEM_ROOTS = ['/proc', '/sys'];

/**
 * Kernel file systems by `statfs` type (linux/magic.h), for a /proc or /sys mounted elsewhere or
 * reached through a link: proc, sysfs, cgroup, cgroup2, debugfs, tracefs, securityfs, bpf,
 * configfs, devpts, nsfs, binfmt_misc, selinuxfs, mqueue, pstore, efivarfs.
 */
const SYSTEM_FS_TYPES = new Set([
  0x9fa0, 0x62656572, 0x27e0eb, 0x63677270, 0x64626720, 0x74726163, 0x73636673, 0xcafe4a11, 0x62656570, 0x1cd1, 0x6e736673, 0x42494e4d, 0xf97cff8c, 0x19800202,
  0x6165676c, 0xde5e81e4,
]);

/**
 * Check that `file` can be written: its directory exists, is a directory, is writable and is on a
 * real file system; `file` itself, if it exists, is not a directory. `flag` names the option in
 * messages (`-o`).
 *
 * @throws IO naming the path and the fix
 */
export async function checkOutputFile(file: string, flag: string): Promise<void> {
  const dir = dirname(resolve(file));
  const found = await nearestExisting(dir, file);
  if (!found.info.isDirectory()) throw notADirectory(found.path, file);
  if (found.path !== dir) {
    throw new AirlockError('IO', `${flag} ${file}: the directory ${dir} does not exist`, {
      subject: file,
      hint: `create it first (mkdir -p ${dir}) or choose another ${flag}`,
    });
  }
  await checkWritable(found.path, file);
  try {
    if ((await stat(file)).isDirectory()) {
      throw new AirlockError('IO', `${flag} ${file} is a directory`, {
        subject: file,
        hint: `${flag} takes a file name, e.g. ${file.replace(/\/+$/, '')}/images.tar.zst`,
      });
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromFsError(err, file, 'checking');
  }
}

/**
 * Check that directory `dir` exists or can be created: its nearest existing ancestor is a writable
 * directory on a real file system.
 *
 * @throws IO naming the path and the fix
 */
export async function checkOutputDirectory(dir: string): Promise<void> {
  const found = await nearestExisting(resolve(dir), dir);
  if (!found.info.isDirectory()) throw notADirectory(found.path, dir);
  await checkWritable(found.path, dir);
}

/**
 * `mkdir -p dir`, one level at a time from the nearest existing ancestor: at most one mkdir per
 * missing path component, so it ends on every file system (see the module comment). Like
 * `mkdir({ recursive: true })`, resolves to the first directory it created (absolute), if any.
 */
export async function makeDirectory(dir: string): Promise<string | undefined> {
  const found = await nearestExisting(resolve(dir), dir);
  if (!found.info.isDirectory()) throw notADirectory(found.path, dir);
  let first: string | undefined;
  for (const level of found.missing) {
    try {
      await mkdir(level);
      first ??= level;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Made meanwhile by another process: fine if it is a directory.
      if (
        code === 'EEXIST' &&
        (await stat(level).then(
          (s) => s.isDirectory(),
          () => false,
        ))
      )
        continue;
      throw fromFsError(err, level, 'creating');
    }
  }
  return first;
}

interface Existing {
  path: string;
  info: Stats;
  /** The levels below `path` down to the one asked for, outermost first. */
  missing: string[];
}

/** The deepest existing path on the way from `abs` up to `/`, and the missing levels below it. */
async function nearestExisting(abs: string, named: string): Promise<Existing> {
  const missing: string[] = [];
  let path = abs;
  // Each step goes one level up, so this ends after at most as many steps as `abs` has levels.
  for (;;) {
    if (isUnderSystemRoot(path)) throw systemPath(named, path);
    try {
      const info = await stat(path);
      return { path, info, missing: missing.reverse() };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fromFsError(err, path, 'checking');
      const parent = dirname(path);
      if (parent === path) throw fromFsError(err, path, 'checking');
      missing.push(path);
      path = parent;
    }
  }
}

async function checkWritable(dir: string, named: string): Promise<void> {
  let real = dir;
  try {
    real = await realpath(dir);
    if (isUnderSystemRoot(real) || SYSTEM_FS_TYPES.has((await statfs(real)).type)) throw systemPath(named, dir);
    await access(real, constants.W_OK);
  } catch (err) {
    throw fromFsError(err, dir, 'writing to');
  }
}

function isUnderSystemRoot(path: string): boolean {
  return SYSTEM_ROOTS.some((root) => path === root || path.startsWith(root + sep));
}

function systemPath(named: string, path: string): AirlockError {
  const where = resolve(named) === path ? named : `${named}: ${path}`;
  return new AirlockError('IO', `${where} is on a kernel file system (such as /proc or /sys), not storage`, {
    subject: named,
    hint: 'choose a directory on a disk',
  });
}

function notADirectory(path: string, named: string): AirlockError {
  return new AirlockError('IO', `${named}: ${path} is not a directory`, {
    subject: named,
    hint: `check the path: ${path} is a file where a directory is expected`,
  });
}
