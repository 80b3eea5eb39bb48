/**
 * A full disk, for real: small tmpfs mounts (root only) as the output directory of `bundle create`
 * and as an `oci:` import target. The run fails with IO (exit 13) and leaves only what the README
 * allows: for create a resumable `OUT.partial` and no file named OUT; for import no new layout, and
 * an existing layout's index.json unchanged. After the mount is made larger, the same command
 * completes (create continues the partial file) and the result verifies.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;

let tmp: TempDir;
let reg: TestRegistry;
let key: string;
let pub: string;
/** Two 5 MiB incompressible layers: about 10 MiB of bundle. */
let bigRef: string;
let smallRef: string;
const mounts: string[] = [];

async function mountTmpfs(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  mounts.push(dir);
}

const remount = (dir: string, size: string) => run('mount', ['-o', `remount,size=${size}`, dir]);

beforeAll(async () => {
  if (!isRoot) return;
  tmp = await makeTempDir('disk-full');
  const layer = (id: string, size: number) => ({ id, size, randomRatio: 1, files: 1 });
  const corpus = await writeCorpus(join(tmp.path, 'upstream'), {
    seed: 'disk-full',
    images: [
      { name: 'example.com/full/big:1', layers: [layer('big-a', 5 * MiB), layer('big-b', 5 * MiB)] },
      { name: 'example.com/full/small:1', layers: [layer('small', 64 * 1024)] },
    ],
  });
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir);
  bigRef = `${reg.host}/full/big:1`;
  smallRef = `${reg.host}/full/small:1`;
  expect((await airlock(['key', 'generate', '--out', join(tmp.path, 'signer')])).code).toBe(0);
  key = join(tmp.path, 'signer.key');
  pub = join(tmp.path, 'signer.pub');
}, 60_000);

afterAll(async () => {
  for (const dir of mounts.reverse()) await run('umount', ['-l', dir]).catch(() => undefined);
  await reg?.stop();
  await tmp?.remove();
});

describe.skipIf(!isRoot)('a full disk', () => {
  it('create: exit 13, a resumable OUT.partial and no OUT; with room, the same command continues and completes', async () => {
    const dir = join(tmp.path, 'create-fs');
    await mountTmpfs(dir, '4m');
    const out = join(dir, 'bundle.tar.zst');
    const args = ['bundle', 'create', bigRef, '-o', out, '--sign-key', key, '--plain-http', '-q'];
    const full = await airlock(args);
    expect(full.code, full.stderr).toBe(EXIT_CODES.IO);
    expect(full.stderr).toMatch(/no space left on device/);
    expect(full.stderr).toContain('run the same command again to continue');
    // The hint says it once: free space, then run the same command again (not twice over).
    expect(full.stderr.match(/command again/g)).toHaveLength(1);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.sha256`)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(true);

    await remount(dir, '32m');
    const again = await airlock([...args.filter((a) => a !== '-q'), '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { reusedBytes: number }).reusedBytes).toBeGreaterThan(MiB);
    expect(existsSync(`${out}.partial`)).toBe(false);
    expect((await airlock(['bundle', 'verify', out, '--trust', pub])).code).toBe(0);
    await run('sha256sum', ['-c', 'bundle.tar.zst.sha256'], { cwd: dir });
  }, 180_000);

  it('import into oci: exit 13; a new layout is removed, an existing index.json is unchanged; with room it completes', async () => {
    const bundles = join(tmp.path, 'bundles');
    await mkdir(bundles, { recursive: true });
    const big = join(bundles, 'big.tar.zst');
    const small = join(bundles, 'small.tar.zst');
    for (const [ref, out] of [
      [bigRef, big],
      [smallRef, small],
    ] as const) {
      const made = await airlock(['bundle', 'create', ref, '-o', out, '--sign-key', key, '--plain-http', '-q']);
      expect(made.code, made.stderr).toBe(0);
    }
    const dir = join(tmp.path, 'import-fs');
    await mountTmpfs(dir, '4m');

    const fresh = join(dir, 'new-layout');
    const failed = await airlock(['bundle', 'import', big, '--to', `oci:${fresh}`, '--trust', pub]);
    expect(failed.code, failed.stderr).toBe(EXIT_CODES.IO);
    expect(failed.stderr).toMatch(/no space left on device/);
    expect(existsSync(fresh)).toBe(false);
    expect(await readdir(dir)).toEqual([]);

    const existing = join(dir, 'layout');
    const first = await airlock(['bundle', 'import', small, '--to', `oci:${existing}`, '--trust', pub]);
    expect(first.code, first.stderr).toBe(0);
    const index = await readFile(join(existing, 'index.json'));
    const again = await airlock(['bundle', 'import', big, '--to', `oci:${existing}`, '--trust', pub]);
    expect(again.code, again.stderr).toBe(EXIT_CODES.IO);
    expect(await readFile(join(existing, 'index.json'))).toEqual(index);
    // No temp file is left; every blob that stayed is complete and matches its name.
    const blobs = join(existing, 'blobs', 'sha256');
    const checkBlobs = async (): Promise<number> => {
      const names = await readdir(blobs);
      expect(names.filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);
      for (const n of names)
        expect(
          createHash('sha256')
            .update(await readFile(join(blobs, n)))
            .digest('hex'),
        ).toBe(n);
      return names.length;
    };
    await checkBlobs();

    await remount(dir, '32m');
    const done = await airlock(['bundle', 'import', big, '--to', `oci:${existing}`, '--trust', pub]);
    expect(done.code, done.stderr).toBe(0);
    const names = (
      JSON.parse(await readFile(join(existing, 'index.json'), 'utf8')) as { manifests: Array<{ annotations?: Record<string, string> }> }
    ).manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name']);
    expect(names.sort()).toEqual([`${reg.host.replace(':', '_')}/full/big:1`, `${reg.host.replace(':', '_')}/full/small:1`].sort());
    expect(await checkBlobs()).toBeGreaterThanOrEqual(6);
  }, 180_000);
});
