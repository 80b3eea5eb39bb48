/**
 * How large a bundle's seek table and index may be, from its signed manifest: one entry per signed
 * file and one frame per GiB of each (docs/FORMAT.md section 3.1). The tail of an archive is not
 * signed; bounding it by what is lets a reader refuse a table of a million frames or an index of a
 * million entries before it allocates anything for them.
 */
import { MAX_FRAME_CONTENT } from './format.js';
import type { BundleManifest } from './manifest.js';
import { MAX_BUNDLE_JSON_BYTES, MAX_SIGNATURE_BYTES } from './read-head.js';
import { tarEntrySize } from './tar-entry.js';

/** Caps on the tail of one archive (see {@link archiveLimits}). */
export interface ArchiveLimits {
  /** Most index entries. */
  entries: number;
  /** Most seek-table frames, the tar end frame and the index frame included. */
  frames: number;
}

/**
 * Bytes one index entry may take: 512. An entry airlock writes is about 200 (a 77-character blob
 * path and five numbers), so this leaves room for any formatting and is still linear.
 */
export const INDEX_BYTES_PER_ENTRY = 512;

const framesFor = (size: number): number => Math.ceil(tarEntrySize(size) / MAX_FRAME_CONTENT);

/**
 * Entries and frames allowed beyond the signed ones: 64. The bound is there to stop allocation,
 * not to judge: a few extra entries (unlisted, duplicated, split) still reach the checks that say
 * precisely what is wrong with them, while a million are refused by count.
 */
const SLACK = 64;

/** The limits for an archive that carries exactly what `manifest` lists. */
export function archiveLimits(manifest: BundleManifest): ArchiveLimits {
  const sizes = [
    MAX_BUNDLE_JSON_BYTES,
    MAX_SIGNATURE_BYTES,
    manifest.layout['oci-layout'].size,
    manifest.layout['index.json'].size,
    ...manifest.blobs.map((b) => b.size),
  ];
  let frames = 2 + SLACK; // the tar end frame and the index frame
  for (const size of sizes) frames += framesFor(size);
  return { entries: sizes.length + SLACK, frames };
}
