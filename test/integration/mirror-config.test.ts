/**
 * The configuration `mirror-config` writes, used by the real clients against a real mirror:
 * containerd (Debian's 1.6: its own daemon with root, state and socket in a temp directory, the CRI
 * plugin off, `ctr --hosts-dir`), podman (vfs storage, `CONTAINERS_REGISTRIES_CONF`) and skopeo
 * (`--registries-conf`). Each pulls upstream names (`docker.io/library/busybox:musl`, quay.io by tag
 * and by digest) and the mirror's recording proxy shows the mirror's paths asked. Every client runs
 * with HTTP(S)_PROXY pointing at a trap that records any connection: a request to an upstream would
 * land there instead of leaving the machine, and none may.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus, type Corpus } from '../../samples/corpus.mjs';
import { airlock } from '../support/cli.js';
import { listenLocal, type Listening } from '../support/listen.js';
import { startRecordingProxy, type RecordingProxy } from '../support/recording-proxy.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.5.0'];
/** A client command normally takes well under a second here. */
const CLIENT_TIMEOUT_MS = 30_000;

let work: TempDir;
let corpus: Corpus;
let bundle: string;
let plain: TestRegistry;
let mirror: RecordingProxy;
let trap: Trap;
let containerd: Containerd;
/** Output of `bundle import --mirror-config` into the plain-HTTP mirror. */
let cfg: string;

function digestOf(name: string): string {
  const image = corpus.images.find((i) => i.name === name);
  if (image === undefined) throw new Error(`${name} is not in the corpus`);
  return image.digest;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a client with the trap as its proxy (the mirror on 127.0.0.1 is reached directly). */
function client(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const proxy = `http://${trap.host}`;
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      {
        timeout: CLIENT_TIMEOUT_MS,
        env: {
          ...process.env,
          HTTPS_PROXY: proxy,
          HTTP_PROXY: proxy,
          https_proxy: proxy,
          http_proxy: proxy,
          NO_PROXY: '127.0.0.1',
          no_proxy: '127.0.0.1',
          ...env,
        },
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A listener that records every connection and closes it: where an upstream request would go. */
interface Trap extends Listening {
  readonly seen: string[];
}

async function startTrap(): Promise<Trap> {
  const seen: string[] = [];
  const listening = await listenLocal(
    createServer((socket: Socket) => {
      socket.once('data', (chunk: Buffer) => {
        seen.push(chunk.toString('latin1').split('\r\n')[0] ?? '');
        socket.destroy();
      });
    }),
  );
  return { ...listening, seen };
}

interface Containerd {
  address: string;
  stop(): Promise<void>;
}

/** containerd 1.6 with everything under `dir`: no CRI, the `opt` plugin redirected, its own socket. */
async function startContainerd(dir: string): Promise<Containerd> {
  const address = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  await mkdir(dir);
  await writeFile(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(address)}`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(join(dir, 'opt'))}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'containerd', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-8192)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    if (await Promise.race([exited.then(() => false), sleep(5_000).then(() => true)])) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (existsSync(address) && (await client('ctr', ['--address', address, 'version'])).code === 0) return { address, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`containerd did not start:\n${log}`);
    }
    await sleep(100);
  }
}

function ctr(args: string[]): Promise<Run> {
  return client('ctr', ['--address', containerd.address, ...args]);
}

function pull(hostsDir: string, ref: string): Promise<Run> {
  return ctr(['--debug', 'images', 'pull', '--snapshotter', 'native', '--hosts-dir', hostsDir, ref]);
}

/** Paths the mirror was asked for, from the recording proxy. */
function asked(): string[] {
  return mirror.requests.map((r) => `${r.method} ${r.path.replace(/\?.*$/, '')}`);
}

beforeAll(async () => {
  if (!existsSync(join(process.cwd(), 'dist', 'cli', 'commands', 'mirror-config.js'))) throw new Error('run npm run build first: these tests run bin/airlock');
  work = await makeTempDir('mirror');
  bundle = join(work.path, 'images.tar.zst');
  [corpus, plain, trap] = await Promise.all([writeCorpus(join(work.path, 'corpus')), startRegistry(), startTrap()]);
  mirror = await startRecordingProxy(plain.host);
  const created = await airlock(['bundle', 'create', '-q', '--unsigned', '-o', bundle, ...IMAGES.map((n) => `oci:${corpus.dir}:${n}`)]);
  expect(created.code, created.stderr).toBe(0);
  cfg = join(work.path, 'cfg');
  const imported = await airlock([
    'bundle',
    'import',
    bundle,
    '--allow-unsigned',
    '--to',
    `${mirror.host}/mirror`,
    '--plain-http',
    '--mirror-config',
    cfg,
    '--json',
  ]);
  expect(imported.code, imported.stderr).toBe(0);
  const written = (JSON.parse(imported.stdout) as { mirrorConfig: { upstreams: string[] } }).mirrorConfig;
  expect(written.upstreams).toEqual(['docker.io', 'quay.io']);
  containerd = await startContainerd(join(work.path, 'ctd'));
});

afterAll(async () => {
  await containerd?.stop();
  await Promise.all([mirror?.stop(), trap?.close()]);
  await plain?.stop();
  await work?.remove();
});

describe('containerd 1.6 through the generated hosts.toml', () => {
  it('pulls docker.io and quay.io names (tag and digest) from /v2/mirror/<upstream host>/…', async () => {
    const hostsDir = join(cfg, 'containerd', 'certs.d');
    mirror.requests.length = 0;
    for (const ref of ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', `quay.io/coreos/etcd@${digestOf('quay.io/coreos/etcd:v3.5.0')}`]) {
      const run = await pull(hostsDir, ref);
      expect(run.code, `${ref}: ${run.stderr}`).toBe(0);
    }
    expect(asked()).toContain(`HEAD /v2/mirror/docker.io/library/busybox/manifests/musl`);
    expect(asked()).toContain(`HEAD /v2/mirror/quay.io/coreos/etcd/manifests/v3.3.0`);
    expect(asked()).toContain(`HEAD /v2/mirror/quay.io/coreos/etcd/manifests/${digestOf('quay.io/coreos/etcd:v3.5.0')}`);
    expect(asked().filter((p) => !p.includes('/v2/mirror/'))).toEqual([]);
    const listed = await ctr(['images', 'ls']);
    expect(listed.stdout).toMatch(new RegExp(`docker\\.io/library/busybox:musl\\s+\\S+\\s+${digestOf('docker.io/library/busybox:musl')}`));
    expect(trap.seen).toEqual([]);
  });

  it('--strip-host: the mirror path has no host component (/v2/<prefix>/library/busybox)', async () => {
    const imported = await airlock(['bundle', 'import', bundle, '--allow-unsigned', '--to', `${mirror.host}/flat`, '--plain-http', '--strip-host', '-q']);
    expect(imported.code, imported.stderr).toBe(0);
    const out = join(work.path, 'cfg-flat');
    const made = await airlock(['mirror-config', bundle, '--to', `${mirror.host}/flat`, '--plain-http', '--strip-host', '-o', out]);
    expect(made.code, made.stderr).toBe(0);
    await ctr(['images', 'rm', 'docker.io/library/busybox:musl']);
    mirror.requests.length = 0;
    const run = await pull(join(out, 'containerd', 'certs.d'), 'docker.io/library/busybox:musl');
    expect(run.code, run.stderr).toBe(0);
    expect(asked()).toContain('HEAD /v2/flat/library/busybox/manifests/musl');
    expect(trap.seen).toEqual([]);
  });

  it('a missing image fails as not found, asking only the mirror', async () => {
    mirror.requests.length = 0;
    const started = Date.now();
    const run = await pull(join(cfg, 'containerd', 'certs.d'), 'quay.io/coreos/etcd:v9.9.9');
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/quay\.io\/coreos\/etcd:v9\.9\.9: not found/);
    expect(run.stderr).not.toMatch(/host="?quay\.io/);
    expect(asked()).toEqual(['HEAD /v2/mirror/quay.io/coreos/etcd/manifests/v9.9.9', 'HEAD /v2/mirror/quay.io/coreos/etcd/manifests/v9.9.9']);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(trap.seen).toEqual([]);
  });

  it('the trap sees what would leave: --upstream-fallback, and a hosts.toml with only server (containerd 1.6 ignores it)', async () => {
    const fallback = join(work.path, 'cfg-fallback');
    const made = await airlock(['mirror-config', '--host', 'quay.io', '--to', `${mirror.host}/mirror`, '--plain-http', '--upstream-fallback', '-o', fallback]);
    expect(made.code, made.stderr).toBe(0);
    trap.seen.length = 0;
    const run = await pull(join(fallback, 'containerd', 'certs.d'), 'quay.io/coreos/etcd:v9.9.9');
    expect(run.code).not.toBe(0);
    expect(trap.seen).toEqual(['CONNECT quay.io:443 HTTP/1.1']);
    // What the generated file avoids: without a [host] table containerd 1.6 drops the file, server and all.
    const serverOnly = join(work.path, 'server-only');
    await mkdir(join(serverOnly, 'quay.io'), { recursive: true });
    await writeFile(join(serverOnly, 'quay.io', 'hosts.toml'), `server = "http://${mirror.host}/v2/mirror/quay.io"\noverride_path = true\n`);
    trap.seen.length = 0;
    mirror.requests.length = 0;
    const ignored = await pull(serverOnly, 'quay.io/coreos/etcd:v3.3.0');
    expect(ignored.code).not.toBe(0);
    expect(trap.seen).toEqual(['CONNECT quay.io:443 HTTP/1.1']);
    expect(asked()).toEqual([]);
    trap.seen.length = 0;
  });

  it('pulls from an HTTPS mirror with a private CA (ca = …), by tag and by digest', async () => {
    const tls = await startRegistry({ tls: true });
    try {
      const imported = await airlock(['bundle', 'import', bundle, '--allow-unsigned', '--to', `${tls.host}/tls`, '--ca-file', tls.caFile!, '-q']);
      expect(imported.code, imported.stderr).toBe(0);
      const out = join(work.path, 'cfg-tls');
      const made = await airlock(['mirror-config', bundle, '--to', `${tls.host}/tls`, '--ca-file', tls.caFile!, '-o', out, '--json']);
      expect(made.code, made.stderr).toBe(0);
      expect(await readFile(join(out, 'containerd', 'certs.d', 'quay.io', 'hosts.toml'), 'utf8')).toContain(`ca = ${JSON.stringify(tls.caFile)}`);
      await ctr(['images', 'rm', 'docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0']);
      for (const ref of ['docker.io/library/busybox:musl', `quay.io/coreos/etcd@${digestOf('quay.io/coreos/etcd:v3.3.0')}`]) {
        const run = await pull(join(out, 'containerd', 'certs.d'), ref);
        expect(run.code, `${ref}: ${run.stderr}`).toBe(0);
      }
      // The CA copy for containers is what podman and skopeo read from /etc/containers/certs.d/<mirror>/.
      const conf = join(out, 'containers', 'registries.conf.d', '50-airlock-mirror.conf');
      const certDir = join(out, 'containers', 'certs.d', tls.host);
      const inspected = await client('skopeo', ['--registries-conf', conf, 'inspect', '--raw', '--cert-dir', certDir, 'docker://quay.io/coreos/etcd:v3.3.0']);
      expect(inspected.code, inspected.stderr).toBe(0);
      expect(await client('skopeo', ['--registries-conf', conf, 'inspect', '--raw', 'docker://quay.io/coreos/etcd:v3.3.0'])).toMatchObject({
        stderr: expect.stringMatching(/certificate signed by unknown authority/),
      });
      expect(trap.seen).toEqual([]);
    } finally {
      await tls.stop();
    }
  });
});

describe('podman and skopeo through the generated registries.conf', () => {
  const conf = (): string => join(cfg, 'containers', 'registries.conf.d', '50-airlock-mirror.conf');
  const podman = (args: string[]): Promise<Run> => {
    const dir = join(work.path, 'podman');
    return client(
      'podman',
      [
        '--root',
        join(dir, 'root'),
        '--runroot',
        join(dir, 'run'),
        '--tmpdir',
        join(dir, 'tmp'),
        '--storage-driver',
        'vfs',
        '--cgroup-manager',
        'cgroupfs',
        '--events-backend',
        'file',
        ...args,
      ],
      { CONTAINERS_REGISTRIES_CONF: conf() },
    );
  };

  it('podman pulls docker.io and quay.io names (tag and digest) from the mirror', async () => {
    mirror.requests.length = 0;
    for (const ref of ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', `quay.io/coreos/etcd@${digestOf('quay.io/coreos/etcd:v3.5.0')}`]) {
      const run = await podman(['pull', '-q', ref]);
      expect(run.code, `${ref}: ${run.stderr}`).toBe(0);
    }
    expect(asked()).toContain('GET /v2/mirror/docker.io/library/busybox/manifests/musl');
    expect(asked()).toContain(`GET /v2/mirror/quay.io/coreos/etcd/manifests/${digestOf('quay.io/coreos/etcd:v3.5.0')}`);
    const digest = await podman(['image', 'inspect', '--format', '{{.Digest}}', 'docker.io/library/busybox:musl']);
    expect(digest.stdout.trim()).toBe(digestOf('docker.io/library/busybox:musl'));
    expect(trap.seen).toEqual([]);
  });

  it('with the upstream blocked a missing image fails at the mirror and nothing tries to leave', async () => {
    const run = await podman(['pull', 'quay.io/coreos/etcd:v9.9.9']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/manifest unknown/);
    expect(run.stderr).toMatch(/registry quay\.io is blocked/);
    expect(trap.seen).toEqual([]);
  });

  it('skopeo reads it with --registries-conf (it ignores CONTAINERS_REGISTRIES_CONF)', async () => {
    mirror.requests.length = 0;
    const run = await client('skopeo', ['--registries-conf', conf(), 'inspect', '--raw', 'docker://quay.io/coreos/etcd:v3.3.0']);
    expect(run.code, run.stderr).toBe(0);
    expect(asked()).toContain('GET /v2/mirror/quay.io/coreos/etcd/manifests/v3.3.0');
    const missing = await client('skopeo', ['--registries-conf', conf(), 'inspect', '--raw', 'docker://docker.io/library/busybox:nope']);
    expect(missing.stderr).toMatch(/registry docker\.io is blocked/);
    expect(trap.seen).toEqual([]);
  });

  it('--allow-upstream leaves the upstream unblocked: then the trap sees it tried', async () => {
    const open = join(work.path, 'cfg-open');
    const made = await airlock(['mirror-config', '--host', 'quay.io', '--to', `${mirror.host}/mirror`, '--plain-http', '--allow-upstream', '-o', open]);
    expect(made.code, made.stderr).toBe(0);
    const file = join(open, 'containers', 'registries.conf.d', '50-airlock-mirror.conf');
    const run = await client('skopeo', ['--registries-conf', file, 'inspect', '--raw', 'docker://quay.io/coreos/etcd:v9.9.9']);
    expect(run.code).not.toBe(0);
    expect(trap.seen).toContain('CONNECT quay.io:443 HTTP/1.1');
    trap.seen.length = 0;
  });
});
