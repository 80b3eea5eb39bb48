import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../../src/errors.js';
import { runCredentialHelper } from '../../src/registry/credential-helper.js';
import { authKeyCandidates, defaultAuthFiles, normalizeAuthKey, resolveCredentials } from '../../src/registry/credentials.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

let dir: string;
let binDir: string;
let n = 0;

/** Write a JSON auth file in the temp dir and return its path. */
async function authFile(doc: unknown): Promise<string> {
  const path = join(dir, `auth-${n++}.json`);
  await writeFile(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return path;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-creds-'));
  binDir = join(dir, 'bin');
  await mkdir(binDir);
  // A fake helper: knows one server; records nothing; prints docker-credential-helpers JSON.
  await writeFile(
    join(binDir, 'docker-credential-test'),
    [
      '#!/bin/sh',
      '[ "$1" = get ] || exit 2',
      'read server',
      'case "$server" in',
      '  helped.example) echo \'{"ServerURL":"helped.example","Username":"helper-user","Secret":"helper-pass"}\' ;;',
      '  https://index.docker.io/v1/) echo \'{"ServerURL":"x","Username":"hub-user","Secret":"hub-pass"}\' ;;',
      '  token.example) echo \'{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-me"}\' ;;',
      '  broken.example) echo "keychain exploded" >&2; exit 1 ;;',
      '  *) echo "credentials not found in native keychain"; exit 1 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  await chmod(join(binDir, 'docker-credential-test'), 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = (): Record<string, string> => ({ PATH: `${binDir}:/usr/bin:/bin` });

describe('auth keys', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['http://Quay.IO/', 'quay.io'],
    ['https://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['quay.io/coreos/etcd', 'quay.io/coreos/etcd'],
  ])('normalizes %s to %s', (key, want) => {
    expect(normalizeAuthKey(key)).toBe(want);
  });

  it('lists candidates most specific first', () => {
    expect(authKeyCandidates('quay.io', 'a/b/c')).toEqual(['quay.io/a/b/c', 'quay.io/a/b', 'quay.io/a', 'quay.io']);
    expect(authKeyCandidates('docker.io', undefined)).toEqual(['docker.io']);
  });

  it('builds the default file list from the environment', () => {
    expect(defaultAuthFiles({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/user/1', DOCKER_CONFIG: '/d' }, '/home/u')).toEqual([
      '/a.json',
      '/run/user/1/containers/auth.json',
      '/d/config.json',
    ]);
    expect(defaultAuthFiles({}, '/home/u')).toEqual(['/home/u/.docker/config.json']);
  });
});

describe('resolveCredentials', () => {
  it('prefers --creds over every file', async () => {
    const file = await authFile({ auths: { 'quay.io': { auth: b64('file:pw') } } });
    const creds = await resolveCredentials('quay.io', 'a', { creds: { username: 'cli', password: 'x' }, authFiles: [file] });
    expect(creds).toEqual({ username: 'cli', password: 'x', source: '--creds' });
  });

  it('decodes base64 auth and splits at the first colon', async () => {
    const file = await authFile({ auths: { 'quay.io': { auth: b64('me:pa:ss') } } });
    expect(await resolveCredentials('quay.io', 'a', { authFiles: [file] })).toEqual({ username: 'me', password: 'pa:ss', source: file });
  });

  it('reads username/password and identitytoken entries', async () => {
    const file = await authFile({ auths: { 'a.example': { username: 'u', password: 'p' }, 'b.example': { identitytoken: 'tok' } } });
    expect(await resolveCredentials('a.example', undefined, { authFiles: [file] })).toMatchObject({ username: 'u', password: 'p' });
    expect(await resolveCredentials('b.example', undefined, { authFiles: [file] })).toEqual({ identityToken: 'tok', source: file });
  });

  it('finds Docker Hub under its legacy key', async () => {
    const file = await authFile({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });
    expect(await resolveCredentials('docker.io', 'library/alpine', { authFiles: [file] })).toMatchObject({ username: 'hub' });
  });

  it('prefers the most specific host/path key', async () => {
    const file = await authFile({
      auths: { 'quay.io': { auth: b64('host:1') }, 'quay.io/team': { auth: b64('team:2') }, 'quay.io/team/app': { auth: b64('app:3') } },
    });
    expect(await resolveCredentials('quay.io', 'team/app', { authFiles: [file] })).toMatchObject({ username: 'app' });
    expect(await resolveCredentials('quay.io', 'team/other', { authFiles: [file] })).toMatchObject({ username: 'team' });
    expect(await resolveCredentials('quay.io', 'solo', { authFiles: [file] })).toMatchObject({ username: 'host' });
  });

  it('takes the first file that has credentials, skipping missing files', async () => {
    const empty = await authFile({ auths: { 'other.example': { auth: b64('o:o') } } });
    const second = await authFile({ auths: { 'quay.io': { auth: b64('second:pw') } } });
    const creds = await resolveCredentials('quay.io', undefined, { authFiles: [join(dir, 'missing.json'), empty, second] });
    expect(creds).toMatchObject({ username: 'second', source: second });
  });

  it('uses the environment to find files: REGISTRY_AUTH_FILE, then XDG_RUNTIME_DIR, then DOCKER_CONFIG', async () => {
    const xdg = join(dir, 'xdg');
    await mkdir(join(xdg, 'containers'), { recursive: true });
    await writeFile(join(xdg, 'containers', 'auth.json'), JSON.stringify({ auths: { 'x.example': { auth: b64('xdg:1') } } }));
    const dockerDir = join(dir, 'dockercfg');
    await mkdir(dockerDir, { recursive: true });
    await writeFile(
      join(dockerDir, 'config.json'),
      JSON.stringify({ auths: { 'x.example': { auth: b64('docker:1') }, 'y.example': { auth: b64('docker:2') } } }),
    );
    const home = join(dir, 'home');
    await mkdir(join(home, '.docker'), { recursive: true });
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'z.example': { auth: b64('home:3') } } }));
    const e = { XDG_RUNTIME_DIR: xdg, DOCKER_CONFIG: dockerDir };
    expect(await resolveCredentials('x.example', undefined, { env: e, homeDir: home })).toMatchObject({ username: 'xdg' });
    expect(await resolveCredentials('y.example', undefined, { env: e, homeDir: home })).toMatchObject({ username: 'docker' });
    expect(await resolveCredentials('z.example', undefined, { env: {}, homeDir: home })).toMatchObject({ username: 'home' });
    const override = await authFile({ auths: { 'x.example': { auth: b64('override:1') } } });
    expect(await resolveCredentials('x.example', undefined, { env: { ...e, REGISTRY_AUTH_FILE: override }, homeDir: home })).toMatchObject({
      username: 'override',
    });
  });

  it('returns undefined when nothing matches', async () => {
    const file = await authFile({ auths: { 'quay.io': {} } });
    expect(await resolveCredentials('quay.io', undefined, { authFiles: [file] })).toBeUndefined();
    expect(await resolveCredentials('quay.io', undefined, { env: {}, homeDir: join(dir, 'nohome') })).toBeUndefined();
  });

  it('refuses an auth file that is not JSON, naming it', async () => {
    const file = await authFile('{not json');
    const err = await resolveCredentials('quay.io', undefined, { authFiles: [file] }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'INPUT_INVALID')).toBe(true);
    expect((err as Error).message).toContain(file);
  });

  it('refuses a damaged auth file without quoting the secret next to the fault, even in its cause (--debug)', async () => {
    const secret = b64('mirror:file-secret-pw');
    for (const text of [
      `{"auths":{"quay.io":{"auth":"${secret}"x}}}`,
      `{"auths":{"quay.io":{"auth":"${secret}",}}}`,
      `{"auths":{"quay.io":{"auth":${secret}}}}`,
    ]) {
      const err = await resolveCredentials('quay.io', undefined, { authFiles: [await authFile(text)] }).catch((e: unknown) => e);
      expect(isAirlockError(err, 'INPUT_INVALID')).toBe(true);
      const everything = `${(err as Error).message} ${JSON.stringify((err as { toJSON(): unknown }).toJSON())} ${String((err as Error).cause)}`;
      expect(everything).not.toContain(secret.slice(0, 8));
    }
  });

  it('refuses an auth entry that is not base64 user:password without echoing it', async () => {
    const file = await authFile({ auths: { 'quay.io': { auth: b64('nocolon') } } });
    const err = await resolveCredentials('quay.io', undefined, { authFiles: [file] }).catch((e: unknown) => e);
    expect(isAirlockError(err, 'INPUT_INVALID')).toBe(true);
    expect((err as Error).message).not.toContain('nocolon');
  });
});

describe('credential helpers', () => {
  it('asks credHelpers[host] before auths', async () => {
    const file = await authFile({ credHelpers: { 'helped.example': 'test' }, auths: { 'helped.example': { auth: b64('file:pw') } } });
    expect(await resolveCredentials('helped.example', undefined, { authFiles: [file], env: env() })).toEqual({
      username: 'helper-user',
      password: 'helper-pass',
      source: 'docker-credential-test',
    });
  });

  it('falls back to auths, then credsStore, when the helper has nothing', async () => {
    const file = await authFile({ credHelpers: { 'unknown.example': 'test' }, auths: { 'unknown.example': { auth: b64('file:pw') } } });
    expect(await resolveCredentials('unknown.example', undefined, { authFiles: [file], env: env() })).toMatchObject({ username: 'file' });
    const store = await authFile({ credsStore: 'test', auths: { 'helped.example': {} } });
    expect(await resolveCredentials('helped.example', undefined, { authFiles: [store], env: env() })).toMatchObject({ username: 'helper-user' });
  });

  it('hands Docker Hub to the helper as https://index.docker.io/v1/', async () => {
    const file = await authFile({ credsStore: 'test' });
    expect(await resolveCredentials('docker.io', 'library/alpine', { authFiles: [file], env: env() })).toMatchObject({ username: 'hub-user' });
  });

  it('treats a <token> user as an identity token', async () => {
    const file = await authFile({ credsStore: 'test' });
    expect(await resolveCredentials('token.example', undefined, { authFiles: [file], env: env() })).toEqual({
      identityToken: 'refresh-me',
      source: 'docker-credential-test',
    });
  });

  it('treats a missing helper and "credentials not found" as no credentials', async () => {
    const missing = await authFile({ credsStore: 'does-not-exist' });
    expect(await resolveCredentials('quay.io', undefined, { authFiles: [missing], env: env() })).toBeUndefined();
    const notFound = await authFile({ credsStore: 'test' });
    expect(await resolveCredentials('nobody.example', undefined, { authFiles: [notFound], env: env() })).toBeUndefined();
  });

  it('reports any other helper failure as AUTH with a hint', async () => {
    const err = await runCredentialHelper('test', 'broken.example', env()).catch((e: unknown) => e);
    expect(isAirlockError(err, 'AUTH')).toBe(true);
    expect((err as Error).message).toContain('docker-credential-test');
    expect((err as Error).message).toContain('keychain exploded');
  });

  it('refuses helper names that are not program names', async () => {
    const err = await runCredentialHelper('../evil', 'quay.io', env()).catch((e: unknown) => e);
    expect(isAirlockError(err, 'AUTH')).toBe(true);
  });

  it('uses an injected runner', async () => {
    const file = await authFile({ credHelpers: { 'quay.io': 'fake' } });
    const asked: string[] = [];
    const creds = await resolveCredentials('quay.io', undefined, {
      authFiles: [file],
      runHelper: async (helper, server) => {
        asked.push(`${helper} ${server}`);
        return { username: 'inj', secret: 's' };
      },
    });
    expect(asked).toEqual(['fake quay.io']);
    expect(creds).toMatchObject({ username: 'inj', password: 's' });
  });
});
