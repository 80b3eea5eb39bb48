/**
 * Local file errors, as an operator meets them: each is reported with its exit code and the path,
 * at once, and output locations are checked before any network work.
 *
 * Output locations (exit 13, IO): a file where a directory is expected (ENOTDIR), a missing
 * directory, a symbolic link loop, /proc, a read-only file system (EROFS, a read-only tmpfs: needs
 * root). EACCES is not tested: root may write anywhere.
 * Small input files (exit 3, INPUT_INVALID): a `.sha256` sidecar that is a FIFO or a link to
 * /dev/zero, a key file that is a directory, a FIFO or huge. A FIFO would block a read forever.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock, type CliResult } from '../support/cli.js';
import { listenLocal, type Listening } from '../support/listen.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let tmp: TempDir;
/** A small signed bundle, made from a layout (no registry needed). */
let bundle: string;
let pub: string;
/** A TCP server standing in for a registry: it counts connections and answers nothing. */
let listener: Listening;
let connections = 0;
let unreachable: string;
/** A read-only tmpfs (root only), unmounted in afterAll. */
let readOnly: string | undefined;

beforeAll(async () => {
  tmp = await makeTempDir('file-errors');
  const corpus = (await writeCorpus(`${tmp.path}/upstream`, {
    images: [{ name: 'example.com/files/app:v1', layers: [{ id: 'files-a', size: 64 * 1024, randomRatio: 1, files: 1 }] }],
  })) as { dir: string };
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  pub = `${tmp.path}/signer.pub`;
  bundle = `${tmp.path}/small.tar.zst`;
  const made = await airlock(['bundle', 'create', `oci:${corpus.dir}:example.com/files/app:v1`, '-o', bundle, '--sign-key', `${tmp.path}/signer.key`, '-q']);
  expect(made.code, made.stderr).toBe(0);
  listener = await listenLocal(
    createServer((socket) => {
      connections++;
      socket.destroy();
    }),
  );
  unreachable = `${listener.host}/files/app:v1`;
  await writeFile(`${tmp.path}/afile`, 'a regular file\n');
  if (process.getuid?.() === 0) {
    const dir = `${tmp.path}/ro`;
    await mkdir(dir);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', dir], { stdio: 'ignore' });
      readOnly = dir;
    } catch {
      readOnly = undefined;
    }
  }
});

afterAll(async () => {
  if (readOnly !== undefined) execFileSync('umount', [readOnly]);
  await listener?.close();
  await tmp?.remove();
});

/** A run that must fail at once with `code`, naming `path`, without touching the network. */
function expectRefused(r: CliResult, code: number, path: string): void {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).toContain(path);
  expect(r.stderr).not.toContain('internal error');
  expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
}

const create = (output: string): Promise<CliResult> => airlock(['bundle', 'create', unreachable, '-o', output, '--unsigned', '--plain-http', '-q']);

describe('output locations are checked before any network work (exit 13)', () => {
  it('-o under a regular file (ENOTDIR), in a missing directory, through a link loop, under /proc, a directory', async () => {
    connections = 0;
    expectRefused(await create(`${tmp.path}/afile/x.tar.zst`), EXIT_CODES.IO, `${tmp.path}/afile`);
    expectRefused(await create(`${tmp.path}/missing/x.tar.zst`), EXIT_CODES.IO, `${tmp.path}/missing`);
    await symlink('loop', `${tmp.path}/loop`);
    expectRefused(await create(`${tmp.path}/loop/x.tar.zst`), EXIT_CODES.IO, `${tmp.path}/loop`);
    expectRefused(await create('/proc/x.tar.zst'), EXIT_CODES.IO, '/proc');
    expectRefused(await create('/sys/kernel/x.tar.zst'), EXIT_CODES.IO, '/sys/kernel');
    expectRefused(await create(tmp.path), EXIT_CODES.IO, tmp.path);
    // The image list names a "registry" that counts connections: none was made.
    expect(connections).toBe(0);
    // And the same image really is fetched when the output is fine (so the count means something).
    expect((await create(`${tmp.path}/fine.tar.zst`)).code).not.toBe(0);
    expect(connections).toBeGreaterThan(0);
  });

  it('inventory -o and key generate --out under a regular file', async () => {
    connections = 0;
    const inventory = await airlock(['inventory', '--registry', unreachable.split('/')[0]!, '--plain-http', '-o', `${tmp.path}/afile/have.json`]);
    expectRefused(inventory, EXIT_CODES.IO, `${tmp.path}/afile`);
    expect(connections).toBe(0);
    expectRefused(await airlock(['key', 'generate', '--out', `${tmp.path}/afile/k`]), EXIT_CODES.IO, `${tmp.path}/afile`);
  });

  it('import --to oci:/proc/layout fails at once (it used to spin in a mkdir loop), and oci: under a file', async () => {
    const started = performance.now();
    expectRefused(await airlock(['bundle', 'import', bundle, '--to', 'oci:/proc/layout', '--trust', pub]), EXIT_CODES.IO, '/proc/layout');
    expect(performance.now() - started).toBeLessThan(30_000);
    expectRefused(await airlock(['bundle', 'import', bundle, '--to', `oci:${tmp.path}/afile/layout`, '--trust', pub]), EXIT_CODES.IO, `${tmp.path}/afile`);
    expect(existsSync('/proc/layout')).toBe(false);
  });

  it.skipIf(process.getuid?.() !== 0)('a read-only file system (EROFS) as -o and as --to oci:', async () => {
    expect(readOnly, 'mount -t tmpfs -o ro failed').toBeDefined();
    const dir = readOnly!;
    connections = 0;
    const r = await create(`${dir}/x.tar.zst`);
    expectRefused(r, EXIT_CODES.IO, dir);
    expect(r.stderr).toContain('read-only file system');
    expect(connections).toBe(0);
    const i = await airlock(['bundle', 'import', bundle, '--to', `oci:${dir}/layout`, '--trust', pub]);
    expectRefused(i, EXIT_CODES.IO, dir);
    expect(i.stderr).toContain('read-only file system');
  });
});

describe('small input files must be regular files of bounded size (exit 3)', () => {
  it('a .sha256 sidecar that is a FIFO or a link to /dev/zero', async () => {
    const copy = `${tmp.path}/sidecar-fifo.tar.zst`;
    execFileSync('cp', [bundle, copy]);
    execFileSync('mkfifo', [`${copy}.sha256`]);
    expectRefused(await airlock(['bundle', 'verify', copy, '--trust', pub]), EXIT_CODES.INPUT_INVALID, `${copy}.sha256`);

    const zero = `${tmp.path}/sidecar-zero.tar.zst`;
    execFileSync('cp', [bundle, zero]);
    await symlink('/dev/zero', `${zero}.sha256`);
    expectRefused(await airlock(['bundle', 'verify', zero, '--trust', pub]), EXIT_CODES.INPUT_INVALID, `${zero}.sha256`);
    // The same bundle with its real sidecar verifies.
    expect((await airlock(['bundle', 'verify', bundle, '--trust', pub])).code).toBe(0);
  });

  it('a key file that is a directory, a FIFO or huge; a bundle that is a FIFO', async () => {
    const dir = `${tmp.path}/keydir`;
    await mkdir(dir);
    expectRefused(await airlock(['bundle', 'verify', bundle, '--trust', dir]), EXIT_CODES.INPUT_INVALID, dir);
    const fifo = `${tmp.path}/key.fifo`;
    execFileSync('mkfifo', [fifo]);
    expectRefused(await airlock(['bundle', 'verify', bundle, '--trust', fifo]), EXIT_CODES.INPUT_INVALID, fifo);
    expectRefused(await airlock(['bundle', 'create', unreachable, '-o', `${tmp.path}/k.tar.zst`, '--sign-key', fifo]), EXIT_CODES.INPUT_INVALID, fifo);
    const huge = `${tmp.path}/huge.pub`;
    await writeFile(huge, Buffer.alloc(1 << 20, 0x41));
    expectRefused(await airlock(['bundle', 'verify', bundle, '--trust', huge]), EXIT_CODES.INPUT_INVALID, huge);
    const fifoBundle = `${tmp.path}/bundle.fifo`;
    execFileSync('mkfifo', [fifoBundle]);
    expectRefused(await airlock(['bundle', 'verify', fifoBundle, '--trust', pub]), EXIT_CODES.INPUT_INVALID, fifoBundle);
  });
});
