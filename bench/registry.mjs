/**
 * Real registries for the benchmark: Debian's `docker-registry` (distribution 2.8.2) on a free
 * 127.0.0.1 port, plain HTTP, no auth, storage in a directory the caller names (so a "fresh" registry
 * is simply a new root directory). Same approach as `test/support/registry.ts`, in plain ESM so the
 * bench runs unbuilt.
 *
 * Each registry runs under `setpriv --pdeathsig KILL`: the kernel kills it when the bench dies for
 * any reason; `stop()` and an exit hook stop it earlier. Nothing survives the bench.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** The registry starts in well under a second; 15 s covers a loaded machine. */
const READY_TIMEOUT_MS = 15_000;
/** A port picked by binding :0 can be taken before the registry binds it: try a few. */
const PORT_ATTEMPTS = 5;
/** Keep the end of the registry's output for error messages, not all of it. */
const OUTPUT_CAP = 16 * 1024;

/** @type {Set<import('node:child_process').ChildProcess>} */
const running = new Set();
let exitHooked = false;

/**
 * @typedef {object} BenchRegistry
 * @property {string} host `127.0.0.1:PORT`, what goes into references.
 * @property {string} url `http://127.0.0.1:PORT`.
 * @property {string} root Storage root directory.
 * @property {() => Promise<void>} stop
 */

/**
 * Start a registry storing into `dir/storage` (config in `dir/config.yml`) and wait for `GET /v2/`.
 * @example
 *   const reg = await startRegistry('/work/main/bench/work/run/target-1');
 *   try { ... `${reg.host}/bench/app:v1` ... } finally { await reg.stop(); }
 * @param {string} dir
 * @returns {Promise<BenchRegistry>}
 */
export async function startRegistry(dir) {
  const root = join(dir, 'storage');
  await mkdir(root, { recursive: true });
  const configFile = join(dir, 'config.yml');
  for (let attempt = 1; ; attempt++) {
    const host = `127.0.0.1:${await freePort()}`;
    await writeFile(configFile, configYaml(host, root));
    const proc = spawnRegistry(configFile);
    const url = `http://${host}`;
    try {
      await waitReady(url, proc);
    } catch (err) {
      await proc.stop();
      if (attempt < PORT_ATTEMPTS && /address already in use/i.test(proc.output())) continue;
      throw err;
    }
    return { host, url, root, stop: () => proc.stop() };
  }
}

/** @param {string} host @param {string} root */
function configYaml(host, root) {
  return [
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
    '  secret: airlock-bench-secret',
    '',
  ].join('\n');
}

/** @param {string} configFile */
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

/** @param {string} url @param {{ isRunning(): boolean, output(): string }} proc */
async function waitReady(url, proc) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (!proc.isRunning()) throw new Error(`docker-registry exited before it was ready:\n${proc.output()}`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `GET /v2/ answered ${res.status}`;
    } catch (err) {
      last = /** @type {Error} */ (err).message;
    }
    await sleep(50);
  }
  throw new Error(`docker-registry at ${url} not ready after ${READY_TIMEOUT_MS} ms (${last}):\n${proc.output()}`);
}

/** @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Every manifest media type, so that the registry serves manifests as stored. */
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

/**
 * The digest the registry serves `repository:tag` under, or undefined when it has no such tag.
 * @param {string} url @param {string} repository @param {string} tag
 * @returns {Promise<string | undefined>}
 */
export async function manifestDigest(url, repository, tag) {
  const res = await fetch(`${url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`HEAD ${repository}:${tag} answered ${res.status}`);
  return res.headers.get('docker-content-digest') ?? undefined;
}

/**
 * The first repositories of the registry's catalog, for error messages.
 * @param {string} url
 * @returns {Promise<string>}
 */
export async function catalog(url) {
  const res = await fetch(`${url}/v2/_catalog?n=10`);
  const body = /** @type {{ repositories?: string[] }} */ (await res.json().catch(() => ({})));
  const repos = body.repositories ?? [];
  return repos.length ? `${repos.join(', ')}${res.headers.get('link') ? ', …' : ''}` : 'no repositories';
}
