/**
 * The connected side behind a company proxy: `bundle create` and `bundle import` through a real
 * forward proxy (test/support/proxy-server.ts) to registries named `registry.airlock.test:PORT`, a
 * name only the proxy resolves. Without the proxy the name does not resolve; with it the proxy's
 * log shows the `CONNECT` (TLS registry, verified with the test CA through the tunnel) or the
 * absolute-form requests (plain HTTP); `NO_PROXY` and `--proxy ''` bypass it. The proxy's own
 * credentials never appear in what airlock prints, with `--debug` or `--json`.
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock, type CliResult } from '../support/cli.js';
import { listenLocal } from '../support/listen.js';
import { startTestProxy, type TestProxy } from '../support/proxy-server.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { startTokenServer, type TestTokenServer } from '../support/token-server.js';
import { seedRegistry } from '../support/seed.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const NAME = 'registry.airlock.test';
const IMAGE = 'quay.io/coreos/etcd:v3.3.0';
const PROXY_USER = 'proxyuser';
const PROXY_PASSWORD = 'pr0xy-s3cret';
const ALICE = { username: 'alice', password: 'wonder land' };

/** No proxy variable of the machine running the tests leaks into a run. */
const NO_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  ['http_proxy', 'https_proxy', 'all_proxy', 'no_proxy'].flatMap((k) => [
    [k, ''],
    [k.toUpperCase(), ''],
  ]),
);

let tmp: TempDir;
let tlsReg: TestRegistry;
let plainReg: TestRegistry;
let proxy: TestProxy;
let authProxy: TestProxy;
let denyProxy: TestProxy;
let tokens: TestTokenServer;
/** TLS, Bearer tokens from a realm named `registry.airlock.test:TOKEN_PORT`: both only through the proxy. */
let tokenReg: TestRegistry;
let deadProxy: string;
let n = 0;

const port = (reg: TestRegistry): string => reg.host.split(':')[1] ?? '';
const tlsRef = (): string => `${NAME}:${port(tlsReg)}/coreos/etcd:v3.3.0`;
const plainRef = (): string => `${NAME}:${port(plainReg)}/coreos/etcd:v3.3.0`;

async function create(ref: string, env: NodeJS.ProcessEnv, extra: string[] = []): Promise<CliResult & { ms: number }> {
  const started = Date.now();
  const tls = ref === plainRef() ? ['--plain-http'] : ['--ca-file', tlsReg.caFile ?? ''];
  const r = await airlock(['bundle', 'create', ref, '-o', join(tmp.path, `b${++n}.tar.zst`), '--sign-key', join(tmp.path, 'signer.key'), ...tls, ...extra], {
    env: { ...NO_ENV, ...env },
  });
  return { ...r, ms: Date.now() - started };
}

/** The proxy password and its Basic forms must never be printed. */
function expectNoProxySecret(r: CliResult, password = PROXY_PASSWORD): void {
  const out = r.stdout + r.stderr;
  expect(out).not.toContain(password);
  expect(out).not.toContain(Buffer.from(`${PROXY_USER}:${password}`).toString('base64'));
  expect(out).not.toContain(encodeURIComponent(password));
}

beforeAll(async () => {
  tmp = await makeTempDir('proxy');
  const hosts = { [NAME]: '127.0.0.1' };
  const [corpus, a, b, p, ap, dp] = await Promise.all([
    writeCorpus(join(tmp.path, 'corpus')),
    startRegistry({ tls: true }),
    startRegistry(),
    startTestProxy({ hosts }),
    startTestProxy({ hosts, auth: { username: PROXY_USER, password: PROXY_PASSWORD } }),
    startTestProxy({ hosts, deny: () => true }),
  ]);
  [tlsReg, plainReg, proxy, authProxy, denyProxy] = [a, b, p, ap, dp];
  await Promise.all([seedRegistry(tlsReg, corpus.dir, [IMAGE]), seedRegistry(plainReg, corpus.dir, [IMAGE])]);
  const closed = await listenLocal(createServer());
  await closed.close();
  deadProxy = `http://${closed.host}`;
  tokens = await startTokenServer({ users: [{ ...ALICE, access: () => ['pull', 'push'] }] });
  const realm = tokens.realm.replace('127.0.0.1', NAME);
  tokenReg = await startRegistry({ tls: true, tokenAuth: { ...tokens.auth, realm, ...ALICE } });
  expect((await airlock(['key', 'generate', '--out', join(tmp.path, 'signer')])).code).toBe(0);
});
afterAll(async () => {
  await Promise.all([tlsReg?.stop(), plainReg?.stop(), tokenReg?.stop(), tokens?.stop(), proxy?.close(), authProxy?.close(), denyProxy?.close()]);
  await tmp?.remove();
});

describe('registries behind a proxy', () => {
  it('cannot resolve the name without the proxy, and fails fast', async () => {
    const r = await create(tlsRef(), {});
    expect(r.code, r.stderr).toBe(EXIT_CODES.NETWORK);
    expect(r.stderr).toContain(`cannot resolve registry host ${NAME}`);
    expect(r.ms).toBeLessThan(30_000);
  });

  it('creates through HTTPS_PROXY: CONNECT, then TLS to the registry verified with its CA', async () => {
    const before = proxy.log.length;
    const r = await create(tlsRef(), { HTTPS_PROXY: proxy.url }, ['--debug']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`through proxy ${proxy.url}`);
    const asked = proxy.log.slice(before);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((e) => e.method === 'CONNECT' && e.target === `${NAME}:${port(tlsReg)}` && e.status === 200)).toBe(true);
  });

  it('refuses a registry certificate that does not verify, through the tunnel too', async () => {
    const r = await airlock(['bundle', 'create', tlsRef(), '-o', join(tmp.path, 'untrusted.tar.zst'), '--sign-key', join(tmp.path, 'signer.key')], {
      env: { ...NO_ENV, https_proxy: proxy.url },
    });
    expect(r.code, r.stderr).toBe(EXIT_CODES.TLS);
  });

  it('sends plain-HTTP requests in absolute form through http_proxy, lower case winning', async () => {
    const before = proxy.log.length;
    const r = await create(plainRef(), { http_proxy: proxy.url, HTTP_PROXY: deadProxy });
    expect(r.code, r.stderr).toBe(0);
    const asked = proxy.log.slice(before);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((e) => e.method !== 'CONNECT' && e.target.startsWith(`http://${NAME}:${port(plainReg)}/v2/`))).toBe(true);
    expect(asked.map((e) => e.target)).toContain(`http://${NAME}:${port(plainReg)}/v2/coreos/etcd/manifests/v3.3.0`);
  });

  it('imports into a registry behind the proxy', async () => {
    const bundle = join(tmp.path, 'import-src.tar.zst');
    const created = await airlock(
      ['bundle', 'create', `${tlsReg.host}/coreos/etcd:v3.3.0`, '-o', bundle, '--sign-key', join(tmp.path, 'signer.key'), '--ca-file', tlsReg.caFile ?? ''],
      {
        env: NO_ENV,
      },
    );
    expect(created.code, created.stderr).toBe(0);
    const before = proxy.log.length;
    const to = `${NAME}:${port(tlsReg)}/through-proxy`;
    const r = await airlock(['bundle', 'import', bundle, '--to', to, '--trust', join(tmp.path, 'signer.pub'), '--ca-file', tlsReg.caFile ?? '', '-q'], {
      env: { ...NO_ENV, HTTPS_PROXY: proxy.url },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(proxy.log.slice(before).some((e) => e.method === 'CONNECT' && e.status === 200)).toBe(true);
  });

  it('fetches tokens from a realm on another host through the proxy too, NO_PROXY deciding per host', async () => {
    const bundle = join(tmp.path, 'import-src.tar.zst');
    const regName = `${NAME}:${port(tokenReg)}`;
    const realmName = `${NAME}:${new URL(tokens.realm).port}`;
    const args = ['bundle', 'import', bundle, '--to', `${regName}/tok`, '--trust', join(tmp.path, 'signer.pub'), '--ca-file', tokenReg.caFile ?? ''];
    const creds = ['--creds', `${regName}=${ALICE.username}:${ALICE.password}`, '-q'];
    const before = proxy.log.length;
    const tokensBefore = tokens.requests.length;
    const r = await airlock([...args, ...creds], { env: { ...NO_ENV, HTTPS_PROXY: proxy.url } });
    expect(r.code, r.stderr).toBe(0);
    const targets = new Set(proxy.log.slice(before).map((e) => `${e.method} ${e.target} ${e.status}`));
    expect([...targets].sort()).toEqual([`CONNECT ${realmName} 200`, `CONNECT ${regName} 200`].sort());
    expect(tokens.requests.length).toBeGreaterThan(tokensBefore);
    // The realm's host bypasses the proxy, and is then unreachable: the proxy is chosen per host.
    const bypassed = await airlock([...args, ...creds], { env: { ...NO_ENV, HTTPS_PROXY: proxy.url, NO_PROXY: realmName } });
    expect(bypassed.code, bypassed.stderr).toBe(EXIT_CODES.NETWORK);
    expect(bypassed.stderr).toContain(NAME);
  });

  it('goes through an https:// proxy, verified with --ca-file, to TLS and plain-HTTP registries', async () => {
    const secure = await startTestProxy({ hosts: { [NAME]: '127.0.0.1' }, tls: true });
    try {
      const r = await create(tlsRef(), { HTTPS_PROXY: secure.url });
      expect(r.code, r.stderr).toBe(0);
      const plain = await create(plainRef(), {}, ['--proxy', secure.url, '--ca-file', tlsReg.caFile ?? '']);
      expect(plain.code, plain.stderr).toBe(0);
      expect(secure.log.some((e) => e.method === 'CONNECT' && e.status === 200)).toBe(true);
      expect(secure.log.some((e) => e.method === 'GET' && e.target.startsWith(`http://${NAME}:`))).toBe(true);
      // Without the CA, the proxy's certificate is not trusted.
      const untrusted = await create(plainRef(), {}, ['--proxy', secure.url]);
      expect(untrusted.code, untrusted.stderr).toBe(EXIT_CODES.TLS);
      expect(untrusted.stderr).toContain(`TLS certificate of proxy ${secure.url} is not accepted`);
    } finally {
      await secure.close();
    }
  });

  it.each([[NAME], [`.airlock.test`], [`airlock.test`], [`${NAME}:PORT`], ['*'], ['10.0.0.0/8,*']])(
    'NO_PROXY=%s bypasses the proxy (and the name does not resolve)',
    async (entry) => {
      const before = proxy.log.length;
      const r = await create(tlsRef(), { HTTPS_PROXY: proxy.url, no_proxy: entry.replace('PORT', port(tlsReg)) });
      expect(r.code, r.stderr).toBe(EXIT_CODES.NETWORK);
      expect(r.stderr).toContain(`cannot resolve registry host ${NAME}`);
      expect(proxy.log.length).toBe(before);
    },
  );

  it('NO_PROXY entries for other hosts, ports and ranges leave the proxy in use', async () => {
    const r = await create(tlsRef(), { HTTPS_PROXY: proxy.url, NO_PROXY: `other.test,${NAME}:1,10.0.0.0/8,.lan` });
    expect(r.code, r.stderr).toBe(0);
  });

  it('--proxy overrides the environment; --proxy "" turns the proxy off', async () => {
    const r = await create(tlsRef(), { HTTPS_PROXY: deadProxy }, ['--proxy', proxy.url]);
    expect(r.code, r.stderr).toBe(0);
    const off = await create(tlsRef(), { HTTPS_PROXY: proxy.url }, ['--proxy', '']);
    expect(off.code, off.stderr).toBe(EXIT_CODES.NETWORK);
    expect(off.stderr).toContain(`cannot resolve registry host ${NAME}`);
  });

  it('authenticates to the proxy with the credentials in its URL, and never prints them', async () => {
    const before = authProxy.log.length;
    const url = `http://${PROXY_USER}:${PROXY_PASSWORD}@${authProxy.host}`;
    const r = await create(tlsRef(), { HTTPS_PROXY: url }, ['--debug']);
    expect(r.code, r.stderr).toBe(0);
    expect(authProxy.log.slice(before).every((e) => e.status === 200 && e.authorization !== undefined)).toBe(true);
    expect(r.stderr).toContain(`through proxy ${authProxy.url}`);
    expectNoProxySecret(r);
    const plain = await create(plainRef(), {}, ['--proxy', url, '--debug']);
    expect(plain.code, plain.stderr).toBe(0);
    expectNoProxySecret(plain);
  });

  it('a proxy that wants credentials (407) is an AUTH error naming the proxy and the fix', async () => {
    const r = await create(tlsRef(), { HTTPS_PROXY: authProxy.url }, ['--json']);
    expect(r.code, r.stderr).toBe(EXIT_CODES.AUTH);
    expect(r.stdout + r.stderr).toContain(`proxy ${authProxy.url} requires authentication (407`);
    expect(r.stdout + r.stderr).toContain('USER:PASSWORD@ before its host');
    const wrong = await create(tlsRef(), { HTTPS_PROXY: `http://${PROXY_USER}:wrong-passw0rd@${authProxy.host}` }, ['--json', '--debug']);
    expect(wrong.code, wrong.stderr).toBe(EXIT_CODES.AUTH);
    expect(wrong.stdout + wrong.stderr).toContain(`proxy ${authProxy.url} refused the credentials in the proxy URL (407`);
    expectNoProxySecret(wrong, 'wrong-passw0rd');
    const plain = await create(plainRef(), { http_proxy: `http://${PROXY_USER}:wrong-passw0rd@${authProxy.host}` });
    expect(plain.code, plain.stderr).toBe(EXIT_CODES.AUTH);
    expect(plain.stderr).toContain(`proxy ${authProxy.url} refused the credentials`);
    expectNoProxySecret(plain, 'wrong-passw0rd');
  });

  it('a proxy that refuses the destination (403) or cannot be reached says so', async () => {
    const denied = await create(tlsRef(), { HTTPS_PROXY: denyProxy.url });
    expect(denied.code, denied.stderr).toBe(EXIT_CODES.AUTH);
    expect(denied.stderr).toContain(`proxy ${denyProxy.url} refused to connect to ${NAME}:${port(tlsReg)} (403`);
    const dead = await create(tlsRef(), { HTTPS_PROXY: `http://${PROXY_USER}:${PROXY_PASSWORD}@${deadProxy.slice('http://'.length)}` }, ['--debug']);
    expect(dead.code, dead.stderr).toBe(EXIT_CODES.NETWORK);
    expect(dead.stderr).toContain(`cannot reach proxy ${deadProxy} for ${NAME}:${port(tlsReg)}: connection refused`);
    expectNoProxySecret(dead);
    expect(dead.ms).toBeLessThan(30_000);
    const deadPlain = await create(plainRef(), { http_proxy: `http://${PROXY_USER}:${PROXY_PASSWORD}@${deadProxy.slice('http://'.length)}` });
    expect(deadPlain.code, deadPlain.stderr).toBe(EXIT_CODES.NETWORK);
    expect(deadPlain.stderr).toContain(`cannot reach proxy ${deadProxy} for ${NAME}:${port(plainReg)}: connection refused`);
    expectNoProxySecret(deadPlain);
  });

  it('a proxy that accepts but never answers CONNECT is bounded by the connect timeout', async () => {
    const silent = await listenLocal(createServer(() => {}));
    try {
      const r = await create(tlsRef(), { HTTPS_PROXY: `http://${silent.host}` }, ['--timeout', '2s']);
      expect(r.code, r.stderr).toBe(EXIT_CODES.NETWORK);
      expect(r.stderr).toContain(`cannot reach proxy http://${silent.host} for ${NAME}:${port(tlsReg)}: no answer within 1 s`);
      expect(r.ms).toBeLessThan(20_000);
    } finally {
      await silent.close();
    }
  });

  it('a proxy that cannot resolve the name (502) is a NETWORK error naming it', async () => {
    const r = await create(`unknown.airlock.test:${port(tlsReg)}/coreos/etcd:v3.3.0`, { HTTPS_PROXY: proxy.url });
    expect(r.code, r.stderr).toBe(EXIT_CODES.NETWORK);
    expect(r.stderr).toContain(`proxy ${proxy.url} could not connect to unknown.airlock.test:${port(tlsReg)} (502`);
  });

  it('a malformed proxy variable is a usage error that does not repeat its value', async () => {
    const r = await create(tlsRef(), { HTTPS_PROXY: `socks5://${PROXY_USER}:${PROXY_PASSWORD}@x:1` });
    expect(r.code, r.stderr).toBe(EXIT_CODES.UNSUPPORTED);
    expect(r.stderr).toContain('HTTPS_PROXY: socks5 proxies are not supported');
    expectNoProxySecret(r);
  });
});
