/**
 * The single executable (`npm run package`, scripts/package.mjs) where airlock has to run inside the
 * gap: an empty directory, `env -i PATH=/usr/bin:/bin`, no network (`unshare -n`), and no node: every
 * node binary this machine has is covered with /dev/null and the repository's node_modules with an
 * empty tmpfs (`unshare -m`, private mounts). There it verifies, inspects and imports a bundle the
 * normal build made from a real registry, and makes a key; on the connected side it makes a bundle
 * the normal build verifies.
 *
 * It needs root for the namespaces. Without root or unshare it is skipped, loudly; under CI (CI is
 * set, and CI runs as root) it fails instead.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { airlock, type CliResult } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry, type SeededImage } from '../support/seed.js';
import { skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { hasTool } from '../support/tools.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** Packaging copies and rewrites the ~100 MB node binary: ~25 s here, more on a busy machine. */
const PACKAGE_TIMEOUT_MS = 300_000;

/** Why the sandbox cannot be made here, or undefined when it can. */
function sandboxProblem(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root (the mount and network namespaces need it)';
  if (!hasTool('unshare')) return 'unshare (util-linux) is not installed';
  try {
    execFileSync('unshare', ['-m', '-n', 'true'], { stdio: 'pipe' });
  } catch (err) {
    return `unshare -m -n fails here: ${String((err as { stderr?: unknown }).stderr ?? err).trim()}`;
  }
  return undefined;
}

const problem = sandboxProblem();
if (problem !== undefined) {
  if (process.env.CI) throw new Error(`sea.test.ts cannot run under CI: ${problem}`);
  process.stderr.write(`\n[sea.test.ts] SKIPPED: the single executable is not tested: ${problem}\n\n`);
}

/** Every node binary reachable on a usual PATH or this one, by real path (a bind mount follows links). */
function nodeBinaries(): string[] {
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(':')];
  const found = new Set([realpathSync(process.execPath)]);
  for (const dir of dirs) if (dir.startsWith('/') && existsSync(join(dir, 'node'))) found.add(realpathSync(join(dir, 'node')));
  return [...found];
}

/**
 * Cover each of $HIDE_NODE with /dev/null and $HIDE_MODULES with an empty tmpfs, then run the
 * command with nothing of this environment but PATH and HOME (and TMPDIR when given).
 */
const SANDBOX = `set -e
for n in $HIDE_NODE; do mount --bind /dev/null "$n"; done
mount -t tmpfs -o size=1m,mode=0755 airlock-hidden "$HIDE_MODULES"
cd "$GAP_WORK"
exec env -i PATH=/usr/bin:/bin HOME="$GAP_HOME" \${GAP_TMPDIR:+TMPDIR="$GAP_TMPDIR"} "$@"
`;

let tmp: TempDir;
let reg: TestRegistry;
let seeded: Map<string, SeededImage>;
let exe: string;
let gap: { bin: string; media: string; work: string; home: string };
let connectedImages: Array<{ name: string; digest: string }>;
const IMAGES = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.5.0'];

interface GapOptions {
  /** Keep the network (the connected side); default: none. */
  network?: boolean;
  home?: string;
  tmpdir?: string;
}

/** Run `args` in the sandbox: the executable by default, or any command when it starts with `sh`. */
function inGap(args: string[], opts: GapOptions = {}): Promise<CliResult> {
  const command = args[0] === 'sh' ? args : [exe, ...args];
  return new Promise((resolve) => {
    execFile(
      'unshare',
      [...(opts.network ? ['-m'] : ['-m', '-n']), 'sh', '-c', SANDBOX, 'sh', ...command],
      {
        env: {
          PATH: process.env.PATH,
          HIDE_NODE: nodeBinaries().join(' '),
          HIDE_MODULES: realpathSync(join(ROOT, 'node_modules')),
          GAP_WORK: gap.work,
          GAP_HOME: opts.home ?? gap.home,
          GAP_TMPDIR: opts.tmpdir ?? '',
        },
        timeout: 120_000,
        maxBuffer: 64 << 20,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe.skipIf(problem !== undefined)('the single executable, inside the gap', () => {
  beforeAll(async () => {
    tmp = await makeTempDir('sea');
    const [packaged] = await Promise.all([
      run(process.execPath, [join(ROOT, 'scripts', 'package.mjs'), '--out', join(tmp.path, 'release')], { timeout: PACKAGE_TIMEOUT_MS }),
      (async () => {
        const corpus = await writeCorpus(join(tmp.path, 'upstream'));
        reg = await startRegistry();
        seeded = await seedRegistry(reg, corpus.dir, IMAGES);
      })(),
    ]);
    expect(packaged.stdout).toContain(`airlock-${VERSION}-linux-${process.arch}`);

    // The connected side, with the normal build.
    const connected = join(tmp.path, 'connected');
    await mkdir(connected);
    expect((await airlock(['key', 'generate', '--out', join(connected, 'signer')])).code).toBe(0);
    const refs = IMAGES.map((name) => seeded.get(name)!.ref);
    const created = await airlock([
      'bundle',
      'create',
      ...refs,
      '-o',
      join(connected, 'mirror.tar.zst'),
      '--sign-key',
      join(connected, 'signer.key'),
      '--plain-http',
      '-q',
    ]);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const inspected = await airlock(['bundle', 'inspect', '--json', join(connected, 'mirror.tar.zst')]);
    connectedImages = (JSON.parse(inspected.stdout) as { images: Array<{ name: string; digest: string }> }).images;

    // What crosses the gap: the executable, its checksum, the bundle, its checksum, the public key.
    gap = {
      bin: join(tmp.path, 'gap', 'bin'),
      media: join(tmp.path, 'gap', 'media'),
      work: join(tmp.path, 'gap', 'work'),
      home: join(tmp.path, 'gap', 'home'),
    };
    for (const dir of Object.values(gap)) await mkdir(dir, { recursive: true });
    const name = `airlock-${VERSION}-linux-${process.arch}`;
    for (const file of [name, `${name}.sha256`]) await copyFile(join(tmp.path, 'release', file), join(gap.media, file));
    for (const file of ['mirror.tar.zst', 'mirror.tar.zst.sha256', 'signer.pub']) await copyFile(join(connected, file), join(gap.media, file));
    await run('sha256sum', ['-c', `${name}.sha256`], { cwd: gap.media });
    exe = join(gap.bin, 'airlock');
    await run('install', ['-m', '0755', join(gap.media, name), exe]);
  }, PACKAGE_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    await reg?.stop();
    await tmp?.remove();
  });

  it('has no node, no node_modules and no network to lean on', async () => {
    const node = await inGap(['sh', '-c', 'command -v node']);
    expect(node.code).not.toBe(0);
    expect(node.stdout).toBe('');
    const modules = await inGap(['sh', '-c', `ls -A ${realpathSync(join(ROOT, 'node_modules'))}`]);
    expect(modules).toMatchObject({ code: 0, stdout: '' });
    // The network namespace has a loopback of its own, down, and nothing else: the registry that
    // answers outside is unreachable inside.
    const interfaces = await inGap(['sh', '-c', "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);
    expect(interfaces.stdout.trim()).toBe('lo');
    expect((await airlock(['tags', `${reg.host}/library/busybox`, '--plain-http'])).code).toBe(0);
    expect((await inGap(['tags', `${reg.host}/library/busybox`, '--plain-http'])).code).not.toBe(0);
    expect((await inGap(['sh', '-c', 'pwd; ls -A; env'])).stdout.trim().split('\n').sort()).toEqual(
      [gap.work, `HOME=${gap.home}`, 'PATH=/usr/bin:/bin', `PWD=${gap.work}`].sort(),
    );
  });

  it('--version names the version and the commit, as the npm install does', async () => {
    const normal = await airlock(['--version']);
    expect(normal.stdout).toMatch(new RegExp(`^airlock ${VERSION.replace(/\./g, '\\.')} \\(commit [0-9a-f]{4,}(\\+dirty)?\\)\\n$`));
    expect(await inGap(['--version'])).toEqual({ code: 0, stdout: normal.stdout, stderr: '' });
    const json = await inGap(['--version', '--json']);
    expect(JSON.parse(json.stdout)).toEqual(JSON.parse((await airlock(['--version', '--json'])).stdout));
  });

  it('makes a key', async () => {
    const r = await inGap(['key', 'generate', '--out', 'gap']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await stat(join(gap.work, 'gap.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(gap.work, 'gap.pub'), 'utf8')).toMatch(/PUBLIC KEY/);
  });

  it('verifies the bundle the normal build made', async () => {
    const r = await inGap(['bundle', 'verify', '../media/mirror.tar.zst', '--trust', '../media/signer.pub']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('../media/mirror.tar.zst: OK');
    expect(r.stdout).toContain('mirror.tar.zst.sha256 matches');
  });

  it('inspects it, listing what the normal build lists', async () => {
    const r = await inGap(['bundle', 'inspect', '--json', '../media/mirror.tar.zst']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { images: unknown }).images).toEqual(connectedImages);
  });

  it('imports it into an OCI layout whose index names every image, and skopeo reads them', async () => {
    const r = await inGap(['bundle', 'import', '../media/mirror.tar.zst', '--to', 'oci:../imported', '--trust', '../media/signer.pub', '-q']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const layout = join(tmp.path, 'gap', 'imported');
    // The same bundle imported by the normal build: the same names for the same digests.
    const normalLayout = join(tmp.path, 'normal-imported');
    expect(
      (await airlock(['bundle', 'import', join(gap.media, 'mirror.tar.zst'), '--to', `oci:${normalLayout}`, '--trust', join(gap.media, 'signer.pub'), '-q']))
        .code,
    ).toBe(0);
    const named = async (dir: string): Promise<Array<[string | undefined, string]>> => {
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
        manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
      };
      return index.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'], m.digest]);
    };
    const imported = await named(layout);
    expect(imported).toEqual(await named(normalLayout));
    expect(imported.map(([, digest]) => digest).sort()).toEqual(connectedImages.map((i) => i.digest).sort());
    for (const [name, digest] of imported) {
      expect(name).toMatch(/(busybox:musl|etcd:v3\.5\.0)$/);
      if (hasTool('skopeo')) expect((await skopeoInspectRaw(`oci:${layout}:${name}`)).digest).toBe(digest);
    }
  });

  it('keeps its zstd addon in a private cache named by its sha256, and replaces a damaged copy', async () => {
    const cache = join(gap.home, '.cache', 'airlock');
    expect((await stat(cache)).mode & 0o777).toBe(0o700);
    const [file, ...others] = await readdir(cache);
    expect(others).toEqual([]);
    const hash = /^zstd-napi-([0-9a-f]{64})\.node$/.exec(file ?? '')?.[1];
    expect(hash).toBeDefined();
    expect(sha256(await readFile(join(cache, file!)))).toBe(hash);
    await writeFile(join(cache, file!), 'not a library');
    await chmod(join(cache, file!), 0o700);
    expect((await inGap(['--version'])).code).toBe(0);
    expect(sha256(await readFile(join(cache, file!)))).toBe(hash);
  });

  it('runs from a private temporary directory, and leaves it empty, when there is no usable home', async () => {
    const tmpdir = join(tmp.path, 'gap', 'tmp');
    await mkdir(tmpdir);
    const r = await inGap(['bundle', 'verify', '../media/mirror.tar.zst', '--trust', '../media/signer.pub'], { home: '/proc/version', tmpdir });
    expect(r.code).toBe(0);
    expect(readdirSync(tmpdir)).toEqual([]);
  });

  it('makes, on the connected side, a bundle the normal build verifies', async () => {
    const refs = IMAGES.map((name) => seeded.get(name)!.ref);
    const made = await inGap(
      ['bundle', 'create', ...refs, '-o', 'made-by-sea.tar.zst', '--sign-key', join(tmp.path, 'connected', 'signer.key'), '--plain-http', '-q'],
      { network: true },
    );
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    const bundle = join(gap.work, 'made-by-sea.tar.zst');
    const verified = await airlock(['bundle', 'verify', bundle, '--trust', join(gap.media, 'signer.pub')]);
    expect(verified.code).toBe(0);
    const inspected = await airlock(['bundle', 'inspect', '--json', bundle]);
    expect((JSON.parse(inspected.stdout) as { images: unknown }).images).toEqual(connectedImages);
  });
});
