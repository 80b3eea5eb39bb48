/**
 * The one place that turns a digest into a path inside an OCI image layout (image-spec
 * `image-layout.md`), as cacache's `content/path.js` is for its store.
 */
import { join } from 'node:path';
import { digestHex, type Digest } from '../digest/digest.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const INDEX_FILE = 'index.json';
export const BLOBS_DIR = join('blobs', 'sha256');
/** The exact `oci-layout` content we write: image-spec 1.0 layout version. */
export const OCI_LAYOUT_CONTENT = Buffer.from('{"imageLayoutVersion":"1.0.0"}');

/** Annotation that names an image in `index.json` (image-spec `annotations.md`). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';
/** containerd's annotation with the full image name; `ctr import` and nerdctl use it. */
export const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';

/** Relative path of a blob inside a layout: `blobs/sha256/<hex>`. */
export function blobPath(digest: Digest): string {
  return `blobs/sha256/${digestHex(digest)}`;
}

/** Absolute path of a blob under a layout directory. */
export function blobFile(dir: string, digest: Digest): string {
  return join(dir, BLOBS_DIR, digestHex(digest));
}
