/**
 * `bundle create --split` against the real docker-registry: the parts are the unsplit archive cut
 * at the size (joined with `cat` they are it, byte for byte; `sha256sum -c` checks each), verify,
 * inspect and import read them without joining, a missing, truncated or damaged part is named (in
 * `--json` too), an interrupted split create continues into the same bytes, and `--split` works
 * with `--since`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { readHead } from '../../src/bundle/read-head.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { endpointsFrom } from '../../src/cli/registry-options.js';
import { expandImages } from '../../src/copy/expand.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { createBundle } from '../../src/ops/create.js';
import { AIRLOCK_BIN, airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { startSlowProxy, type SlowProxy } from '../support/slow-proxy.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** Parts of 1 MiB: the ~7 MiB bundle is 7 or 8 of them. */
const PART = '1MiB';

let tmp: TempDir;
let reg: TestRegistry;
let proxy: SlowProxy;
let refV1: string;
let refV2: string;
const path = (name: string) => join(tmp.path, name);
const pub = () => path('signer.pub');
const partsOf = (dir: string, base: string) =>
  readdirSync(dir)
    .filter((n) => n.startsWith(`${base}.part-`))
    .sort();

beforeAll(async () => {
  tmp = await makeTempDir('split');
  const base = { id: 'split-base', size: 5 * MiB, randomRatio: 1, files: 2 };
  const corpus = await writeCorpus(path('corpus'), {
    images: [
      { name: 'example.com/split/app:v1', layers: [base, { id: 'split-v1', size: 2 * MiB, randomRatio: 1, files: 1 }] },
      { name: 'example.com/split/app:v2', layers: [base, { id: 'split-v2', size: 256 * 1024, randomRatio: 1, files: 1 }] },
    ],
  });
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir);
  proxy = await startSlowProxy(reg.host);
  refV1 = `${proxy.host}/split/app:v1`;
  refV2 = `${proxy.host}/split/app:v2`;
  expect((await airlock(['key', 'generate', '--out', path('signer')])).code).toBe(0);
});

afterAll(async () => {
  await proxy?.close();
  await reg?.stop();
  await tmp?.remove();
});

const create = (out: string, ...extra: string[]) => airlock(['bundle', 'create', refV1, '-o', out, '--sign-key', path('signer.key'), '--plain-http', ...extra]);

describe('bundle create --split', () => {
  it('writes parts of exactly the size that join (cat) into the unsplit archive, byte for byte', async () => {
    const endpoints = await endpointsFrom({ plainHttp: true });
    try {
      const images = await expandImages(imageListFromRefs([refV1]).entries, endpoints);
      const now = () => new Date('2026-11-30T10:00:00Z');
      const common = { images, unsigned: true, now, sequence: 5 } as const;
      const whole = await createBundle({ ...common, output: path('api-whole.tar.zst') });
      const split = await createBundle({ ...common, output: path('api-split.tar.zst'), split: MiB });
      expect(whole.parts).toBeUndefined();
      expect(split.sha256).toBe(whole.sha256);
      const names = partsOf(tmp.path, 'api-split.tar.zst');
      expect(names.length).toBe(Math.ceil(whole.archiveBytes / MiB));
      expect(split.parts!.map((p) => p.path)).toEqual(names.map((n) => path(n)));
      const sizes = names.map((n) => statSync(path(n)).size);
      expect(sizes.slice(0, -1).every((s) => s === MiB)).toBe(true);
      expect(sizes.at(-1)).toBe(whole.archiveBytes - (names.length - 1) * MiB);
      expect(existsSync(path('api-split.tar.zst'))).toBe(false);
      expect(existsSync(path('api-split.tar.zst.partial.part-001'))).toBe(false);
      await run('sh', ['-c', 'cat api-split.tar.zst.part-* > joined.tar.zst'], { cwd: tmp.path });
      expect((await readFile(path('joined.tar.zst'))).equals(await readFile(path('api-whole.tar.zst')))).toBe(true);
    } finally {
      await endpoints.close();
    }
  });

  it('refuses a size that makes no sense, naming --split', async () => {
    for (const size of ['0', 'big', '4GB2', '1000']) {
      const r = await create(path('bad.tar.zst'), '--split', size);
      expect(r.code).toBe(EXIT_CODES.USAGE);
      expect(r.stderr).toContain('--split');
    }
  });
});

describe('a split bundle on the secure side', () => {
  const out = () => path('mirror.tar.zst');
  beforeAll(async () => {
    const r = await create(out(), '--split', PART, '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { parts: Array<{ path: string; sha256: string }> };
    expect(result.parts.length).toBeGreaterThan(5);
  });

  it('does not replace the parts of a set without --force', async () => {
    for (const extra of [['--split', PART], []]) {
      const r = await create(out(), ...extra);
      expect(r.code).toBe(EXIT_CODES.USAGE);
      expect(r.stderr).toContain('mirror.tar.zst.part-001 already exists');
    }
  });

  it('sha256sum -c checks every part; the joined archive is checked by the comment line', async () => {
    const { stdout } = await run('sha256sum', ['-c', 'mirror.tar.zst.sha256'], { cwd: tmp.path });
    const parts = partsOf(tmp.path, 'mirror.tar.zst');
    expect(stdout.trim().split('\n')).toEqual(parts.map((p) => `${p}: OK`));
    await mkdir(path('joined'));
    await run('sh', ['-c', 'cat mirror.tar.zst.part-* > joined/mirror.tar.zst && cp mirror.tar.zst.sha256 joined/'], { cwd: tmp.path });
    const whole = await run('sh', ['-c', "sed -n 's/^# //p' mirror.tar.zst.sha256 | sha256sum -c"], { cwd: path('joined') });
    expect(whole.stdout).toBe('mirror.tar.zst: OK\n');
    // The joined file verifies against the same sidecar.
    const v = await airlock(['-q', 'bundle', 'verify', path('joined/mirror.tar.zst'), '--trust', pub()]);
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
  });

  it('verify and inspect read the parts: the first part, the joined name, or every part', async () => {
    const parts = partsOf(tmp.path, 'mirror.tar.zst').map((p) => path(p));
    for (const args of [[parts[0]!], [out()], parts]) {
      const v = await airlock(['--json', 'bundle', 'verify', ...args, '--trust', pub()]);
      expect(v.stderr).toBe('');
      expect(v.code).toBe(0);
      const result = JSON.parse(v.stdout) as { parts: Array<{ name: string }> };
      expect(result.parts.map((p) => p.name)).toEqual(parts.map((p) => p.slice(tmp.path.length + 1)));
      const i = await airlock(['--json', 'bundle', 'inspect', ...args]);
      expect(i.code).toBe(0);
      expect((JSON.parse(i.stdout) as { images: Array<{ name: string }> }).images.map((m) => m.name)).toEqual([refV1]);
    }
  });

  it('imports from the parts into a registry and into oci:DIR', async () => {
    const toReg = await airlock([
      '--json',
      'bundle',
      'import',
      path('mirror.tar.zst.part-001'),
      '--to',
      `${reg.host}/imported`,
      '--plain-http',
      '--trust',
      pub(),
    ]);
    expect(toReg.stderr).toBe('');
    expect(toReg.code).toBe(0);
    const toDir = await airlock(['bundle', 'import', out(), '--to', `oci:${path('layout')}`, '--trust', pub()]);
    expect(toDir.code).toBe(0);
    expect(existsSync(path('layout/index.json'))).toBe(true);
    // Every part named, from two "discs": the first with the sidecar, the rest on the other.
    const discs = [path('disc-1'), path('disc-2')];
    for (const d of discs) await mkdir(d);
    const parts = (await readdir(tmp.path)).filter((f) => f.startsWith('mirror.tar.zst.part-')).sort();
    expect(parts.length).toBeGreaterThan(2);
    await copyFile(path('mirror.tar.zst.sha256'), join(discs[0]!, 'mirror.tar.zst.sha256'));
    const placed = parts.map((f, i) => join(discs[i === 0 ? 0 : 1]!, f));
    for (const [i, f] of parts.entries()) await copyFile(path(f), placed[i]!);
    const fromDiscs = await airlock(['bundle', 'import', ...placed.reverse(), '--to', `oci:${path('layout-discs')}`, '--trust', pub()]);
    expect(fromDiscs.code, fromDiscs.stderr).toBe(0);
    expect(await readFile(path('layout-discs/index.json'), 'utf8')).toBe(await readFile(path('layout/index.json'), 'utf8'));
  });

  /** A copy of the set in `name`/, changed by `spoil`. */
  async function spoiledCopy(name: string, spoil: (dir: string) => Promise<void>): Promise<string> {
    const dir = path(name);
    await mkdir(dir);
    for (const f of await readdir(tmp.path)) if (f.startsWith('mirror.tar.zst.')) await copyFile(path(f), join(dir, f));
    await spoil(dir);
    return dir;
  }

  it('names a missing part (the last one too), in --json as well', async () => {
    const count = partsOf(tmp.path, 'mirror.tar.zst').length;
    const last = `mirror.tar.zst.part-${String(count).padStart(3, '0')}`;
    for (const [name, gone] of [
      ['missing-3', 'mirror.tar.zst.part-003'],
      ['missing-last', last],
    ] as const) {
      const dir = await spoiledCopy(name, (d) => rm(join(d, gone)));
      const v = await airlock(['--json', 'bundle', 'verify', join(dir, 'mirror.tar.zst.part-001'), '--trust', pub()]);
      expect(v.code).toBe(EXIT_CODES.INTEGRITY);
      const err = (JSON.parse(v.stdout) as { error: { code: string; message: string; details: { part: number } } }).error;
      expect(err.code).toBe('INTEGRITY');
      expect(err.message).toBe(`part ${Number(gone.slice(-3))} of ${count} (${gone}) is missing: copy it again`);
      const i = await airlock(['bundle', 'import', join(dir, 'mirror.tar.zst'), '--to', `oci:${join(dir, 'layout')}`, '--trust', pub()]);
      expect(i.code).toBe(EXIT_CODES.INTEGRITY);
      expect(i.stderr).toContain(`(${gone}) is missing: copy it again`);
    }
  });

  it('names a truncated part', async () => {
    const dir = await spoiledCopy('truncated', (d) => truncate(join(d, 'mirror.tar.zst.part-002'), 1000));
    const v = await airlock(['bundle', 'verify', join(dir, 'mirror.tar.zst'), '--trust', pub()]);
    expect(v.code).toBe(EXIT_CODES.INTEGRITY);
    expect(v.stderr).toMatch(/part 2 of \d+ \(mirror\.tar\.zst\.part-002\) is truncated/);
  });

  it('names a damaged part (a flipped byte): verify lists it, import names it', async () => {
    const dir = await spoiledCopy('flipped', async (d) => {
      const f = join(d, 'mirror.tar.zst.part-004');
      const bytes = await readFile(f);
      bytes[1234]! ^= 0x01;
      await writeFile(f, bytes);
    });
    const count = partsOf(dir, 'mirror.tar.zst').length;
    const v = await airlock(['--json', 'bundle', 'verify', join(dir, 'mirror.tar.zst.part-001'), '--trust', pub()]);
    expect(v.code).toBe(EXIT_CODES.INTEGRITY);
    const err = (JSON.parse(v.stdout) as { error: { details: { problems: Array<{ message: string }> } } }).error;
    expect(err.details.problems.map((p) => p.message)).toContain(`part 4 of ${count} (mirror.tar.zst.part-004) is damaged: copy it again`);
    const i = await airlock(['--json', 'bundle', 'import', join(dir, 'mirror.tar.zst.part-001'), '--to', `oci:${join(dir, 'layout')}`, '--trust', pub()]);
    expect(i.code).toBe(EXIT_CODES.INTEGRITY);
    const ierr = (JSON.parse(i.stdout) as { error: { message: string; details: { part: number } } }).error;
    expect(ierr.message).toBe(`part 4 of ${count} (mirror.tar.zst.part-004) is damaged: copy it again`);
    expect(ierr.details.part).toBe(4);
  });
});

describe('an interrupted create --split', () => {
  it('continues after kill -9: finished parts kept, the same bytes as one uninterrupted run', async () => {
    const out = path('killed.tar.zst');
    const args = ['bundle', 'create', refV1, '-o', out, '--sign-key', path('signer.key'), '--plain-http', '--split', PART, '-q'];
    proxy.rate = 2 * MiB;
    const child: ChildProcess = spawn(process.execPath, [AIRLOCK_BIN, ...args], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let sent = false;
    const timer = setInterval(() => {
      if (!sent && existsSync(`${out}.partial.part-003`)) {
        sent = true;
        child.kill('SIGKILL');
      }
    }, 5);
    try {
      await exited;
    } finally {
      clearInterval(timer);
      proxy.rate = Infinity;
    }
    expect(sent).toBe(true);
    expect(partsOf(tmp.path, 'killed.tar.zst').filter((n) => !n.endsWith('.partial'))).toEqual([]);
    const kept = statSync(`${out}.partial.part-001`).mtimeMs;

    const rerun = await airlock([...args.slice(0, -1), '--json']);
    expect(rerun.stderr).toBe('');
    expect(rerun.code).toBe(0);
    const result = JSON.parse(rerun.stdout) as { reusedBytes: number; sha256: string; parts: Array<{ path: string; sha256: string }> };
    expect(result.reusedBytes).toBeGreaterThan(MiB);
    expect(statSync(`${out}.part-001`).mtimeMs).toBe(kept); // renamed, not written again
    expect(readdirSync(tmp.path).some((n) => n.startsWith('killed.tar.zst.partial'))).toBe(false);
    expect((await airlock(['bundle', 'verify', `${out}.part-001`, '--trust', pub()])).code).toBe(0);

    // One uninterrupted run with the same creation time and sequence: the same parts.
    const { created, sequence } = JSON.parse((await readHead(`${out}.part-001`)).bundleJson.toString()) as { created: string; sequence: number };
    const endpoints = await endpointsFrom({ plainHttp: true });
    try {
      const { loadSigningKey } = await import('../../src/bundle/keys.js');
      const direct = await createBundle({
        images: await expandImages(imageListFromRefs([refV1]).entries, endpoints),
        output: path('uninterrupted.tar.zst'),
        signingKey: await loadSigningKey(path('signer.key')),
        now: () => new Date(created),
        sequenceFile: path('uninterrupted.sequence'),
        sequence,
        split: MiB,
      });
      expect(direct.sha256).toBe(result.sha256);
      expect(direct.parts!.map((p) => p.sha256)).toEqual(result.parts.map((p) => p.sha256));
    } finally {
      await endpoints.close();
    }
  });
});

describe('--split with --since', () => {
  it('makes a split delta against a split parent, which verifies and imports on top of it', async () => {
    const parent = path('gen1.tar.zst');
    expect((await create(parent, '--split', PART)).code).toBe(0);
    const delta = path('gen2.tar.zst');
    const r = await airlock([
      '--json',
      'bundle',
      'create',
      refV2,
      '-o',
      delta,
      '--sign-key',
      path('signer.key'),
      '--plain-http',
      '--since',
      `${parent}.part-001`,
      '--split',
      '64KiB',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { parts: unknown[]; delta: { externalBlobs: number } };
    expect(result.delta.externalBlobs).toBe(1); // the 5 MiB base layer
    expect(result.parts.length).toBeGreaterThan(1);
    expect((await airlock(['bundle', 'verify', delta, '--trust', pub()])).code).toBe(0);
    const layout = `oci:${path('delta-layout')}`;
    expect((await airlock(['bundle', 'import', `${parent}.part-001`, '--to', layout, '--trust', pub()])).code).toBe(0);
    const i = await airlock(['-q', 'bundle', 'import', `${delta}.part-001`, '--to', layout, '--trust', pub()]);
    expect(i.stderr).toBe('');
    expect(i.code).toBe(0);
    // The parent named as the bundle it was, with only its parts on disk: its first part is read.
    const again = await airlock(['--json', 'bundle', 'create', refV2, '-o', path('gen2-again.tar.zst'), '--unsigned', '--plain-http', '--since', parent]);
    expect(again.stderr).toBe('');
    expect((JSON.parse(again.stdout) as { delta: { externalBlobs: number } }).delta.externalBlobs).toBe(1);
    const diff = await airlock(['bundle', 'diff', parent, delta]);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain('(B is a delta of A)');
  });
});
