/**
 * `bundle create`, `verify` and `inspect` against a real registry, cross-checked with standard
 * tar/zstd and skopeo.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { ArchiveReader } from '../../src/bundle/archive-reader.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry, type SeededImage } from '../support/seed.js';
import { skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
let tmp: TempDir;
let reg: TestRegistry;
let seeded: Map<string, SeededImage>;
let corpus: { dir: string; images: Array<{ name: string; digest: string }>; blobs: Map<string, { size: number }> };
let bundle: string;
let listFile: string;

beforeAll(async () => {
  tmp = await makeTempDir('create');
  corpus = await writeCorpus(`${tmp.path}/upstream`);
  reg = await startRegistry();
  seeded = await seedRegistry(reg, corpus.dir);
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/stranger`])).code).toBe(0);
  listFile = `${tmp.path}/images.yaml`;
  await writeFile(
    listFile,
    [
      'version: 1',
      'images:',
      `  - ${reg.host}/library/busybox:musl`,
      `  - ref: ${reg.host}/coreos/etcd`,
      '    tags: { semver: ">=3.0.0 <4.0.0" }',
      `  - ${reg.host}/coreos/etcd:v2.3.8`,
      `  - ${reg.host}/library/alpine:3.18`,
      '',
    ].join('\n'),
  );
  bundle = `${tmp.path}/mirror.tar.zst`;
  const created = await airlock(['bundle', 'create', '-f', listFile, '-o', bundle, '--sign-key', `${tmp.path}/signer.key`, '--plain-http', '-q']);
  expect(created.stderr).toBe('');
  expect(created.code).toBe(0);
});

afterAll(async () => {
  await reg?.stop();
  await tmp?.remove();
});

const expectedImages = (): Array<[string, string]> =>
  ['library/busybox:musl', 'coreos/etcd:v3.3.0', 'coreos/etcd:v3.4.1', 'coreos/etcd:v3.5.0', 'coreos/etcd:v2.3.8', 'library/alpine:3.18'].map((path) => {
    const s = [...seeded.values()].find((x) => `${x.repository}:${x.tag}` === path)!;
    return [`${reg.host}/${path}`, s.digest];
  });

describe('bundle create from a real registry', () => {
  it('records every selected image with the registry digest, and nothing else', async () => {
    const r = await airlock(['bundle', 'inspect', '--json', bundle]);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { images: Array<{ name: string; digest: string }>; signed: boolean };
    expect(info.signed).toBe(true);
    expect(info.images.map((i) => [i.name, i.digest]).sort()).toEqual(expectedImages().sort());
    for (const [name, digest] of expectedImages()) {
      const { digest: served } = await skopeoInspectRaw(`docker://${name}`, { tlsVerify: false });
      expect(served).toBe(digest);
    }
  });

  it('writes a sidecar that sha256sum -c accepts', async () => {
    const { stdout } = await run('sha256sum', ['-c', 'mirror.tar.zst.sha256'], { cwd: tmp.path });
    expect(stdout).toContain('mirror.tar.zst: OK');
  });

  it('extracts with tar --zstd into an OCI layout that skopeo reads, every blob once', async () => {
    const out = `${tmp.path}/extracted`;
    await run('mkdir', ['-p', out]);
    await run('tar', ['--zstd', '-xf', bundle, '-C', out]);
    const { stdout: listing } = await run('tar', ['--zstd', '-tf', bundle]);
    const paths = listing.trim().split('\n');
    expect(new Set(paths).size).toBe(paths.length);
    expect(paths.slice(0, 4)).toEqual(['bundle.json', 'bundle.json.sig', 'oci-layout', 'index.json']);
    const blobs = await readdir(`${out}/blobs/sha256`);
    for (const hex of blobs) {
      const data = await readFile(`${out}/blobs/sha256/${hex}`);
      expect(createHash('sha256').update(data).digest('hex')).toBe(hex);
    }
    // skopeo's oci: reader skips index entries with Docker media types: check the OCI images.
    for (const [name, digest] of expectedImages()) {
      if (name.includes('v2.3.8') || name.includes('alpine')) continue;
      const { digest: read } = await skopeoInspectRaw(`oci:${out}:${name}`);
      expect(read).toBe(digest);
    }
    const { stdout } = await run('skopeo', ['copy', `oci:${out}:${reg.host}/coreos/etcd:v3.3.0`, `dir:${tmp.path}/copied`]);
    expect(stdout).toContain('Writing manifest');
  });

  it('verifies with the signer key, names an untrusted key, refuses unsigned-by-default', async () => {
    const ok = await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/signer.pub`]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('OK');
    const wrong = await airlock(['bundle', 'verify', bundle, '--trust', `${tmp.path}/stranger.pub`]);
    expect(wrong.code).toBe(EXIT_CODES.SIGNATURE);
    expect(wrong.stderr).toMatch(/not trusted|untrusted|unknown key/i);
    const none = await airlock(['bundle', 'verify', bundle]);
    expect(none.code).toBe(EXIT_CODES.SIGNATURE);
  });
});

describe('bundle verify finds damage anywhere', () => {
  async function damagedCopy(name: string, position: number): Promise<string> {
    const bytes = await readFile(bundle);
    bytes[position] = bytes[position]! ^ 0x20;
    const path = `${tmp.path}/${name}.tar.zst`;
    await writeFile(path, bytes);
    return path;
  }

  it('names the damaged blob when a byte of a stored layer flips', async () => {
    const reader = await ArchiveReader.open(bundle);
    const layer = reader.entries().find((e) => e.encoding === 'raw' && e.size > 4096)!;
    await reader.close();
    const path = await damagedCopy('raw-flip', layer.offset + 600 + Math.floor(layer.size / 2));
    const r = await airlock(['bundle', 'verify', path, '--trust', `${tmp.path}/signer.pub`]);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toContain(layer.path.slice('blobs/sha256/'.length));
  });

  it('names the damaged entry when a byte of a compressed frame flips', async () => {
    const reader = await ArchiveReader.open(bundle);
    const entry = reader.entries().find((e) => e.encoding === 'zstd' && e.path.startsWith('blobs/') && e.size > 300)!;
    await reader.close();
    const path = await damagedCopy('zstd-flip', entry.offset + 20);
    const r = await airlock(['bundle', 'verify', path, '--trust', `${tmp.path}/signer.pub`]);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toContain(entry.path.slice('blobs/sha256/'.length, 'blobs/sha256/'.length + 12));
  });

  it('fails on a flip in the signed head, the index or the seek table', async () => {
    const size = (await readFile(bundle)).length;
    for (const [name, position] of [
      ['head', 40],
      ['seek-table', size - 12],
      ['index', size - 200],
    ] as const) {
      const path = await damagedCopy(`flip-${name}`, position);
      const r = await airlock(['bundle', 'verify', path, '--trust', `${tmp.path}/signer.pub`]);
      expect(r.code, `${name}: ${r.stderr}`).not.toBe(0);
      expect([EXIT_CODES.INTEGRITY, EXIT_CODES.SIGNATURE]).toContain(r.code);
    }
  });

  it('reports a truncated archive', async () => {
    const bytes = await readFile(bundle);
    const path = `${tmp.path}/truncated.tar.zst`;
    await writeFile(path, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const r = await airlock(['bundle', 'verify', path, '--trust', `${tmp.path}/signer.pub`]);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    // inspect still works from the head of a partial copy
    const info = await airlock(['bundle', 'inspect', path]);
    expect(info.code).toBe(0);
    expect(info.stdout).toContain('coreos/etcd:v3.4.1');
  });
});

describe('bundle create refuses bad input without leaving output behind', () => {
  it('an unknown image: NOT_FOUND, no archive, no .partial', async () => {
    const out = `${tmp.path}/missing.tar.zst`;
    const r = await airlock(['bundle', 'create', `${reg.host}/coreos/etcd:v9.9.9`, '-o', out, '--unsigned', '--plain-http', '-q']);
    expect(r.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(r.stderr).toContain('coreos/etcd');
    expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('no signing key and no --unsigned: USAGE with the fix', async () => {
    const r = await airlock(['bundle', 'create', `${reg.host}/library/busybox:musl`, '-o', `${tmp.path}/x.tar.zst`, '--plain-http']);
    expect(r.code).toBe(EXIT_CODES.USAGE);
    expect(r.stderr).toContain('--sign-key');
  });

  it('an unreachable registry: NETWORK', async () => {
    const r = await airlock(['bundle', 'create', '127.0.0.1:9/library/busybox:musl', '-o', `${tmp.path}/y.tar.zst`, '--unsigned', '--plain-http', '-q']);
    expect(r.code).toBe(EXIT_CODES.NETWORK);
    expect(r.stderr).toContain('127.0.0.1:9');
  });

  it('an invalid image list: INPUT_INVALID naming the entry', async () => {
    const bad = `${tmp.path}/bad.yaml`;
    await writeFile(bad, 'version: 1\nimages:\n  - ref: quay.io/coreos/etcd\n    tags: { semver: "three" }\n');
    const r = await airlock(['bundle', 'create', '-f', bad, '-o', `${tmp.path}/z.tar.zst`, '--unsigned']);
    expect(r.code).toBe(EXIT_CODES.INPUT_INVALID);
    expect(r.stderr).toContain('images[0].tags.semver');
  });

  it('an existing output is kept unless --force', async () => {
    const r = await airlock(['bundle', 'create', `${reg.host}/library/busybox:musl`, '-o', bundle, '--unsigned', '--plain-http']);
    expect(r.code).toBe(EXIT_CODES.USAGE);
    expect(r.stderr).toContain('--force');
  });
});

describe('TLS and Basic auth', () => {
  let secure: TestRegistry;
  beforeAll(async () => {
    secure = await startRegistry({ tls: true, basicAuth: { username: 'mirror', password: 's3cret-pass' } });
    await seedRegistry(secure, corpus.dir, ['docker.io/library/busybox:musl']);
  });
  afterAll(() => secure?.stop());

  it('pulls with --ca-file and --creds, and the bundle verifies', async () => {
    const out = `${tmp.path}/secure.tar.zst`;
    const r = await airlock([
      'bundle',
      'create',
      `${secure.host}/library/busybox:musl`,
      '-o',
      out,
      '--unsigned',
      '--ca-file',
      secure.caFile!,
      '--creds',
      `${secure.host}=mirror:s3cret-pass`,
      '-q',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await airlock(['bundle', 'verify', out, '--allow-unsigned', '-q'])).code).toBe(0);
  });

  it('wrong password: AUTH, and the password is never printed', async () => {
    const out = `${tmp.path}/denied.tar.zst`;
    const r = await airlock([
      'bundle',
      'create',
      `${secure.host}/library/busybox:musl`,
      '-o',
      out,
      '--unsigned',
      '--ca-file',
      secure.caFile!,
      '--creds',
      'mirror:wrong-pass-123',
      '-q',
      '--json',
    ]);
    expect(r.code).toBe(EXIT_CODES.AUTH);
    expect(r.stderr + r.stdout).not.toContain('wrong-pass-123');
    expect((JSON.parse(r.stdout) as { error: { code: string } }).error.code).toBe('AUTH');
    expect(existsSync(out)).toBe(false);
  });

  it('an unknown CA: TLS with the way out', async () => {
    const r = await airlock(['bundle', 'create', `${secure.host}/library/busybox:musl`, '-o', `${tmp.path}/t.tar.zst`, '--unsigned', '-q']);
    expect(r.code).toBe(EXIT_CODES.TLS);
    expect(r.stderr).toContain('--ca-file');
  });
});
