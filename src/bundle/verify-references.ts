/**
 * The checks `bundle verify` makes after every entry has been hashed: is `index.json` the image
 * list the signed manifest describes, and does every manifest find everything it references?
 */
import type { BundleManifest } from './manifest.js';
import { REF_NAME_ANNOTATION } from '../layout/paths.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { parseManifest } from '../oci/manifest.js';
import { manifestReferences } from '../oci/walk.js';
import type { Problem } from './problems.js';
import { parseBundleName } from '../names/import-names.js';
import { checkNameCollisions } from '../names/name-claims.js';

/**
 * @param manifest the signed bundle manifest
 * @param indexJson the bytes of `index.json` (already checked against the manifest's digest)
 * @param manifests bytes of every manifest/index blob that matched its digest, by digest
 */
export function checkReferences(manifest: BundleManifest, indexJson: Buffer | undefined, manifests: Map<string, Buffer>): Problem[] {
  const problems: Problem[] = [];
  const carried = new Set<string>(manifest.blobs.map((b) => b.digest));
  const external = new Set<string>((manifest.external ?? []).map((b) => b.digest));
  const present = (d: string): boolean => carried.has(d) || external.has(d);
  /** The one size the signed manifest gives each digest (carried or external). */
  const sizes = new Map<string, number>([...(manifest.external ?? []), ...manifest.blobs].map((b) => [b.digest, b.size]));

  if (indexJson !== undefined) problems.push(...checkIndex(manifest, indexJson));
  problems.push(...checkNames(manifest));

  for (const image of manifest.images) {
    if (!carried.has(image.digest)) {
      problems.push({ code: 'INTEGRITY', subject: image.name, message: `image ${image.name}: its manifest ${image.digest} is not in the bundle` });
    }
  }
  for (const blob of manifest.blobs) {
    if (!isManifestMediaType(blob.mediaType)) continue;
    const bytes = manifests.get(blob.digest);
    if (bytes === undefined) continue; // missing or damaged: already reported
    let parsed;
    try {
      parsed = parseManifest(bytes, blob.mediaType, `manifest ${blob.digest}`);
    } catch (err) {
      problems.push({ code: 'INTEGRITY', subject: blob.digest, message: (err as Error).message });
      continue;
    }
    // One level per manifest, in bundle order: every carried manifest is checked, whether or not
    // an image reaches it, and each problem is reported where it is.
    for (const ref of manifestReferences(parsed)) {
      if (!present(ref.digest)) {
        problems.push({
          code: 'INTEGRITY',
          subject: ref.digest,
          message: `manifest ${blob.digest} references ${ref.digest}, which the bundle neither carries nor lists as delivered earlier`,
        });
      } else if (sizes.get(ref.digest) !== ref.size) {
        // Import pushes the blob at the signed size and then the manifest: a manifest that gives
        // its blob another size can never be imported.
        problems.push({
          code: 'INTEGRITY',
          subject: ref.digest,
          message: `manifest ${blob.digest} gives ${ref.digest} the size ${ref.size}, bundle.json ${sizes.get(ref.digest)}`,
        });
      }
    }
  }
  return problems;
}

/** Names import cannot map, or that would land in one repository: import refuses those bundles whatever the target. */
function checkNames(manifest: BundleManifest): Problem[] {
  const problems: Problem[] = [];
  const mappable: string[] = [];
  for (const image of manifest.images) {
    try {
      parseBundleName(image.name);
      mappable.push(image.name);
    } catch (err) {
      problems.push({ code: 'INTEGRITY', subject: image.name, message: (err as Error).message });
    }
  }
  try {
    checkNameCollisions(mappable, '');
  } catch (err) {
    problems.push({ code: 'INTEGRITY', subject: mappable[0] ?? '', message: (err as Error).message });
  }
  return problems;
}

function checkIndex(manifest: BundleManifest, indexJson: Buffer): Problem[] {
  const problems: Problem[] = [];
  let index: { manifests?: Array<{ digest?: string; annotations?: Record<string, string> }> };
  try {
    index = JSON.parse(indexJson.toString('utf8')) as typeof index;
  } catch {
    return [{ code: 'INTEGRITY', subject: 'index.json', message: 'index.json is not valid JSON' }];
  }
  const entries = Array.isArray(index.manifests) ? index.manifests : [];
  const byName = new Map(entries.map((e) => [e.annotations?.[REF_NAME_ANNOTATION], e]));
  for (const image of manifest.images) {
    const entry = byName.get(image.name);
    if (entry === undefined) {
      problems.push({ code: 'INTEGRITY', subject: image.name, message: `index.json does not name image ${image.name}` });
    } else if (entry.digest !== image.digest) {
      problems.push({
        code: 'INTEGRITY',
        subject: image.name,
        message: `index.json names ${image.name} as ${String(entry.digest)}, bundle.json as ${image.digest}`,
      });
    }
  }
  const listed = new Set(manifest.images.map((i) => i.name));
  for (const e of entries) {
    const name = e.annotations?.[REF_NAME_ANNOTATION];
    if (name === undefined || !listed.has(name)) {
      problems.push({ code: 'INTEGRITY', subject: 'index.json', message: `index.json lists ${name ?? e.digest ?? '?'}, which bundle.json does not` });
    }
  }
  return problems;
}
