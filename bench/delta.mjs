/**
 * The delta measurement (issue: incremental bundles): the benchmark set with one layer changed.
 *
 * Next week's set is this week's plus `app-a:v3`, whose app layer is new and whose base layer is
 * the one every other image shares. It is generated into a small layout of its own (the generator
 * is deterministic, so the shared base layer has the same digest as in the main corpus), pushed to
 * the source registry, and bundled twice: as a full bundle and as a delta `--since` the full bundle
 * of the main set. Reported: both archive sizes, the new content, and their ratio.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeCorpus } from '../samples/corpus.mjs';
import { benchSpec, CORPUS_HOST } from './corpus.mjs';
import { spawnCollect } from './measure.mjs';
import { seedRegistry } from './seed.mjs';

/** The changed image: the first app image's spec with a new app layer of the same size. */
function changedImageSpec(/** @type {number} */ scale) {
  const spec = benchSpec(scale, 0);
  const appA = /** @type {any} */ (spec.images?.[0]);
  const [baseLayer, appLayer] = appA.layers;
  return {
    seed: spec.seed,
    images: [{ name: `${CORPUS_HOST}/bench/app-a:v3`, layers: [baseLayer, { ...appLayer, id: 'app-a-3' }] }],
  };
}

/**
 * @param {{ repo: string, dir: string, scale: number, source: import('../test/support/registry.js').TestRegistry,
 *   fullArchive: string, mainRefs: string[], log: (m: string) => void }} o
 */
export async function measureDelta(o) {
  const corpus = await writeCorpus(join(o.dir, 'delta-layout'), changedImageSpec(o.scale));
  const image = corpus.images[0];
  const repository = image.repository.slice(image.repository.indexOf('/') + 1);
  await seedRegistry(o.source, corpus.dir, [{ name: image.name, repository, tag: image.tag, digest: image.digest, mediaType: image.mediaType }], {
    skopeo: true,
  });
  const refs = [...o.mainRefs, `${o.source.host}/${repository}:${image.tag}`];
  const cli = [`${o.repo}/bin/airlock`, '-q', 'bundle', 'create', '--plain-http', '--unsigned'];
  const full = join(o.dir, 'next-full.tar.zst');
  const delta = join(o.dir, 'next-delta.tar.zst');
  for (const [out, extra] of /** @type {Array<[string, string[]]>} */ ([
    [full, []],
    [delta, ['--since', o.fullArchive]],
  ])) {
    const started = Date.now();
    const { code, output } = await spawnCollect([...cli, '-o', out, ...extra, ...refs]);
    if (code !== 0) throw new Error(`delta step: ${[...cli, ...extra].join(' ')} exited ${code}: ${output.trim()}`);
    o.log(`delta: ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  const { readHead } = await import(pathToFileURL(join(o.repo, 'dist/bundle/read-head.js')).href);
  const totals = JSON.parse((await readHead(delta)).bundleJson.toString('utf8')).totals;
  const sizes = { full: (await stat(full)).size, delta: (await stat(delta)).size };
  return {
    change: `added ${image.name.replace(`${CORPUS_HOST}/`, '')}: one new layer on the shared base layer`,
    fullArchiveBytes: sizes.full,
    deltaArchiveBytes: sizes.delta,
    deltaCarriedBytes: totals.bytes,
    deltaExternalBytes: totals.externalBytes,
    ratio: sizes.delta / sizes.full,
  };
}
