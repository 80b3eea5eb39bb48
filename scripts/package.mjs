/**
 * `npm run package`: build airlock as one executable file, release/airlock-VERSION-linux-ARCH, for
 * the side of the gap that has no Node, npm, compiler or network. Run after `npm run build`.
 *
 * It is a Node single executable application (SEA): a copy of the node binary running this script
 * with airlock injected into it. esbuild bundles dist/sea/main.js and everything it imports into the
 * one CommonJS script a SEA runs; zstd-napi's native addon (compiled by `npm ci` on this machine)
 * goes in as an asset with its sha256, and src/sea/native-addon.ts loads it at start. postject
 * injects the SEA blob. The executable needs what node itself needs (glibc, libstdc++), nothing else,
 * and a glibc at least as new as the addon was linked against (built on glibc 2.34 or later: 2.34).
 * Like every build step it reads only local files: no network.
 *
 * Options: --out DIR (default release/). By default the executable is for this machine: this node,
 * the addon `npm ci` compiled here. For another architecture (README: arm64 from x86-64), give
 * --node, the same Node version's binary for it, and --addon, zstd-napi's binding.node compiled for
 * it; the architecture is read from the node binary. Such a file cannot be started here, so the
 * check that it runs is left to the target (or qemu-user), and it carries no V8 code cache (that is
 * made by this node, for this architecture).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The marker Node's SEA support looks for in its own binary (Node's documentation names it). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const ADDON_ASSET = 'zstd-napi.node';

function fail(message) {
  process.stderr.write(`package: ${message}\n`);
  process.exit(1);
}

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** ELF e_machine values of the architectures Node publishes Linux builds for. */
const ELF_MACHINES = new Map([
  [0x3e, 'x64'],
  [0xb7, 'arm64'],
]);

/** The architecture of an ELF executable or shared object, by its header. */
function elfArch(path) {
  const head = readFileSync(path).subarray(0, 20);
  if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) fail(`${path} is not an ELF file`);
  const arch = ELF_MACHINES.get(head.readUInt16LE(18));
  if (arch === undefined) fail(`${path}: unsupported architecture (ELF machine ${head.readUInt16LE(18)})`);
  return arch;
}

if (process.platform !== 'linux') fail('only Linux executables are made (the addon asset and the ELF checks are Linux-specific)');
const { values } = parseArgs({ options: { out: { type: 'string' }, node: { type: 'string' }, addon: { type: 'string' } } });
if ((values.node === undefined) !== (values.addon === undefined)) fail('--node and --addon go together (both for the target architecture)');
const outDir = resolve(values.out ?? join(ROOT, 'release'));
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

const entry = join(ROOT, 'dist', 'sea', 'main.js');
if (!existsSync(entry)) fail(`${entry} is missing: run npm run build first (npm run package does)`);
const node = resolve(values.node ?? process.execPath);
if (!readFileSync(node).includes(SEA_FUSE)) fail(`${node} cannot make single executables (no SEA fuse): use an official Node.js 20 build`);

// zstd-napi/binding.js loads build/<configuration>/binding.node beside itself: the same file here.
const bindingJs = createRequire(join(ROOT, 'package.json')).resolve('zstd-napi/binding.js');
const addon = resolve(values.addon ?? join(dirname(bindingJs), 'build', process.config.target_defaults?.default_configuration ?? 'Release', 'binding.node'));
if (!existsSync(addon)) fail(`${addon} is missing: run npm ci (it compiles zstd-napi)`);
const arch = elfArch(node);
if (elfArch(addon) !== arch) fail(`${addon} is for ${elfArch(addon)}, ${node} for ${arch}`);
const native = arch === process.arch;
const name = `airlock-${version}-linux-${arch}`;
const output = join(outDir, name);

const work = join(outDir, `.package-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
try {
  const script = join(work, 'airlock.cjs');
  await build({
    entryPoints: [entry],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    plugins: [
      {
        // The one difference from the npm install: the addon comes from the SEA's assets.
        name: 'zstd-napi-binding-from-sea-asset',
        setup(b) {
          b.onResolve({ filter: /^zstd-napi\/binding\.js$/ }, () => ({ path: join(ROOT, 'dist', 'sea', 'zstd-napi-binding.js') }));
        },
      },
    ],
  });
  writeFileSync(join(work, `${ADDON_ASSET}.sha256`), `${sha256(addon)}\n`);
  const blob = join(work, 'sea-prep.blob');
  const config = {
    main: script,
    output: blob,
    // The warning would go to stderr on every run; the feature's state is a build concern.
    disableExperimentalSEAWarning: true,
    // V8's compiled code for the script, made here: start-up does not parse and compile ~2 MB again.
    useCodeCache: native,
    assets: { [ADDON_ASSET]: addon, [`${ADDON_ASSET}.sha256`]: join(work, `${ADDON_ASSET}.sha256`) },
  };
  writeFileSync(join(work, 'sea-config.json'), JSON.stringify(config, null, 2));
  // Made by this node: the blob holds the script and the assets, the same for every architecture
  // of this Node version once it carries no code cache.
  execFileSync(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: ['ignore', 'ignore', 'inherit'] });

  const temp = join(work, name);
  copyFileSync(node, temp);
  chmodSync(temp, 0o755);
  // postject (LIEF) warns "Can't find string offset for section name '.note...'" on node binaries
  // with many ELF notes; harmless, the check below runs the result.
  await inject(temp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });

  // It must run, and say what it is, before it takes the final name (where it can run here).
  // HOME: its addon cache goes into the work directory, not into the builder's home.
  const said = native
    ? execFileSync(temp, ['--version'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: work } }).trim()
    : `not started: built for ${arch} on ${process.arch}`;
  if (native && !said.startsWith(`airlock ${version} (commit `)) fail(`the executable says ${JSON.stringify(said)}, not airlock ${version}`);

  renameSync(temp, output);
  // sha256sum's format, the file's name without a directory: `sha256sum -c` beside the file checks it.
  writeFileSync(`${output}.sha256`, `${sha256(output)}  ${basename(output)}\n`);
  const mib = (statSync(output).size / 2 ** 20).toFixed(1);
  process.stdout.write(`${output} (${mib} MiB): ${said}\n${output}.sha256\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
