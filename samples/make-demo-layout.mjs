#!/usr/bin/env node
/**
 * Write the offline demo's OCI image layout: `node samples/make-demo-layout.mjs OUTDIR`.
 *
 * The images (busybox:musl and etcd v3.3.0, v3.4.1, v3.5.0) are generated locally by `corpus.mjs`,
 * so the README's demo needs no network and gives the same digests on every machine.
 */
import { demoSpec, writeCorpus } from './corpus.mjs';

const outDir = process.argv[2];
if (!outDir || process.argv.length > 3) {
  process.stderr.write('usage: node samples/make-demo-layout.mjs OUTDIR\n');
  process.exit(2);
}
const corpus = await writeCorpus(outDir, demoSpec());
for (const image of corpus.images) process.stdout.write(`${image.digest}  ${image.name}\n`);
process.stdout.write(`wrote ${corpus.images.length} images, ${corpus.blobs.size} blobs to ${outDir}\n`);
