// @ts-check
/**
 * Real registries for the integration tests and the benchmark: Debian's `docker-registry`
 * (distribution 2.8.2) on a free 127.0.0.1 port, optionally with TLS (a test CA made with openssl
 * once per run by global-setup.ts, or once per process without it), and either htpasswd basic auth
 * (bcrypt, the only hash it accepts) or Bearer token auth against a token server (see
 * `token-server.ts`).
 *
 * Plain JavaScript with JSDoc types (checked by `npm run typecheck`): the tests import it like any
 * module, and `node bench/run.mjs` imports it as it is, without a build step or a TypeScript loader.
 *
 * The registry runs under `setpriv --pdeathsig KILL`, so the kernel kills it when this process dies
 * for any reason; `stop()` and an exit hook kill it earlier. Nothing is left behind.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { makeTempDir } from './tmp.js';

const run = promisify(execFile);

/**
 * A running registry. `host` is what goes into references: `127.0.0.1:PORT`.
 * @typedef {object} TestRegistry
 * @property {string} host
 * @property {string} url `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
 * @property {string} [caFile] PEM of the CA that signed the server certificate (TLS only).
 * @property {string} [certDir] A directory holding only `ca.crt`, for skopeo's `--cert-dir` (TLS only).
 * @property {string} root The registry's storage root directory (to inspect or damage stored blobs).
 * @property {string} [username] Who clients (seedRegistry, skopeo via accessFor) log in as: basic
 *   auth, or at the token server.
 * @property {string} [password]
 * @property {TokenAuthOptions} [tokenAuth] Set when the registry uses Bearer token auth.
 * @property {() => Promise<void>} stop
 */

/**
 * Options of {@link startRegistry}. `basicAuth` and `tokenAuth` exclude each other.
 * @typedef {object} RegistryOptions
 * @property {boolean} [tls]
 * @property {{ username: string, password: string }} [basicAuth]
 * @property {TokenAuthOptions} [tokenAuth]
 * @property {string} [dir] Keep the config and the storage (`DIR/storage`) in this directory, made
 *   if missing and left in place by `stop()` (the benchmark's registries). Default: a temporary
 *   directory that `stop()` removes.
 * @property {string} [storageRoot] Use this storage root instead of `DIR/storage`, shared with
 *   other registries (replicas of a cluster; `stop()` leaves it).
 * @property {string} [secret] The `http.secret` that signs upload state; replicas of a cluster
 *   share one, so that an upload session can move between them.
 */

/**
 * Bearer token auth: the registry's `auth.token` config (`realm`, `service`, `issuer`,
 * `rootcertbundle`) plus what clients need. `startTokenServer(...).auth` fills in all but the login.
 * @typedef {object} TokenAuthOptions
 * @property {string} realm The token endpoint the registry names in its challenge, e.g.
 *   `https://127.0.0.1:PORT/token`.
 * @property {string} service The registry's name in challenges; the tokens' `aud` must equal it.
 * @property {string} issuer The tokens' `iss` must equal it.
 * @property {string} rootCertBundle PEM file of the certificates that may sign tokens (an `x5c`
 *   chain must end at one of them).
 * @property {string} [caFile] PEM file of the CA to trust when fetching tokens from an HTTPS realm.
 * @property {string} [username] The login seedRegistry and accessFor() use at the token server
 *   (becomes the registry's `username`).
 * @property {string} [password]
 */

/**
 * Files of the test CA and the server certificate it signed.
 * @typedef {object} TestPki
 * @property {string} caFile The CA certificate (PEM).
 * @property {string} certDir A directory holding only `ca.crt` (skopeo's `--cert-dir` also reads
 *   `*.key`, so no keys here).
 * @property {string} certFile
 * @property {string} keyFile
 */

/**
 * @typedef {object} RegistryProcess
 * @property {() => boolean} isRunning
 * @property {() => string} output
 * @property {() => Promise<void>} stop
 */

/** The registry starts in well under a second; 15 s covers a loaded CI machine. */
const READY_TIMEOUT_MS = 15_000;
/** A port picked by binding :0 can be taken before the registry binds it: try a few. */
const PORT_ATTEMPTS = 5;
/** Keep the end of the registry's output for error messages, not all of it. */
const OUTPUT_CAP = 16 * 1024;

/** @type {Set<import('node:child_process').ChildProcess>} */
const running = new Set();
let exitHooked = false;
/** @type {Promise<TestPki> | undefined} */
let pki;

/**
 * Every manifest media type a test registry holds. Sent as `Accept` when reading a manifest back,
 * so that the registry serves it as stored instead of converting it.
 */
export const MANIFEST_TYPES = Object.freeze([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

/** Set by global-setup.ts to a directory made by {@link makeTestPki}, shared by the whole run. */
export const PKI_ENV = 'AIRLOCK_TEST_PKI';

/**
 * Start a registry and wait until `GET /v2/` answers (200, or 401 with auth).
 * @example
 *   const reg = await startRegistry({ tls: true, basicAuth: { username: 'u', password: 'p' } });
 *   try { ... `${reg.host}/coreos/etcd:v3.3.0` ... } finally { await reg.stop(); }
 * @param {RegistryOptions} [opts]
 * @returns {Promise<TestRegistry>}
 */
export async function startRegistry(opts = {}) {
  if (opts.basicAuth && opts.tokenAuth) throw new Error('startRegistry: basicAuth and tokenAuth exclude each other');
  const tmp = opts.dir === undefined ? await makeTempDir('registry') : undefined;
  const dir = opts.dir ?? /** @type {NonNullable<typeof tmp>} */ (tmp).path;
  try {
    const root = opts.storageRoot ?? join(dir, 'storage');
    await mkdir(root, { recursive: true });
    const tls = opts.tls ? await testPki() : undefined;
    /** @type {string | undefined} */
    let htpasswdFile;
    if (opts.basicAuth) {
      const { username, password } = opts.basicAuth;
      const { stdout } = await run('htpasswd', ['-Bbn', username, password]);
      htpasswdFile = join(dir, 'htpasswd');
      await writeFile(htpasswdFile, stdout);
    }
    for (let attempt = 1; ; attempt++) {
      const host = `127.0.0.1:${await freePort()}`;
      const configFile = join(dir, 'config.yml');
      await writeFile(configFile, configYaml(host, root, tls, htpasswdFile, opts.tokenAuth, opts.secret));
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
          await tmp?.remove();
        },
      };
    }
  } catch (err) {
    await tmp?.remove();
    throw err;
  }
}

/**
 * @param {string} host
 * @param {string} root
 * @param {{ certFile: string, keyFile: string } | undefined} tls
 * @param {string | undefined} htpasswdFile
 * @param {TokenAuthOptions | undefined} token
 * @param {string} [secret]
 * @returns {string}
 */
function configYaml(host, root, tls, htpasswdFile, token, secret = 'airlock-test-secret') {
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
    `  secret: ${JSON.stringify(secret)}`,
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

/**
 * The registry's `tokenAuth`, and the login (if any) as its `username`/`password`.
 * @param {TokenAuthOptions} token
 * @returns {Pick<TestRegistry, 'tokenAuth' | 'username' | 'password'>}
 */
function tokenLogin(token) {
  const { username, password } = token;
  return { tokenAuth: token, ...(username !== undefined ? { username, password: password ?? '' } : {}) };
}

/**
 * @param {string} configFile
 * @returns {RegistryProcess}
 */
function spawnRegistry(configFile) {
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
  const keep = (/** @type {Buffer} */ chunk) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_CAP);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let alive = true;
  /** @type {Promise<void>} */
  const exited = new Promise((resolve) => {
    const done = () => {
      alive = false;
      running.delete(child);
      resolve();
    };
    child.once('error', (err) => {
      keep(Buffer.from(`spawn failed: ${err.message}\n`));
      done();
    });
    child.once('exit', done);
  });
  return {
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

/**
 * @param {string} url
 * @param {RegistryProcess} proc
 * @param {string} [caFile]
 */
async function waitReady(url, proc, caFile) {
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
        last = /** @type {Error} */ (err).message;
      }
      await sleep(50);
    }
    throw new Error(`docker-registry at ${url} not ready after ${READY_TIMEOUT_MS} ms (${last}):\n${proc.output()}`);
  } finally {
    await dispatcher.close();
  }
}

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/**
 * The test PKI: the run's from global setup if there is one, else one of this process's own (made once).
 * @example
 *   const { caFile, certFile, keyFile } = await testPki();
 * @returns {Promise<TestPki>}
 */
export function testPki() {
  return (pki ??= runPki());
}

/** @returns {Promise<TestPki>} */
async function runPki() {
  const shared = process.env[PKI_ENV];
  if (shared && existsSync(pkiPaths(shared).keyFile)) return pkiPaths(shared);
  return makeTestPki((await makeTempDir('pki')).path);
}

/**
 * @param {string} dir
 * @returns {TestPki}
 */
function pkiPaths(dir) {
  const certDir = join(dir, 'certs');
  return { caFile: join(certDir, 'ca.crt'), certDir, certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

/**
 * Make a CA and a server certificate for IP:127.0.0.1, DNS:localhost and DNS:registry.airlock.test
 * (a name only the test proxy resolves; EC P-256, valid 7 days)
 * in the existing directory `dir`.
 * @param {string} dir
 * @returns {Promise<TestPki>}
 */
export async function makeTestPki(dir) {
  const paths = pkiPaths(dir);
  const { caFile, certFile, keyFile } = paths;
  await mkdir(paths.certDir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const csr = join(dir, 'server.csr');
  const ext = join(dir, 'server.ext');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '7',
    '-subj',
    '/CN=airlock test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await openssl(['req', ...ec, '-keyout', join(dir, 'server.key.tmp'), '-out', csr, '-subj', '/CN=127.0.0.1']);
  await writeFile(
    ext,
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:registry.airlock.test',
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', '2', '-days', '7', '-extfile', ext, '-out', certFile]);
  // The server key appears last: its presence says the directory is complete.
  await rename(join(dir, 'server.key.tmp'), keyFile);
  return paths;
}

/** @param {string[]} args */
async function openssl(args) {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = /** @type {Error & { stderr?: string }} */ (err);
    throw new Error(`openssl ${args[0]} failed: ${e.stderr || e.message}`);
  }
}
