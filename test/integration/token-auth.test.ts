/**
 * The token-auth harness: the real registry configured for Bearer tokens (the flow of Docker Hub,
 * Harbor, GitLab) against test/support/token-server.ts. skopeo, an independent client, reading
 * through it proves the token server speaks the protocol the way real clients expect.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { type SeededImage, seedRegistry } from '../support/seed.js';
import { accessFor, skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { DEFAULT_EXPIRES_IN, startTokenServer, type TestTokenServer } from '../support/token-server.js';

const ALICE = { username: 'alice', password: 'wonder land' };
const READER = { username: 'reader', password: 'read-only' };
const IMAGES = ['quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0', 'docker.io/library/busybox:musl'];

let work: TempDir;
let tokens: TestTokenServer;
let reg: TestRegistry;
let seeded: Map<string, SeededImage>;
let dispatcher: Agent;

beforeAll(async () => {
  work = await makeTempDir('token-auth');
  tokens = await startTokenServer({
    users: [
      { ...ALICE, access: () => ['pull', 'push'] },
      { ...READER, access: (repository) => (repository.startsWith('coreos/') ? ['pull'] : []) },
    ],
  });
  const [corpus, registry] = await Promise.all([writeCorpus(join(work.path, 'corpus')), startRegistry({ tls: true, tokenAuth: { ...tokens.auth, ...ALICE } })]);
  reg = registry;
  dispatcher = new Agent({ connect: { ca: await readFile(reg.caFile ?? '', 'utf8') } });
  seeded = await seedRegistry(reg, corpus.dir, IMAGES);
});
afterAll(async () => {
  await Promise.all([reg?.stop(), tokens?.stop(), dispatcher?.close()]);
  await work?.remove();
});

describe('registry with Bearer token auth', () => {
  it('refuses an anonymous push with a Bearer challenge naming realm, service and scope', async () => {
    const res = await request(`${reg.url}/v2/coreos/etcd/blobs/uploads/`, { method: 'POST', dispatcher });
    await res.body.dump();
    expect(res.statusCode).toBe(401);
    const challenge = String(res.headers['www-authenticate']);
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`realm="${tokens.realm}"`);
    expect(challenge).toContain(`service="${tokens.service}"`);
    expect(challenge).toMatch(/scope="repository:coreos\/etcd:(push,pull|pull,push)"/);
  });

  it('seeds with good credentials, one token per repository', () => {
    expect([...seeded.keys()]).toEqual(IMAGES);
    const seeding = tokens.requests.filter((r) => r.username === ALICE.username);
    expect(seeding.map((r) => r.scopes)).toEqual([['repository:coreos/etcd:pull,push'], ['repository:library/busybox:pull,push']]);
    expect(seeding.every((r) => r.status === 200 && r.service === tokens.service)).toBe(true);
  });

  it('lets skopeo read through the token flow (it agrees on every digest)', async () => {
    const before = tokens.requests.length;
    const images = [...seeded.values()];
    for (const image of images) {
      expect((await skopeoInspectRaw(`docker://${image.ref}`, accessFor(reg))).digest).toBe(image.digest);
    }
    const asked = tokens.requests.slice(before);
    expect(asked.length).toBeGreaterThanOrEqual(images.length);
    expect(asked.every((r) => r.status === 200 && r.username === ALICE.username)).toBe(true);
    expect(asked.flatMap((r) => r.scopes)).toContain('repository:coreos/etcd:pull');
    expect(asked.flatMap((r) => r.granted)).toContainEqual({ type: 'repository', name: 'coreos/etcd', actions: ['pull'] });
  });

  it('grants each user only its own access', async () => {
    const etcd = seeded.get(IMAGES[0] ?? '');
    const reader = { ...accessFor(reg), creds: READER };
    expect((await skopeoInspectRaw(`docker://${etcd?.ref}`, reader)).digest).toBe(etcd?.digest);
    await expect(skopeoInspectRaw(`docker://${reg.host}/library/busybox:musl`, reader)).rejects.toThrow(/requested access to the resource is denied/);
    const pullOnly = await fetchToken(READER, ['repository:coreos/etcd:pull,push']);
    expect(await registryStatus('POST', '/v2/coreos/etcd/blobs/uploads/', pullOnly)).toBe(401);
  });

  it('makes skopeo fail on a wrong password, and answers 401 with a JSON error', async () => {
    const before = tokens.requests.length;
    const ref = seeded.get(IMAGES[0] ?? '')?.ref;
    const wrong = { ...accessFor(reg), creds: { username: ALICE.username, password: 'nope' } };
    await expect(skopeoInspectRaw(`docker://${ref}`, wrong)).rejects.toThrow(/unable to retrieve auth token: invalid username\/password/);
    expect(tokens.requests.slice(before).map((r) => r.status)).toContain(401);
    const res = await request(`${tokens.realm}?service=${tokens.service}&scope=repository:coreos/etcd:pull`, {
      headers: { authorization: basic({ username: 'nobody', password: 'x' }) },
      dispatcher,
    });
    expect(res.statusCode).toBe(401);
    expect(await res.body.json()).toEqual({ errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] });
  });

  it('issues ES256 JWTs with x5c and the claims distribution checks', async () => {
    const answer = await tokenAnswer(ALICE, ['repository:coreos/etcd:pull', 'repository:library/busybox:push']);
    expect(answer.token).toBe(answer.access_token);
    expect(answer.expires_in).toBe(DEFAULT_EXPIRES_IN);
    expect(Date.parse(answer.issued_at)).toBeGreaterThan(Date.now() - 60_000);
    const [header, claims] = answer.token
      .split('.')
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(header.x5c).toHaveLength(1);
    expect(claims).toMatchObject({ iss: tokens.issuer, aud: tokens.service, sub: ALICE.username });
    expect(claims.exp - claims.iat).toBe(DEFAULT_EXPIRES_IN);
    expect(claims.access).toEqual([
      { type: 'repository', name: 'coreos/etcd', actions: ['pull'] },
      { type: 'repository', name: 'library/busybox', actions: ['push'] },
    ]);
  });

  it('takes a short expires_in, and the registry refuses a token past its 60 s leeway', async () => {
    const manifest = `/v2/coreos/etcd/manifests/v3.3.0`;
    try {
      tokens.setExpiresIn(2);
      expect((await tokenAnswer(ALICE, ['repository:coreos/etcd:pull'])).expires_in).toBe(2);
      tokens.setExpiresIn(-61);
      expect(await registryStatus('GET', manifest, await fetchToken(ALICE, ['repository:coreos/etcd:pull']))).toBe(401);
    } finally {
      tokens.setExpiresIn(DEFAULT_EXPIRES_IN);
    }
    expect(await registryStatus('GET', manifest, await fetchToken(ALICE, ['repository:coreos/etcd:pull']))).toBe(200);
    expect(await registryStatus('GET', manifest, await fetchToken(undefined, ['repository:coreos/etcd:pull']))).toBe(401);
  });

  it('grants pull to anonymous requests only when told to', async () => {
    const open = await startTokenServer({ anonymousPull: true });
    try {
      const url = `${open.realm}?service=${open.service}&scope=repository:coreos/etcd:pull,push`;
      const res = await request(url, { dispatcher });
      const { token } = (await res.body.json()) as TokenAnswer;
      const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { access: unknown };
      expect(claims.access).toEqual([{ type: 'repository', name: 'coreos/etcd', actions: ['pull'] }]);
      expect(open.requests).toEqual([
        { username: undefined, service: open.service, scopes: ['repository:coreos/etcd:pull,push'], status: 200, granted: claims.access },
      ]);
    } finally {
      await open.stop();
    }
  });

  it('works for a plain-HTTP registry too (the realm stays HTTPS)', async () => {
    const plain = await startRegistry({ tokenAuth: { ...tokens.auth, ...ALICE } });
    try {
      const [image] = (await seedRegistry(plain, join(work.path, 'corpus'), [IMAGES[0] ?? ''])).values();
      expect(plain.url).toMatch(/^http:/);
      expect((await skopeoInspectRaw(`docker://${image?.ref}`, accessFor(plain))).digest).toBe(image?.digest);
    } finally {
      await plain.stop();
    }
  });
});

interface TokenAnswer {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

const basic = ({ username, password }: { username: string; password: string }): string => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;

async function tokenAnswer(creds: typeof ALICE | undefined, scopes: string[]): Promise<TokenAnswer> {
  const url = new URL(tokens.realm);
  url.searchParams.set('service', tokens.service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const res = await request(url, { headers: creds ? { authorization: basic(creds) } : {}, dispatcher });
  expect(res.statusCode).toBe(200);
  return (await res.body.json()) as TokenAnswer;
}

async function fetchToken(creds: typeof ALICE | undefined, scopes: string[]): Promise<string> {
  return (await tokenAnswer(creds, scopes)).token;
}

async function registryStatus(method: 'GET' | 'POST', path: string, token: string): Promise<number> {
  const res = await request(`${reg.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json',
    },
    dispatcher,
  });
  await res.body.dump();
  return res.statusCode;
}
