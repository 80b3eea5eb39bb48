/**
 * Credentials and untrusted text against a hostile registry (test/support/hostile-registry.ts, in
 * front of a real registry): where credentials go (bare --creds, token realms on other origins and
 * on plain HTTP), and that no secret and no terminal control reaches any output stream or file after
 * errors whose bodies echo the Authorization header, token-server errors, failing pushes, and
 * messages full of escape sequences. Also inspect and diff of a hostile bundle.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { ArchiveWriter } from '../../src/bundle/archive-writer.js';
import { BUNDLE_MEDIA_TYPE, serializeBundleManifest, validateBundleManifest, type BundleManifest } from '../../src/bundle/manifest.js';
import { readHead } from '../../src/bundle/read-head.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { airlock, type CliResult } from '../support/cli.js';
import { ANSI_MESSAGE, startHostileRegistry, type Behaviour, type HostileRegistry } from '../support/hostile-registry.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const LOGIN = { username: 'mirror', password: 'Hostile-Test-S3cret' };
const IMAGE = 'example.com/team/app:v1';
const REPO = 'team/app';
/** Secrets of LOGIN a hostile server could echo. */
const SECRETS = [LOGIN.password, Buffer.from(`${LOGIN.username}:${LOGIN.password}`).toString('base64'), Buffer.from(LOGIN.password).toString('base64')];
// Terminal-active characters: C0 controls but newline, DEL, C1 controls, bidi overrides and isolates.
const CONTROLS = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

let work: TempDir;
let upstream: TestRegistry;
let hostile: HostileRegistry;
/** An unsigned bundle of IMAGE, made from the corpus layout (no registry involved). */
let bundle: string;
let runs = 0;

beforeAll(async () => {
  work = await makeTempDir('hostile');
  const corpus = await writeCorpus(join(work.path, 'corpus'), { images: [{ name: IMAGE, layers: [{ id: 'app', size: 4096 }] }] });
  upstream = await startRegistry();
  await seedRegistry(upstream, corpus.dir, [IMAGE]);
  hostile = await startHostileRegistry({ tls: true, upstream });
  bundle = join(work.path, 'app.tar.zst');
  const made = await airlock(['bundle', 'create', `oci:${corpus.dir}:${IMAGE}`, '-o', bundle, '--unsigned', '-q']);
  expect(made.code, made.stderr).toBe(0);
});
afterAll(async () => {
  await Promise.all([hostile?.stop(), upstream?.stop()]);
  await work?.remove();
});

/** A fresh directory for one run's files. */
async function runDir(): Promise<string> {
  const dir = join(work.path, `run-${++runs}`);
  await (await import('node:fs/promises')).mkdir(dir);
  return dir;
}

/** Every file under `dir` as text, and for an archive also its decompressed head (bundle.json, signature). */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(dir, { recursive: true })) {
    const path = join(dir, name);
    if (!(await stat(path)).isFile()) continue;
    out.push((await readFile(path)).toString('latin1'));
    if (/\.tar\.zst(\.partial)?$/.test(name)) {
      const head = await readHead(path).catch(() => undefined);
      if (head !== undefined) out.push(head.bundleJson.toString('utf8'), head.signature?.toString('utf8') ?? '');
    }
  }
  return out;
}

/** No secret (LOGIN's, and every token the hostile registry issued) in any output stream or file of the run. */
async function expectNoSecrets(result: CliResult, dir: string): Promise<void> {
  const secrets = [...SECRETS, ...hostile.tokens];
  const texts = [result.stdout, result.stderr, ...(await filesUnder(dir))];
  for (const secret of secrets) for (const text of texts) expect(text.includes(secret), `a secret reached the output: ${text.slice(0, 300)}`).toBe(false);
}

function expectNoControls(result: CliResult): void {
  expect(result.stderr).not.toMatch(CONTROLS);
  expect(result.stdout).not.toMatch(CONTROLS);
}

const tls = (): string[] => ['--ca-file', hostile.caFile ?? ''];

/** `bundle create HOSTILE/team/app:v1` into a fresh directory. */
async function create(extra: string[], host = hostile.host): Promise<{ result: CliResult; dir: string; out: string }> {
  const dir = await runDir();
  const out = join(dir, 'out.tar.zst');
  const result = await airlock(['bundle', 'create', `${host}/${REPO}:v1`, '-o', out, '--unsigned', ...tls(), ...extra], { cwd: dir });
  return { result, dir, out };
}

async function importTo(extra: string[]): Promise<{ result: CliResult; dir: string }> {
  const dir = await runDir();
  const result = await airlock(['bundle', 'import', bundle, '--to', hostile.host, '--allow-unsigned', ...tls(), ...extra], { cwd: dir });
  return { result, dir };
}

const creds = (host = hostile.host): string[] => ['--creds', `${host}=${LOGIN.username}:${LOGIN.password}`];

describe('where credentials go', () => {
  it('refuses a bare --creds when two registry hosts are involved, naming both, before contacting either', async () => {
    hostile.set({ auth: { kind: 'basic', ...LOGIN } });
    const dir = await runDir();
    const result = await airlock(
      [
        'bundle',
        'create',
        `${hostile.host}/${REPO}:v1`,
        `${hostile.localhostHost}/${REPO}:v1`,
        '-o',
        join(dir, 'o.tar.zst'),
        '--unsigned',
        ...tls(),
        '--creds',
        `${LOGIN.username}:${LOGIN.password}`,
      ],
      { cwd: dir },
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`registries involved: 2: ${hostile.host}, ${hostile.localhostHost}`);
    expect(result.stderr).toContain('--creds HOST=USER:PASSWORD');
    expect(hostile.requests).toEqual([]);
    await expectNoSecrets(result, dir);
  });

  it('refuses a bare --creds for an import into an oci: directory (no registry involved)', async () => {
    const dir = await runDir();
    const result = await airlock(['bundle', 'import', bundle, '--to', `oci:${join(dir, 'layout')}`, '--allow-unsigned', '--creds', 'u:p4ssword'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('registries involved: none');
  });

  it('uses a bare --creds for the one registry of the run', async () => {
    hostile.set({ auth: { kind: 'basic', ...LOGIN } });
    const { result, dir, out } = await create(['--creds', `${LOGIN.username}:${LOGIN.password}`, '-q']);
    expect(result.code, result.stderr).toBe(0);
    expect(hostile.requests.some((r) => r.authorization === `Basic ${SECRETS[1]}`)).toBe(true);
    expect((await readHead(out)).bundleJson.toString()).toContain(`${hostile.host}/${REPO}:v1`);
    await expectNoSecrets(result, dir);
  });

  it('never sends HOST= credentials to the second registry of an image list', async () => {
    hostile.set({ auth: { kind: 'basic', ...LOGIN } });
    const dir = await runDir();
    const result = await airlock(
      [
        'bundle',
        'create',
        `${hostile.host}/${REPO}:v1`,
        `${hostile.localhostHost}/${REPO}:v1`,
        '-o',
        join(dir, 'o.tar.zst'),
        '--unsigned',
        ...tls(),
        ...creds(),
      ],
      { cwd: dir },
    );
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(`registry ${hostile.localhostHost} requires authentication`);
    const asLocalhost = hostile.requests.filter((r) => r.host === hostile.localhostHost);
    expect(asLocalhost.length).toBeGreaterThan(0);
    expect(asLocalhost.every((r) => r.authorization === undefined)).toBe(true);
    await expectNoSecrets(result, dir);
  });

  it('refuses a plain-HTTP token realm behind the HTTPS registry: AUTH naming the realm, credentials never sent', async () => {
    hostile.set({ auth: { kind: 'bearer', realm: 'http-other-port', ...LOGIN } });
    const { result, dir } = await create([...creds(), '--json']);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain(`is HTTPS but names a plain-HTTP token realm ${hostile.realm('http-other-port')}`);
    expect(JSON.parse(result.stdout)).toMatchObject({ error: { code: 'AUTH', details: { realm: hostile.realm('http-other-port') } } });
    expect(hostile.tokenRequests.filter((r) => r.authorization !== undefined)).toEqual([]);
    expect(hostile.requests.every((r) => r.authorization === undefined)).toBe(true);
    await expectNoSecrets(result, dir);
  });

  it.each(['https-other-port', 'https-localhost'] as const)(
    'sends credentials to an HTTPS token realm on another origin (%s), shown by --debug only',
    async (realm) => {
      hostile.set({ auth: { kind: 'bearer', realm, ...LOGIN } });
      const plain = await create([...creds(), '-q']);
      expect(plain.result.code, plain.result.stderr).toBe(0);
      expect(plain.result.stderr).not.toContain('debug');
      const debug = await create([...creds(), '-q', '--debug']);
      expect(debug.result.code, debug.result.stderr).toBe(0);
      const { origin } = new URL(hostile.realm(realm));
      expect(debug.result.stderr).toContain(
        `airlock: debug: sending the credentials for ${hostile.host} (from --creds) to token realm ${origin}/token, another origin than the registry's https://${hostile.host}`,
      );
      expect(hostile.tokenRequests.length).toBeGreaterThan(0);
      expect(hostile.tokenRequests.every((r) => r.realm === realm && r.authorization === `Basic ${SECRETS[1]}`)).toBe(true);
      await expectNoSecrets(plain.result, plain.dir);
      await expectNoSecrets(debug.result, debug.dir);
    },
  );
});

describe('no secret is echoed', () => {
  const echoCases: [string, Behaviour, number][] = [
    [
      'a 401 echoing Authorization (Basic; a final 401 body is never shown)',
      {
        auth: { kind: 'basic', ...LOGIN },
        failures: [{ method: 'GET', path: /manifests/, status: 401, body: 'echo-authorization', headers: { 'www-authenticate': 'Basic realm="x"' } }],
      },
      5,
    ],
    [
      'a 403 echoing Authorization (Basic)',
      { auth: { kind: 'basic', ...LOGIN }, failures: [{ method: 'GET', path: /manifests/, status: 403, body: 'echo-authorization' }] },
      5,
    ],
    [
      'a 403 echoing the Bearer token',
      { auth: { kind: 'bearer', realm: 'same-origin', ...LOGIN }, failures: [{ method: 'GET', path: /manifests/, status: 403, body: 'echo-authorization' }] },
      5,
    ],
    [
      'a 500 echoing Authorization (retried, then given up)',
      { auth: { kind: 'basic', ...LOGIN }, failures: [{ method: 'GET', path: /manifests/, status: 500, body: 'echo-authorization' }] },
      9,
    ],
    [
      'a token server 500 echoing the Basic header',
      { auth: { kind: 'bearer', realm: 'https-other-port', ...LOGIN }, tokenFailure: { status: 500, body: 'echo-authorization' } },
      9,
    ],
    [
      'a token server 400 echoing the Basic header',
      { auth: { kind: 'bearer', realm: 'same-origin', ...LOGIN }, tokenFailure: { status: 400, body: 'echo-authorization' } },
      9,
    ],
  ];

  // One run each: with --json the error goes to stdout as JSON and to stderr as the human lines,
  // and --debug adds stack traces and registry notes, so every stream is exercised at once.
  it.each(echoCases)('create after %s: stdout (--json), stderr (--debug) and files', async (_what, behaviour, code) => {
    hostile.set(behaviour);
    const { result, dir } = await create(['--json', '--debug', ...creds()]);
    expect(result.code, result.stderr).toBe(code);
    expect(JSON.parse(result.stdout)).toHaveProperty('error.code');
    expect(result.stderr).toContain('airlock: error: ');
    // The hostile registry did receive the credentials (so it had something to echo) ...
    expect(hostile.requests.some((r) => r.authorization !== undefined) || hostile.tokenRequests.some((r) => r.authorization !== undefined)).toBe(true);
    // ... and none of it came back out.
    await expectNoSecrets(result, dir);
    expectNoControls(result);
  });

  it.each([
    ['the upload (POST) failing with 500', { method: 'POST', path: /blobs\/uploads/, status: 500, body: 'echo-authorization' }, 9],
    ['the manifest PUT failing with 403', { method: 'PUT', path: /manifests/, status: 403, body: 'echo-authorization' }, 5],
  ] as const)('import with %s echoing Authorization', async (_what, failure, code) => {
    hostile.set({ auth: { kind: 'basic', ...LOGIN }, failures: [failure] });
    const { result, dir } = await importTo(['--json', '--debug', ...creds()]);
    expect(result.code, result.stderr).toBe(code);
    expect(hostile.requests.some((r) => r.method === failure.method && r.authorization !== undefined)).toBe(true);
    await expectNoSecrets(result, dir);
    expectNoControls(result);
  });
});

describe('terminal control in untrusted text', () => {
  it('strips escape sequences from a registry error message, human and --json', async () => {
    hostile.set({ failures: [{ method: 'GET', path: /manifests/, status: 403, body: 'ansi' }] });
    const human = await create([]);
    expect(human.result.code).toBe(5);
    expectNoControls(human.result);
    expect(human.result.stderr).toContain('FATAL');
    expect(human.result.stderr).toContain('access denied OK');
    const json = await create(['--json']);
    expectNoControls(json.result);
    const error = (JSON.parse(json.result.stdout) as { error: { message: string; details: unknown } }).error;
    expect(error.message).toContain('DENIED: FATAL click access denied OK exe.txt');
    expect(JSON.stringify(error.details)).not.toContain('\\u001b');
    expect(ANSI_MESSAGE).toMatch(CONTROLS); // the test would see a leak
  });

  it('shows a hostile bundle in inspect and diff without its escape sequences', async () => {
    const dir = await runDir();
    const evil = `example.com/app:\x1b]0;owned\x07v1\x1b[2K\r\u202etxt.exe`;
    const older = hostileManifest('2026-11-01T00:00:00Z', `example.com/app:v0`, 'linux/amd64');
    const newer = hostileManifest('2026-11-02T00:00:00Z', evil, 'linux\x1b[31m/amd64');
    await writeFile(join(dir, 'a.json'), serializeBundleManifest(older));
    await writeFile(join(dir, 'b.json'), serializeBundleManifest(newer));
    const archive = join(dir, 'evil.tar.zst');
    const w = await ArchiveWriter.create(archive, { mtime: new Date('2026-11-02T00:00:00Z') });
    await w.addBuffer('bundle.json', serializeBundleManifest(newer), { compress: true });
    await w.finish();

    const inspect = await airlock(['bundle', 'inspect', archive]);
    expect(inspect.code, inspect.stderr).toBe(0);
    expectNoControls(inspect);
    expect(inspect.stdout).toContain('example.com/app:v1 txt.exe');
    const diff = await airlock(['bundle', 'diff', join(dir, 'a.json'), join(dir, 'b.json')]);
    expect(diff.code, diff.stderr).toBe(0);
    expectNoControls(diff);
    expect(diff.stdout).toContain('+  example.com/app:v1 txt.exe');

    // --json keeps the exact strings, escaped.
    const json = await airlock(['--json', 'bundle', 'inspect', archive]);
    expectNoControls(json);
    expect((JSON.parse(json.stdout) as { images: { name: string; platforms: string[] }[] }).images[0]).toMatchObject({
      name: evil,
      platforms: ['linux\x1b[31m/amd64'],
    });
  });
});

/** A valid bundle.json with one image of the given name and platform (nothing behind it: inspect and diff read only heads). */
function hostileManifest(created: string, name: string, platform: string): BundleManifest {
  const manifest = { digest: sha256Digest(name), size: 100, mediaType: 'application/vnd.oci.image.manifest.v1+json' };
  const m: BundleManifest = {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created,
    creator: 'airlock/test',
    images: [{ name, source: name, digest: manifest.digest, mediaType: manifest.mediaType, size: 100, platforms: [platform] }],
    blobs: [manifest],
    layout: { 'oci-layout': { digest: sha256Digest('l'), size: 30 }, 'index.json': { digest: sha256Digest('i'), size: 200 } },
    totals: { images: 1, blobs: 1, bytes: 100, referencedBytes: 100 },
  };
  expect(validateBundleManifest(m)).toEqual([]);
  return m;
}
