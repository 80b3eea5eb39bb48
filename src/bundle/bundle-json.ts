/**
 * The bundle.json a plan gives: a pure function of the plan and the creation time, so that a rerun
 * of `bundle create` can tell whether `OUT.partial` was started for exactly the same bundle.
 */
import { sha256Digest } from '../digest/digest.js';
import { OCI_LAYOUT_CONTENT } from '../layout/paths.js';
import { AirlockError } from '../errors.js';
import { BUNDLE_MEDIA_TYPE, serializeBundleManifest, validateBundleManifest, type BundleManifest } from './manifest.js';
import type { BundlePlan } from '../copy/plan.js';
import { VERSION } from '../version.js';

/** What orders a bundle among its signer's others: its sequence, and when it stops being valid. */
export interface BundleStamp {
  sequence?: number;
  expires?: Date;
}

/** RFC 3339 UTC in whole seconds, as bundle.json states times: `2024-05-01T12:00:00Z`. */
export function bundleTime(t: Date): string {
  return new Date(Math.floor(t.getTime() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/**
 * bundle.json for `plan`, created at `created` (whole seconds), with the sequence and expiry of
 * `stamp`. Delta fields only for a delta plan.
 */
export function bundleManifest(plan: BundlePlan, created: Date, stamp: BundleStamp = {}): BundleManifest {
  return {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created: bundleTime(created),
    ...(stamp.sequence === undefined ? {} : { sequence: stamp.sequence }),
    ...(stamp.expires === undefined ? {} : { expires: bundleTime(stamp.expires) }),
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

/**
 * The bytes of bundle.json for `plan`, checked as verify and import will check them: against
 * `schemas/bundle.schema.json` and the rules beside it. Run right before signing, so that nothing
 * is signed that the other side refuses.
 *
 * @throws INTERNAL "refusing to sign" naming the field: a check that belongs earlier in create
 *   (where the value came from a source) is missing
 */
export function signableBundleJson(plan: BundlePlan, created: Date, stamp: BundleStamp = {}): Buffer {
  const bytes = serializeBundleManifest(bundleManifest(plan, created, stamp));
  const problems = validateBundleManifest(JSON.parse(bytes.toString('utf8')));
  if (problems.length > 0) {
    throw new AirlockError('INTERNAL', `refusing to sign a bundle.json that verify would reject: ${problems.join('; ')}`, {
      hint: 'this is a bug in airlock (a check on what the source served is missing); please report it with the image list',
      details: { problems },
    });
  }
  return bytes;
}
