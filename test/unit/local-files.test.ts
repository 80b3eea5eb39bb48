/**
 * Small-file reads, output-location checks, the bounded mkdir, file-system error mapping and the
 * sidecar hash worker's abort: the pieces that keep local file problems from hanging a run or
 * surfacing as internal errors.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AirlockError, fromFsError } from '../../src/errors.js';
import { readSmallFile } from '../../src/fs/small-file.js';
import { MAX_AUTH_FILE_BYTES, resolveCredentials } from '../../src/registry/credentials.js';
import { loadTlsOptions } from '../../src/registry/tls.js';
import { checkOutputDirectory, checkOutputFile, makeDirectory } from '../../src/fs/output-location.js';
import { Layout } from '../../src/layout/layout.js';
import { hashFileInWorker } from '../../src/fs/file-hash.js';
import { toAirlockError } from '../../src/cli/render-error.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-local-files-'));
  await writeFile(join(dir, 'file'), 'hello\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readSmallFile', () => {
  it('reads a regular file, refuses a FIFO, a device and a file over the cap', async () => {
    expect((await readSmallFile(join(dir, 'file'), { maxBytes: 100, what: 'key' })).toString()).toBe('hello\n');
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(readSmallFile(fifo, { maxBytes: 100, what: 'key' })).rejects.toMatchObject({ code: 'INPUT_INVALID', subject: fifo });
    await symlink('/dev/zero', join(dir, 'zero'));
    await expect(readSmallFile(join(dir, 'zero'), { maxBytes: 100, what: 'key' })).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: `${join(dir, 'zero')}: a character device, not a regular file (a key)`,
    });
    await expect(readSmallFile(join(dir, 'file'), { maxBytes: 3, what: 'key' })).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: `${join(dir, 'file')}: 6 bytes, more than a key may have (3)`,
    });
    await expect(readSmallFile(join(dir, 'nope'), { maxBytes: 3, what: 'key' })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('reads at most the cap from a file that claims size 0 (/proc)', async () => {
    const status = await readSmallFile('/proc/self/status', { maxBytes: 64 << 10, what: 'status' });
    expect(status.toString()).toContain('Name:');
    await expect(readSmallFile('/proc/self/status', { maxBytes: 10, what: 'status' })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });
});

describe('auth files and CA files', () => {
  it('a missing auth file is none; a FIFO, a directory or a huge one is refused naming it', async () => {
    const missing = join(dir, 'no-auth.json');
    expect(await resolveCredentials('quay.io', 'a', { authFiles: [missing] })).toBeUndefined();
    const fifo = join(dir, 'auth-fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(resolveCredentials('quay.io', 'a', { authFiles: [fifo] })).rejects.toMatchObject({ code: 'INPUT_INVALID', subject: fifo });
    await expect(resolveCredentials('quay.io', 'a', { authFiles: [dir] })).rejects.toMatchObject({ code: 'INPUT_INVALID', subject: dir });
    const huge = join(dir, 'huge-auth.json');
    await writeFile(huge, Buffer.alloc(MAX_AUTH_FILE_BYTES + 1, 0x20));
    await expect(resolveCredentials('quay.io', 'a', { authFiles: [huge] })).rejects.toMatchObject({ code: 'INPUT_INVALID', subject: huge });
  });

  it('a --ca-file that is a FIFO or /dev/zero is refused at once, naming it', async () => {
    const fifo = join(dir, 'ca-fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(loadTlsOptions('registry.lan', { caFiles: [fifo], certsDirs: [] })).rejects.toMatchObject({ code: 'INPUT_INVALID', subject: fifo });
    await expect(loadTlsOptions('registry.lan', { caFiles: ['/dev/zero'], certsDirs: [] })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });
});

describe('output locations', () => {
  it('refuse a file in the way, a missing directory, /proc and /sys, with IO naming the path', async () => {
    await expect(checkOutputFile(join(dir, 'file', 'x'), '-o')).rejects.toMatchObject({
      code: 'IO',
      message: `${join(dir, 'file', 'x')}: ${join(dir, 'file')} is not a directory`,
    });
    await expect(checkOutputFile(join(dir, 'missing', 'x'), '-o')).rejects.toMatchObject({
      code: 'IO',
      message: `-o ${join(dir, 'missing', 'x')}: the directory ${join(dir, 'missing')} does not exist`,
    });
    await expect(checkOutputDirectory('/proc/layout')).rejects.toMatchObject({
      code: 'IO',
      message: '/proc/layout is on a kernel file system (such as /proc or /sys), not storage',
    });
    await expect(checkOutputDirectory('/sys/fs/x')).rejects.toMatchObject({ code: 'IO' });
    await expect(checkOutputFile(join(dir, 'ok.tar.zst'), '-o')).resolves.toBeUndefined();
    await expect(checkOutputDirectory(join(dir, 'new', 'layout'))).resolves.toBeUndefined();
  });

  it('makeDirectory creates the missing levels and ends under /proc (recursive mkdir spins there)', async () => {
    await makeDirectory(join(dir, 'a', 'b', 'c'));
    await makeDirectory(join(dir, 'a', 'b', 'c'));
    const started = performance.now();
    await expect(new Layout('/proc/airlock-layout').init()).rejects.toMatchObject({ code: 'IO' });
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('fromFsError', () => {
  const sysErr = (code: string, syscall = 'open'): NodeJS.ErrnoException =>
    Object.assign(new Error(`${code}: something, ${syscall} 'p'`), { code, syscall, path: 'p' });

  it('maps every file-system error to IO naming the path; a missing input file is INPUT_INVALID', () => {
    for (const code of ['ENOTDIR', 'EACCES', 'EROFS', 'ENOSPC', 'EEXIST', 'ELOOP', 'EIO', 'EWEIRD']) {
      const e = fromFsError(sysErr(code), '/x/y', 'writing') as AirlockError;
      expect([e.code, e.subject], code).toEqual(['IO', '/x/y']);
      expect(e.message).toContain('/x/y');
    }
    expect((fromFsError(sysErr('ENOENT'), '/x/y', 'reading') as AirlockError).code).toBe('INPUT_INVALID');
    expect((fromFsError(sysErr('ENOENT'), '/x/y', 'writing') as AirlockError).code).toBe('IO');
    const plain = new Error('not a system error');
    expect(fromFsError(plain, '/x/y', 'writing')).toBe(plain);
  });

  it('an fs error that reached the CLI unmapped is IO, not an internal error', () => {
    const e = toAirlockError(sysErr('ENOTDIR'));
    expect([e.code, e.subject]).toEqual(['IO', 'p']);
  });
});

describe('hashFileInWorker', () => {
  it('hashes a file, and stops at once when its signal aborts', async () => {
    expect(await hashFileInWorker(join(dir, 'file'))).toBe('5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03');
    // A sparse 64 GiB file: long to hash, nothing on disk.
    const big = join(dir, 'sparse');
    await writeFile(big, '');
    await truncate(big, 64 * 2 ** 30);
    const controller = new AbortController();
    const hashing = hashFileInWorker(big, controller.signal);
    setTimeout(() => controller.abort(), 50);
    await expect(hashing).rejects.toMatchObject({ code: 'INTERRUPTED' });
  });

  it("refuses a FIFO or a device put in the file's place at once, instead of blocking its thread", async () => {
    const fifo = join(dir, 'hash-fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(hashFileInWorker(fifo)).rejects.toThrow('is not a regular file');
    await expect(hashFileInWorker('/dev/zero')).rejects.toThrow('is not a regular file');
  });
});
