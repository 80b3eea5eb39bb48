/**
 * The bundle.json a plan gives: a pure function of the plan and the creation time, so that a rerun
 * of `bundle create` can tell whether `OUT.partial` was started for exactly the same bundle.
 */
import { sha256Digest } from '../digest/digest.js';
import { OCI_LAYOUT_CONTENT } from '../layout/paths.js';
import { BUNDLE_MEDIA_TYPE, type BundleManifest } from '../bundle/manifest.js';
import type { BundlePlan } from '../copy/plan.js';
import { VERSION } from '../version.js';

/** bundle.json for `plan`, created at `created` (whole seconds). Delta fields only for a delta plan. */
export function bundleManifest(plan: BundlePlan, created: Date): BundleManifest {
  return {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created: created.toISOString().replace('.000Z', 'Z'),
    creator: `airlock/${VERSION}`,
    images: plan.images.map((img) => ({
      name: img.name,
      source: img.source,
      digest: img.digest,
      mediaType: img.mediaType,
      size: img.size,
      platforms: img.platforms,
      bytes: img.bytes,
      ...(img.upstreamDigest === undefined ? {} : { upstreamDigest: img.upstreamDigest }),
    })),
    blobs: plan.blobs.map((b) => ({ digest: b.desc.digest, size: b.desc.size, mediaType: b.desc.mediaType })),
    layout: {
      'oci-layout': { digest: sha256Digest(OCI_LAYOUT_CONTENT), size: OCI_LAYOUT_CONTENT.length },
      'index.json': { digest: sha256Digest(plan.indexJson), size: plan.indexJson.length },
    },
    totals: plan.totals,
    ...(plan.parents === undefined ? {} : { parents: plan.parents, external: plan.external ?? [] }),
  };
}
