/**
 * Real registries for integration tests: Debian's `docker-registry` (distribution 2.8.2) on a free
 * 127.0.0.1 port, optionally with TLS (a test CA made with openssl once per run by global-setup.ts,
 * or once per process without it), and either htpasswd basic auth (bcrypt, the only hash it accepts)
 * or Bearer token auth against a token server (see `token-server.ts`).
 *
 * The registry runs under `setpriv --pdeathsig KILL`, so the kernel kills it when this process dies
 * for any reason; `stop()` and an exit hook kill it earlier. Nothing is left behind.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { makeTempDir } from './tmp.js';

const run = promisify(execFile);

/** A running registry. `host` is what goes into references: `127.0.0.1:PORT`. */
export interface TestRegistry {
  host: string;
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`. */
  url: string;
  /** PEM of the CA that signed the server certificate (TLS only). */
  caFile?: string;
  /** A directory holding only `ca.crt`, for skopeo's `--cert-dir` (TLS only). */
  certDir?: string;
  /** The registry's storage root directory (to inspect or damage stored blobs). */
  root: string;
  /** Who clients (seedRegistry, skopeo via accessFor) log in as: basic auth, or at the token server. */
  username?: string;
  password?: string;
  /** Set when the registry uses Bearer token auth. */
  tokenAuth?: TokenAuthOptions;
  stop(): Promise<void>;
}

/** Options of {@link startRegistry}. `basicAuth` and `tokenAuth` exclude each other. */
export interface RegistryOptions {
  tls?: boolean;
  basicAuth?: { username: string; password: string };
  tokenAuth?: TokenAuthOptions;
}

/**
 * Bearer token auth: the registry's `auth.token` config (`realm`, `service`, `issuer`,
 * `rootcertbundle`) plus what clients need. `startTokenServer(...).auth` fills in all but the login.
 */
export interface TokenAuthOptions {
  /** The token endpoint the registry names in its challenge, e.g. `https://127.0.0.1:PORT/token`. */
  realm: string;
  /** The registry's name in challenges; the tokens' `aud` must equal it. */
  service: string;
  /** The tokens' `iss` must equal it. */
  issuer: string;
  /** PEM file of the certificates that may sign tokens (an `x5c` chain must end at one of them). */
  rootCertBundle: string;
  /** PEM file of the CA to trust when fetching tokens from an HTTPS realm. */
  caFile?: string;
  /** The login seedRegistry and accessFor() use at the token server (becomes the registry's `username`). */
  username?: string;
  password?: string;
}

/** The registry starts in well under a second; 15 s covers a loaded CI machine. */
const READY_TIMEOUT_MS = 15_000;
/** A port picked by binding :0 can be taken before the registry binds it: try a few. */
const PORT_ATTEMPTS = 5;
/** Keep the end of the registry's output for error messages, not all of it. */
const OUTPUT_CAP = 16 * 1024;

const running = new Set<ChildProcess>();
let exitHooked = false;
let pki: Promise<TestPki> | undefined;

/** Set by global-setup.ts to a directory made by {@link makeTestPki}, shared by the whole run. */
export const PKI_ENV = 'AIRLOCK_TEST_PKI';

/** Files of the test CA and the server certificate it signed. */
export interface TestPki {
  /** The CA certificate (PEM). */
  caFile: string;
  /** A directory holding only `ca.crt` (skopeo's `--cert-dir` also reads `*.key`, so no keys here). */
  certDir: string;
  certFile: string;
  keyFile: string;
}

/**
 * Start a registry and wait until `GET /v2/` answers (200, or 401 with auth).
 * @example
 *   const reg = await startRegistry({ tls: true, basicAuth: { username: 'u', password: 'p' } });
 *   try { ... `${reg.host}/coreos/etcd:v3.3.0` ... } finally { await reg.stop(); }
 */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  if (opts.basicAuth && opts.tokenAuth) throw new Error('startRegistry: basicAuth and tokenAuth exclude each other');
  const tmp = await makeTempDir('registry');
  try {
    const root = join(tmp.path, 'storage');
    await mkdir(root);
    const tls = opts.tls ? await testPki() : undefined;
    let htpasswdFile: string | undefined;
    if (opts.basicAuth) {
      const { username, password } = opts.basicAuth;
      const { stdout } = await run('htpasswd', ['-Bbn', username, password]);
      htpasswdFile = join(tmp.path, 'htpasswd');
      await writeFile(htpasswdFile, stdout);
    }
    for (let attempt = 1; ; attempt++) {
      const host = `127.0.0.1:${await freePort()}`;
      const configFile = join(tmp.path, 'config.yml');
      await writeFile(configFile, configYaml(host, root, tls, htpasswdFile, opts.tokenAuth));
      const proc = spawnRegistry(configFile);
      const url = `${tls ? 'https' : 'http'}://${host}`;
      try {
        await waitReady(url, proc, tls?.caFile);
      } catch (err) {
        await proc.stop();
        if (attempt < PORT_ATTEMPTS && /address already in use/i.test(proc.output())) continue;
        throw err;
      }
      return {
        host,
        url,
        root,
        ...(tls ? { caFile: tls.caFile, certDir: tls.certDir } : {}),
        ...opts.basicAuth,
        ...(opts.tokenAuth ? tokenLogin(opts.tokenAuth) : {}),
        async stop() {
          await proc.stop();
          await tmp.remove();
        },
      };
    }
  } catch (err) {
    await tmp.remove();
    throw err;
  }
}

function configYaml(
  host: string,
  root: string,
  tls: { certFile: string; keyFile: string } | undefined,
  htpasswdFile: string | undefined,
  token: TokenAuthOptions | undefined,
): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(root)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: ${host}`,
    // A fixed secret silences the "No HTTP secret provided" warning.
    '  secret: airlock-test-secret',
  ];
  if (tls) {
    lines.push('  tls:', `    certificate: ${JSON.stringify(tls.certFile)}`, `    key: ${JSON.stringify(tls.keyFile)}`);
  }
  if (htpasswdFile) {
    lines.push('auth:', '  htpasswd:', '    realm: airlock-test', `    path: ${JSON.stringify(htpasswdFile)}`);
  }
  if (token) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${JSON.stringify(token.realm)}`,
      `    service: ${JSON.stringify(token.service)}`,
      `    issuer: ${JSON.stringify(token.issuer)}`,
      `    rootcertbundle: ${JSON.stringify(token.rootCertBundle)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The registry's `tokenAuth`, and the login (if any) as its `username`/`password`. */
function tokenLogin(token: TokenAuthOptions): Pick<TestRegistry, 'tokenAuth' | 'username' | 'password'> {
  const { username, password } = token;
  return { tokenAuth: token, ...(username !== undefined ? { username, password: password ?? '' } : {}) };
}

interface RegistryProcess {
  exited: Promise<void>;
  isRunning(): boolean;
  output(): string;
  stop(): Promise<void>;
}

function spawnRegistry(configFile: string): RegistryProcess {
  if (!exitHooked) {
    exitHooked = true;
    process.once('exit', () => {
      for (const child of running) child.kill('SIGKILL');
    });
  }
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'docker-registry', 'serve', configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_CAP);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let alive = true;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      keep(Buffer.from(`spawn failed: ${err.message}\n`));
      alive = false;
      running.delete(child);
      resolve();
    });
    child.once('exit', () => {
      alive = false;
      running.delete(child);
      resolve();
    });
  });
  return {
    exited,
    isRunning: () => alive,
    output: () => output,
    async stop() {
      if (!alive) return;
      child.kill('SIGTERM');
      const timedOut = await Promise.race([exited.then(() => false), sleep(5_000).then(() => true)]);
      if (timedOut) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

async function waitReady(url: string, proc: RegistryProcess, caFile?: string): Promise<void> {
  const dispatcher = new Agent({ connect: caFile ? { ca: await readFile(caFile, 'utf8') } : {} });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  try {
    while (Date.now() < deadline) {
      if (!proc.isRunning()) throw new Error(`docker-registry exited before it was ready:\n${proc.output()}`);
      try {
        const res = await request(`${url}/v2/`, { dispatcher, headersTimeout: 2_000, bodyTimeout: 2_000 });
        await res.body.dump();
        if (res.statusCode === 200 || res.statusCode === 401) return;
        last = `GET /v2/ answered ${res.statusCode}`;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(50);
    }
    throw new Error(`docker-registry at ${url} not ready after ${READY_TIMEOUT_MS} ms (${last}):\n${proc.output()}`);
  } finally {
    await dispatcher.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The test PKI: the run's from global setup if there is one, else one of this process's own (made once).
 * @example
 *   const { caFile, certFile, keyFile } = await testPki();
 */
export function testPki(): Promise<TestPki> {
  return (pki ??= runPki());
}

async function runPki(): Promise<TestPki> {
  const shared = process.env[PKI_ENV];
  if (shared && existsSync(pkiPaths(shared).keyFile)) return pkiPaths(shared);
  return makeTestPki((await makeTempDir('pki')).path);
}

function pkiPaths(dir: string): TestPki {
  const certDir = join(dir, 'certs');
  return { caFile: join(certDir, 'ca.crt'), certDir, certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

/**
 * Make a CA and a server certificate for IP:127.0.0.1 and DNS:localhost (EC P-256, valid 7 days)
 * in the existing directory `dir`.
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  const paths = pkiPaths(dir);
  const { caFile, certFile, keyFile } = paths;
  await mkdir(paths.certDir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', caKey, '-out', caFile, '-days', '7', '-subj', '/CN=airlock test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await openssl(['req', ...ec, '-keyout', join(dir, 'server.key.tmp'), '-out', csr, '-subj', '/CN=127.0.0.1']);
  await writeFile(ext, [
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    '',
  ].join('\n'));
  await openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', '2', '-days', '7',
    '-extfile', ext, '-out', certFile]);
  // The server key appears last: its presence says the directory is complete.
  await rename(join(dir, 'server.key.tmp'), keyFile);
  return paths;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr || e.message}`);
  }
}
