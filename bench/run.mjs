/**
 * `npm run bench`: airlock against the skopeo pipeline, on a deterministic ~1 GiB corpus served by
 * real registries on 127.0.0.1. See bench/README.md.
 *
 * Environment: BENCH_SCALE (layer size factor, default 1), BENCH_ROUNDS (default 3), BENCH_TINY
 * (tiny image count, default 200 × scale within 20..200), BENCH_KEEP=1 (keep bench/work/run-*).
 * Exit status 1 when any measured command failed (the results are written first).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createArgv, importArgv, importUnavailable, verifyArgv } from './airlock.mjs';
import { createScript, dropSkopeoCache, importScript, scriptArgv, verifyScript } from './baseline.mjs';
import { ensureCorpus } from './corpus.mjs';
import { alternate, runTimed } from './measure.mjs';
import { startRegistry } from '../test/support/registry.js';
import { catalog, manifestDigest } from './registry.mjs';
import { summarize, writeReport } from './report.mjs';
import { seedRegistry } from './seed.mjs';
import { measureDelta } from './delta.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const WORK = join(HERE, 'work');
const RESULTS = join(HERE, 'results');
/** Targets from the issue: airlock's time as a fraction of the baseline's. */
const TARGETS = { create: 0.35, verify: 0.25, import: 0.55, tiny: 0.3 };

const log = (/** @type {string} */ msg) => process.stderr.write(`[bench] ${msg}\n`);

/** @param {string} name @param {number} fallback @param {(n: number) => boolean} ok */
function envNumber(name, fallback, ok) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!ok(n)) throw new Error(`${name}=${raw} is not valid`);
  return n;
}

async function main() {
  const scale = envNumber('BENCH_SCALE', 1, (n) => n > 0 && n <= 10);
  const rounds = envNumber('BENCH_ROUNDS', 3, (n) => Number.isInteger(n) && n >= 1);
  const tinyCount = envNumber('BENCH_TINY', Math.min(200, Math.max(20, Math.round(200 * scale))), (n) => Number.isInteger(n) && n >= 1);
  if (rounds < 3) log(`BENCH_ROUNDS=${rounds}: fewer than 3 rounds, medians mean little`);
  if (!existsSync(join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run bench` (it builds first)');

  const machine = machineInfo(scale, rounds, tinyCount);
  log(`scale ${scale}, ${rounds} rounds, ${tinyCount} tiny images, ${machine.nproc} cores`);
  const corpus = await ensureCorpus(WORK, scale, tinyCount, log);
  const runDir = join(WORK, `run-${process.pid}`);
  await rm(runDir, { recursive: true, force: true });
  await mkdir(runDir, { recursive: true });
  const source = await startRegistry({ dir: join(runDir, 'source') });
  try {
    const t = Date.now();
    await seedRegistry(source, corpus.dir, corpus.main, { skopeo: true });
    await seedRegistry(source, corpus.dir, corpus.tiny, { skopeo: false });
    log(`seeded ${source.host} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const importSkip = await importUnavailable(REPO);
    if (importSkip) log(importSkip);
    const bench = new Bench(runDir, source, rounds);
    const steps = [];

    const mainSet = await bench.createPair('create', corpus.main);
    steps.push({
      id: 'create',
      label: `create (${corpus.main.length} tags)`,
      target: TARGETS.create,
      bytes: corpus.mainBytes,
      result: mainSet.result,
      archives: await mainSet.sizes(),
    });
    steps.push({ id: 'verify', label: 'verify', target: TARGETS.verify, bytes: corpus.mainBytes, result: await bench.verifyPair(mainSet) });
    steps.push({
      id: 'import',
      label: 'import',
      target: TARGETS.import,
      bytes: corpus.mainBytes,
      result: await bench.importPair('import', mainSet, corpus.main, importSkip),
    });
    /** @type {Awaited<ReturnType<typeof measureDelta>> | { error: string } | undefined} */
    let delta;
    if (mainSet.ok.airlock) {
      try {
        const mainRefs = corpus.main.map((i) => `${source.host}/${i.repository}:${i.tag}`);
        delta = await measureDelta({ repo: REPO, dir: runDir, scale, source, fullArchive: mainSet.out.airlock, mainRefs, log });
      } catch (err) {
        delta = { error: String(/** @type {Error} */ (err).message) };
      }
    }

    const tinySet = await bench.createPair('tiny-create', corpus.tiny);
    const tiny = { target: TARGETS.tiny, bytes: corpus.tinyBytes, images: corpus.tiny.length };
    steps.push({ id: 'tiny-create', label: `create, ${corpus.tiny.length} small images`, ...tiny, result: tinySet.result, archives: await tinySet.sizes() });
    steps.push({
      id: 'tiny-import',
      label: `import, ${corpus.tiny.length} small images`,
      ...tiny,
      result: await bench.importPair('tiny-import', tinySet, corpus.tiny, importSkip),
    });

    const results = {
      machine,
      corpus: {
        dir: corpus.dir,
        cached: corpus.cached,
        tags: corpus.main.length,
        mainMiB: corpus.mainBytes / 2 ** 20,
        tinyImages: corpus.tiny.length,
        tinyKiB: corpus.tinyBytes / 1024,
      },
      notes: notes(corpus),
      steps: steps.map(summarize),
      ...(delta === undefined ? {} : { delta }),
    };
    await writeReport(RESULTS, results);
    log(`wrote ${RESULTS}/latest.json, latest.md, chart.svg`);
    process.stdout.write(await readFile(join(RESULTS, 'latest.md'), 'utf8'));
    const failed = results.steps.flatMap((s) => [s.airlock.error && `${s.label} (airlock)`, s.baseline.error && `${s.label} (baseline)`].filter(Boolean));
    if (delta !== undefined && 'error' in delta) failed.push('delta');
    if (failed.length) {
      log(`FAILED: ${failed.join(', ')}; see bench/results/latest.md`);
      process.exitCode = 1;
    }
  } finally {
    await source.stop();
    if (process.env.BENCH_KEEP !== '1') await rm(runDir, { recursive: true, force: true });
  }
}

/** The measured pairs; every run gets its own temp dir (TMPDIR), counted as extra disk. */
class Bench {
  /** @param {string} dir @param {import('../test/support/registry.js').TestRegistry} source @param {number} rounds */
  constructor(dir, source, rounds) {
    this.dir = dir;
    this.source = source;
    this.rounds = rounds;
    this.count = 0;
  }

  /** A fresh empty directory under the run dir. @param {string} name */
  async fresh(name) {
    const path = join(this.dir, name);
    await rm(path, { recursive: true, force: true });
    await mkdir(path, { recursive: true });
    return path;
  }

  /** @param {string} label @param {string[]} argv @param {string} tmp @param {string[]} disk */
  timed(label, argv, tmp, disk) {
    return runTimed(label, argv, { cwd: REPO, env: { TMPDIR: tmp }, disk: [tmp, ...disk], timeFile: join(this.dir, `time-${++this.count}.txt`) });
  }

  /**
   * Both creates; the archives of the last round stay for verify and import.
   * @param {string} step @param {import('./corpus.mjs').BenchImage[]} images
   */
  async createPair(step, images) {
    const out = { airlock: join(this.dir, `${step}-airlock`, 'bundle.tar.zst'), baseline: join(this.dir, `${step}-baseline`, 'bundle.tar.zst') };
    const refs = images.map((i) => `${this.source.host}/${i.repository}:${i.tag}`);
    const result = await alternate(
      step,
      this.rounds,
      {
        airlock: {
          run: async () => {
            const outDir = await this.fresh(`${step}-airlock`);
            const tmp = await this.fresh('tmp-airlock');
            return this.timed(`${step} airlock`, createArgv(REPO, out.airlock, refs), tmp, [outDir]);
          },
        },
        baseline: {
          run: async () => {
            const outDir = await this.fresh(`${step}-baseline`);
            const stage = join(this.dir, `${step}-stage`);
            await rm(stage, { recursive: true, force: true });
            const tmp = await this.fresh('tmp-baseline');
            await dropSkopeoCache();
            const script = createScript({ source: this.source.host, images, stage, out: out.baseline });
            return this.timed(`${step} baseline`, await scriptArgv(join(this.dir, `${step}-baseline.sh`), script), tmp, [outDir, stage]);
          },
          cleanup: () => rm(join(this.dir, `${step}-stage`), { recursive: true, force: true }),
        },
      },
      log,
    );
    const ok = { airlock: !result.airlock.error && result.airlock.samples.length > 0, baseline: !result.baseline.error && result.baseline.samples.length > 0 };
    const sizes = async () => ({
      ...(ok.airlock ? { airlock: (await stat(out.airlock)).size } : {}),
      ...(ok.baseline ? { baseline: (await stat(out.baseline)).size } : {}),
    });
    return { result, out, ok, sizes };
  }

  /** @param {Awaited<ReturnType<Bench['createPair']>>} set */
  verifyPair(set) {
    return alternate(
      'verify',
      this.rounds,
      {
        airlock: {
          ...(set.ok.airlock ? {} : { skip: 'airlock create failed: no archive to verify' }),
          run: async () => this.timed('verify airlock', verifyArgv(REPO, set.out.airlock), await this.fresh('tmp-airlock'), []),
        },
        baseline: {
          ...(set.ok.baseline ? {} : { skip: 'baseline create failed: no archive to verify' }),
          run: async () => {
            const dir = join(this.dir, 'verify-extract');
            await rm(dir, { recursive: true, force: true });
            const script = verifyScript({ archive: set.out.baseline, dir });
            return this.timed('verify baseline', await scriptArgv(join(this.dir, 'verify-baseline.sh'), script), await this.fresh('tmp-baseline'), [dir]);
          },
          cleanup: () => rm(join(this.dir, 'verify-extract'), { recursive: true, force: true }),
        },
      },
      log,
    );
  }

  /**
   * Each run imports into a fresh, empty target registry, checked afterwards (not timed): every tag
   * present, and for airlock with the digest it had at the source.
   * @param {string} step @param {Awaited<ReturnType<Bench['createPair']>>} set
   * @param {import('./corpus.mjs').BenchImage[]} images @param {string | undefined} importSkip
   */
  async importPair(step, set, images, importSkip) {
    /** @type {import('../test/support/registry.js').TestRegistry | undefined} */
    let target;
    const stopTarget = async () => {
      await target?.stop();
      target = undefined;
      await rm(join(this.dir, 'target'), { recursive: true, force: true });
    };
    const startTarget = async () => {
      await stopTarget();
      target = await startRegistry({ dir: join(this.dir, 'target') });
      return target;
    };
    /** @param {boolean} sameDigests */
    const check = async (sameDigests) => {
      for (const i of images) {
        const got = await manifestDigest(/** @type {any} */ (target).url, i.repository, i.tag);
        if (got === undefined)
          throw new Error(`${step}: ${i.repository}:${i.tag} is missing from the target, which holds ${await catalog(/** @type {any} */ (target).url)}`);
        if (sameDigests && got !== i.digest) throw new Error(`${step}: ${i.repository}:${i.tag} arrived as ${got}, wanted ${i.digest}`);
      }
    };
    const skipAirlock = importSkip ?? (set.ok.airlock ? undefined : 'airlock create failed: no archive to import');
    return alternate(
      step,
      this.rounds,
      {
        airlock: {
          ...(skipAirlock ? { skip: skipAirlock } : {}),
          prepare: async () => void (await startTarget()),
          run: async () => {
            const reg = /** @type {import('../test/support/registry.js').TestRegistry} */ (target);
            const sample = await this.timed(`${step} airlock`, importArgv(REPO, set.out.airlock, reg.host), await this.fresh('tmp-airlock'), []);
            await check(true);
            return sample;
          },
          cleanup: stopTarget,
        },
        baseline: {
          ...(set.ok.baseline ? {} : { skip: 'baseline create failed: no archive to import' }),
          prepare: async () => {
            await startTarget();
            await dropSkopeoCache();
          },
          run: async () => {
            const reg = /** @type {import('../test/support/registry.js').TestRegistry} */ (target);
            const dir = join(this.dir, `${step}-extract`);
            await rm(dir, { recursive: true, force: true });
            const script = importScript({ archive: set.out.baseline, dir, target: reg.host, images });
            const sample = await this.timed(
              `${step} baseline`,
              await scriptArgv(join(this.dir, `${step}-baseline.sh`), script),
              await this.fresh('tmp-baseline'),
              [dir],
            );
            await check(false); // skopeo converted Docker images to OCI: other digests
            return sample;
          },
          cleanup: async () => {
            await stopTarget();
            await rm(join(this.dir, `${step}-extract`), { recursive: true, force: true });
          },
        },
      },
      log,
    );
  }
}

/** @param {number} scale @param {number} rounds @param {number} tinyImages */
function machineInfo(scale, rounds, tinyImages) {
  const first = (/** @type {string[]} */ argv) => {
    try {
      return execFileSync(argv[0], argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
        .trim()
        .split('\n')[0];
    } catch (err) {
      throw new Error(`\`${argv.join(' ')}\` failed: is it installed? (${/** @type {Error} */ (err).message})`);
    }
  };
  let commit = 'unknown';
  try {
    commit = first(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD']);
    if (first(['git', '-C', REPO, 'status', '--porcelain', '--untracked-files=no']) !== '') commit += '+dirty';
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    scale,
    rounds,
    tinyImages,
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    skopeo: first(['skopeo', '--version']),
    zstd: `zstd ${/v[0-9.]+/.exec(first(['zstd', '--version']))?.[0] ?? '?'}`,
    registry: first(['docker-registry', '--version']),
    commit,
  };
}

/** @param {import('./corpus.mjs').BenchCorpus} corpus */
function notes(corpus) {
  return [
    `Corpus: ${corpus.main.length} tags, ${(corpus.mainBytes / 2 ** 20).toFixed(1)} MiB of unique blobs; ${corpus.tiny.length} small images, ${(corpus.tinyBytes / 1024).toFixed(0)} KiB. Layout ${corpus.cached ? 'reused from the cache' : 'generated in this run'}.`,
    'Page cache: not dropped (we cannot do it reliably here). Corpus, registry storage and archives were just written or read, so both sides read from a warm cache; pairs alternate A B A B so that neither side is favoured.',
    "skopeo's blob-info cache is deleted before every baseline run, and every import (both sides) goes into a fresh, empty target registry.",
    'Peak RSS is `/usr/bin/time -v` "Maximum resident set size": for the baseline scripts the largest single process (skopeo, tar or zstd), not the sum of concurrent ones.',
    "Extra disk: peak allocated size, sampled every 250 ms and at exit, of the run's TMPDIR plus outputs (create), staging layout (baseline create) and extraction directory (baseline verify/import). Registry storage is not counted.",
    'The baseline converts the Docker v2s2 images to OCI (skopeo cannot keep them in an oci: layout), so its archive holds different manifests for those; airlock keeps every digest (checked after import).',
    'Archive size within 1%: airlock archive ≤ 1.01 × baseline archive.',
    'Small-image steps: the ratio of totals equals the ratio of per-image times; per-image ms are shown in the MB/s column.',
  ];
}

main().catch((err) => {
  log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
