/**
 * The skopeo pipeline airlock is measured against, as bash scripts timed whole under
 * `/usr/bin/time -v` (one script per measured run, `set -euo pipefail`: any failing command fails the
 * run). The scripts are written beside the run's files so they can be read and rerun by hand.
 *
 * - create: `skopeo copy --all` of every image from the registry into one `oci:` layout, then
 *   `tar -I 'zstd -T0 -3' -cf OUT -C STAGE .`
 * - verify: `zstd -dc OUT | tar -x -C DIR`, then `sha256sum` of every blob, compared to its name.
 * - import: `tar -I zstd -xf OUT -C DIR`, then `skopeo copy --all` of every image into the target.
 *
 * skopeo converts Docker v2s2 images to OCI on the way into `oci:`, so the baseline
 * archive holds OCI images only and its import copies every image as OCI.
 */
import { rm, writeFile } from 'node:fs/promises';

/** skopeo's blob-info cache (root): with it skopeo mounts blobs it has seen instead of copying. */
export const SKOPEO_BLOB_CACHE = '/var/lib/containers/cache/blob-info-cache-v1.boltdb';

/** Forget what skopeo has seen; called before every baseline run (not timed). */
export async function dropSkopeoCache() {
  await rm(SKOPEO_BLOB_CACHE, { force: true });
}

/** @param {string} s */
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
const HEADER = ['#!/bin/bash', 'set -euo pipefail'];

/**
 * @param {{ source: string, images: import('./corpus.mjs').BenchImage[], stage: string, out: string }} o
 * @returns {string}
 */
export function createScript(o) {
  return [
    ...HEADER,
    ...o.images.map(
      (i) => `skopeo copy -q --all --src-tls-verify=false ${q(`docker://${o.source}/${i.repository}:${i.tag}`)} ${q(`oci:${o.stage}:${i.name}`)}`,
    ),
    `tar -I 'zstd -T0 -3' -cf ${q(o.out)} -C ${q(o.stage)} .`,
    '',
  ].join('\n');
}

/**
 * @param {{ archive: string, dir: string }} o
 * @returns {string}
 */
export function verifyScript(o) {
  return [
    ...HEADER,
    `mkdir -p ${q(o.dir)}`,
    `zstd -q -dc ${q(o.archive)} | tar -x -C ${q(o.dir)}`,
    `cd ${q(`${o.dir}/blobs/sha256`)}`,
    // Every blob's sha256 must equal its file name.
    `find . -type f -printf '%P\\0' | xargs -0 sha256sum | awk '$1 != $2 { print "digest mismatch: " $2; bad = 1 } END { exit bad }'`,
    '',
  ].join('\n');
}

/**
 * @param {{ archive: string, dir: string, target: string, images: import('./corpus.mjs').BenchImage[] }} o
 * @returns {string}
 */
export function importScript(o) {
  return [
    ...HEADER,
    `mkdir -p ${q(o.dir)}`,
    `tar -I zstd -xf ${q(o.archive)} -C ${q(o.dir)}`,
    ...o.images.map((i) => `skopeo copy -q --all --dest-tls-verify=false ${q(`oci:${o.dir}:${i.name}`)} ${q(`docker://${o.target}/${i.repository}:${i.tag}`)}`),
    '',
  ].join('\n');
}

/**
 * Write a script to `file` and return the argv that runs it.
 * @param {string} file @param {string} text
 */
export async function scriptArgv(file, text) {
  await writeFile(file, text, { mode: 0o755 });
  return ['bash', file];
}
