/**
 * The per-registry flags against real registries: one run mixing a plain-HTTP registry and a TLS
 * registry with Bearer token auth (`--plain-http=HOST` for the first only), `--authfile` with a
 * podman-style auth.json, `--password-stdin`, `docker://` references, and `airlock tags` with the
 * image list's filters.
 */
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { AIRLOCK_BIN, airlock, type CliResult } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { type SeededImage, seedRegistry } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { startTokenServer, type TestTokenServer } from '../support/token-server.js';

const ALICE = { username: 'alice', password: 'wonder land' };
/** On the plain-HTTP registry. */
const PLAIN_IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0'];
/** On the TLS registry with token auth. */
const TLS_IMAGES = ['quay.io/coreos/etcd:v3.5.0', 'quay.io/coreos/etcd:v2.3.8'];

let work: TempDir;
let tokens: TestTokenServer;
let plain: TestRegistry;
let secure: TestRegistry;
let seeded: Map<string, SeededImage>;
/** No auth file of the machine's user is read, no registries.conf of the machine either. */
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = await makeTempDir('registry-flags');
  tokens = await startTokenServer({ users: [{ ...ALICE, access: () => ['pull', 'push'] }] });
  const [corpus, p, s] = await Promise.all([
    writeCorpus(join(work.path, 'corpus')),
    startRegistry(),
    startRegistry({ tls: true, tokenAuth: { ...tokens.auth, ...ALICE } }),
  ]);
  plain = p;
  secure = s;
  const [a, b] = await Promise.all([seedRegistry(plain, corpus.dir, PLAIN_IMAGES), seedRegistry(secure, corpus.dir, TLS_IMAGES)]);
  seeded = new Map([...a, ...b]);
  const home = join(work.path, 'home');
  await mkdir(home, { recursive: true });
  await writeFile(join(work.path, 'registries.conf'), '');
  env = {
    HOME: home,
    DOCKER_CONFIG: join(home, '.docker'),
    XDG_RUNTIME_DIR: '',
    REGISTRY_AUTH_FILE: '',
    CONTAINERS_REGISTRIES_CONF: join(work.path, 'registries.conf'),
  };
});
afterAll(async () => {
  await Promise.all([plain?.stop(), secure?.stop(), tokens?.stop()]);
  await work?.remove();
});

const ref = (name: string): string => seeded.get(name)?.ref ?? '';
const digest = (name: string): string => seeded.get(name)?.digest ?? '';
const tlsFlags = (): string[] => ['--ca-file', secure.caFile ?? ''];
const run = (args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> => airlock(args, { env: { ...env, ...extraEnv } });

/** Run the CLI with `input` on its stdin (a pipe). */
function airlockWithStdin(args: string[], input: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AIRLOCK_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('one run, a plain-HTTP registry and a TLS registry with token auth', () => {
  it('bundle create: --plain-http=HOST makes only that registry plain (docker:// refs accepted)', async () => {
    const out = join(work.path, 'mixed.tar.zst');
    const images = [`docker://${ref(PLAIN_IMAGES[0]!)}`, ref(PLAIN_IMAGES[1]!), `docker://${ref(TLS_IMAGES[0]!)}`, ref(TLS_IMAGES[1]!)];
    const creds = ['--creds', `${secure.host}=${ALICE.username}:${ALICE.password}`];
    const r = await run(['--json', 'bundle', 'create', `--plain-http=${plain.host}`, ...images, '-o', out, '--unsigned', ...tlsFlags(), ...creds]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { images: Array<{ name: string; digest: string }> };
    const got = Object.fromEntries(result.images.map((i) => [i.name, i.digest]));
    for (const name of [...PLAIN_IMAGES, ...TLS_IMAGES]) expect(got[ref(name)]).toBe(digest(name));
  });

  it('bundle import: --plain-http=HOST for the target; a host the run does not involve is refused', async () => {
    const bundle = join(work.path, 'mixed.tar.zst');
    const r = await run(['bundle', 'import', bundle, '--to', `${plain.host}/imported`, '--strip-host', `--plain-http=${plain.host}`, '--allow-unsigned']);
    expect(r.code).toBe(0);
    const tags = await run(['tags', `${plain.host}/imported/coreos/etcd`, `--plain-http=${plain.host}`]);
    expect(tags.stdout).toBe('v2.3.8\nv3.3.0\nv3.5.0\n');
    const typo = await run(['bundle', 'import', bundle, '--to', `${plain.host}/imported`, '--plain-http=127.0.0.1:1', '--allow-unsigned']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain(`--plain-http=127.0.0.1:1: no registry of the run is 127.0.0.1:1 (registries involved: ${plain.host})`);
  });

  it('bundle create: without the flag the plain registry fails, with the bare flag the TLS one does', async () => {
    const images = [ref(PLAIN_IMAGES[1]!), ref(TLS_IMAGES[0]!)];
    const creds = ['--creds', `${secure.host}=${ALICE.username}:${ALICE.password}`];
    const none = await run(['bundle', 'create', ...images, '-o', join(work.path, 'none.tar.zst'), '--unsigned', ...tlsFlags(), ...creds]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain(plain.host);
    const every = await run(['bundle', 'create', '--plain-http', ...images, '-o', join(work.path, 'every.tar.zst'), '--unsigned', ...tlsFlags(), ...creds]);
    expect(every.code).not.toBe(0);
    expect(every.stderr).toContain(secure.host);
  });

  it('copy: plain-HTTP source into the TLS registry with token auth, then tags lists what landed', async () => {
    const r = await run([
      '--json',
      'copy',
      `--plain-http=${plain.host}`,
      `docker://${ref(PLAIN_IMAGES[1]!)}`,
      `${secure.host}/mirror`,
      '--strip-host',
      ...tlsFlags(),
      '--creds',
      `${secure.host}=${ALICE.username}:${ALICE.password}`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const copied = JSON.parse(r.stdout) as { images: Array<{ reference: string; digest: string }> };
    expect(copied.images.map((i) => i.digest)).toEqual([digest(PLAIN_IMAGES[1]!)]);
    expect(copied.images.map((i) => i.reference)).toEqual([`${secure.host}/mirror/coreos/etcd:v3.3.0`]);
    const tags = await run(['--json', 'tags', `${secure.host}/mirror/coreos/etcd`, ...tlsFlags(), '--creds', `${ALICE.username}:${ALICE.password}`]);
    expect(tags.code).toBe(0);
    expect(JSON.parse(tags.stdout)).toEqual({ repository: `${secure.host}/mirror/coreos/etcd`, tags: ['v3.3.0'], selected: ['v3.3.0'] });
  });
});

describe('--authfile and --password-stdin', () => {
  const podmanAuth = (password: string): string =>
    JSON.stringify({ auths: { [secure.host]: { auth: Buffer.from(`${ALICE.username}:${password}`).toString('base64') } } });

  it('reads the login from a podman-style auth.json named by --authfile, over REGISTRY_AUTH_FILE', async () => {
    const good = join(work.path, 'auth.json');
    const wrong = join(work.path, 'wrong-auth.json');
    await writeFile(good, podmanAuth(ALICE.password));
    await writeFile(wrong, podmanAuth('not the password'));
    const repo = `${secure.host}/coreos/etcd`;
    const anonymous = await run(['tags', repo, ...tlsFlags()]);
    expect(anonymous.code).not.toBe(0);
    const viaEnvWrong = await run(['tags', repo, ...tlsFlags()], { REGISTRY_AUTH_FILE: wrong });
    expect(viaEnvWrong.code).not.toBe(0);
    const r = await run(['tags', repo, '--authfile', good, ...tlsFlags()], { REGISTRY_AUTH_FILE: wrong });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('v2.3.8\nv3.5.0\n');
  });

  it('refuses an --authfile that is not there', async () => {
    const r = await run(['tags', `${secure.host}/coreos/etcd`, '--authfile', join(work.path, 'missing.json'), ...tlsFlags()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('missing.json');
  });

  it('takes the password of --creds HOST=USER from stdin', async () => {
    const args = ['tags', `${secure.host}/coreos/etcd`, '--creds', `${secure.host}=${ALICE.username}`, '--password-stdin', ...tlsFlags()];
    const r = await airlockWithStdin(args, `${ALICE.password}\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('v2.3.8\nv3.5.0\n');
    const wrong = await airlockWithStdin(args, 'nope\n');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).not.toContain('nope');
  });
});

describe('airlock tags', () => {
  it('lists a plain-HTTP repository and selects with the image list filters (--json)', async () => {
    const repo = `docker://${plain.host}/coreos/etcd`;
    const r = await run(['--json', 'tags', repo, `--plain-http=${plain.host}`, '--semver', '>=3.0.0 <4.0.0']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ repository: `${plain.host}/coreos/etcd`, tags: ['v3.3.0'], selected: ['v3.3.0'] });
    const none = await run(['tags', repo, '--plain-http', '--exclude', '^v3']);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    expect(none.stderr).toContain('0 of 1 tags selected');
  });

  it('lists the TLS registry with both filters and says how many were selected', async () => {
    const r = await run([
      'tags',
      `${secure.host}/coreos/etcd`,
      '--include',
      '^v',
      '--exclude',
      '^v2',
      ...tlsFlags(),
      '--creds',
      `${ALICE.username}:${ALICE.password}`,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('v3.5.0\n');
    expect(r.stderr).toBe(`${secure.host}/coreos/etcd: 1 of 2 tags selected\n`);
  });
});

describe("the operator's registries.conf", () => {
  it('insecure = true lets sources be read over plain HTTP or unverified TLS without a flag, and only those', async () => {
    const conf = join(work.path, 'insecure.conf');
    await writeFile(conf, `[[registry]]\nlocation = "${plain.host}"\ninsecure = true\n\n[[registry]]\nprefix = "${secure.host}"\ninsecure = true\n`);
    const creds = ['--creds', `${secure.host}=${ALICE.username}:${ALICE.password}`];
    const images = [ref(PLAIN_IMAGES[1]!), ref(TLS_IMAGES[0]!)];
    // Without the file: the plain registry is spoken to in TLS, the TLS one is not trusted.
    const without = await run(['bundle', 'create', ...images, '-o', join(work.path, 'conf-none.tar.zst'), '--unsigned', ...creds]);
    expect(without.code).not.toBe(0);
    const out = join(work.path, 'conf.tar.zst');
    const r = await run(['--json', 'bundle', 'create', ...images, '-o', out, '--unsigned', ...creds], { CONTAINERS_REGISTRIES_CONF: conf });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as { images: Array<{ name: string; digest: string }> };
    expect(result.images.map((i) => i.digest)).toEqual([digest(PLAIN_IMAGES[1]!), digest(TLS_IMAGES[0]!)]);
    const debug = await run(['--debug', 'tags', `${plain.host}/coreos/etcd`], { CONTAINERS_REGISTRIES_CONF: conf });
    expect(debug.code).toBe(0);
    expect(debug.stderr).toContain(`${conf} marks ${plain.host} insecure (prefix ${plain.host}): plain HTTP`);
  });

  it('blocked = true refuses the source before any request, whatever the flags (exit 14)', async () => {
    const conf = join(work.path, 'blocked.conf');
    await writeFile(conf, `[[registry]]\nlocation = "${plain.host}"\nblocked = true\n`);
    const out = join(work.path, 'blocked.tar.zst');
    const r = await run(['bundle', 'create', ref(PLAIN_IMAGES[1]!), '-o', out, '--unsigned', '--plain-http'], { CONTAINERS_REGISTRIES_CONF: conf });
    expect(r.code).toBe(14);
    expect(r.stderr).toContain(`airlock: error: ${plain.host} is blocked in ${conf} (blocked = true for prefix ${plain.host})`);
    expect(existsSync(`${out}.partial`) || existsSync(out)).toBe(false);
  });

  it('a flag still decides over the file, and a broken file is named', async () => {
    const conf = join(work.path, 'secure-only.conf');
    await writeFile(conf, `[[registry]]\nprefix = "${secure.host}"\ninsecure = true\n`);
    // --insecure-skip-tls-verify=HOST is the flag's own choice: no probe, same result.
    const r = await run(['tags', `${secure.host}/coreos/etcd`, `--insecure-skip-tls-verify=${secure.host}`, '--creds', `${ALICE.username}:${ALICE.password}`], {
      CONTAINERS_REGISTRIES_CONF: conf,
    });
    expect(r.code).toBe(0);
    // --plain-http for it: the file does not turn TLS back on, so the TLS registry refuses.
    const plainFlag = await run(['tags', `${secure.host}/coreos/etcd`, '--plain-http', '--creds', `${ALICE.username}:${ALICE.password}`], {
      CONTAINERS_REGISTRIES_CONF: conf,
    });
    expect(plainFlag.code).not.toBe(0);
    const broken = join(work.path, 'broken.conf');
    await writeFile(broken, '[[registry]\n');
    const b = await run(['tags', `${plain.host}/coreos/etcd`], { CONTAINERS_REGISTRIES_CONF: broken });
    expect(b.code).not.toBe(0);
    expect(b.stderr).toContain(`${broken}:1:`);
  });
});
