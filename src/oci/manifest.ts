/**
 * Parsing of image manifests and indexes from the exact bytes a registry served.
 *
 * The raw bytes are kept next to the parsed form (as go-containerregistry pairs `RawManifest()` with
 * `Manifest()`): a digest always covers what was fetched, never a re-serialisation.
 */
import { AirlockError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from '../digest/digest.js';
import type { Descriptor } from './descriptor.js';
import { isIndexMediaType, isManifestMediaType, isSchema1MediaType, MediaType } from './media-types.js';

/** Distribution's limit; larger manifests are refused by registries, so we refuse them first. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A manifest or index exactly as served, with its digest and parsed form. */
export type RawManifest =
  | { kind: 'manifest'; bytes: Buffer; mediaType: string; digest: Digest; parsed: ImageManifest }
  | { kind: 'index'; bytes: Buffer; mediaType: string; digest: Digest; parsed: ImageIndex };

function invalid(what: string, why: string): AirlockError {
  return new AirlockError('REGISTRY', `${what}: invalid manifest: ${why}`, { subject: what });
}

function checkDescriptor(what: string, d: unknown, field: string): Descriptor {
  const desc = d as Partial<Descriptor> | null;
  if (desc === null || typeof desc !== 'object') throw invalid(what, `${field} is not an object`);
  if (typeof desc.mediaType !== 'string' || desc.mediaType === '') throw invalid(what, `${field}.mediaType is missing`);
  if (!isDigest(desc.digest)) throw invalid(what, `${field}.digest ${String(desc.digest)} is not a sha256 digest`);
  if (typeof desc.size !== 'number' || !Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw invalid(what, `${field}.size is not a non-negative integer`);
  }
  return desc as Descriptor;
}

/**
 * Parse manifest bytes.
 *
 * @param bytes exactly what the registry (or layout) served
 * @param contentType the Content-Type or descriptor media type, used when the body has none
 * @param what names the image in errors, e.g. `quay.io/coreos/etcd:v3.3`
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined, what: string): RawManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new AirlockError('UNSUPPORTED', `${what}: manifest is ${bytes.length} bytes, over the 4 MiB limit`, {
      subject: what,
      hint: 'registries refuse manifests over 4 MiB; this image cannot be mirrored',
    });
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid(what, 'not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw invalid(what, 'not a JSON object');
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  const ct = contentType?.split(';')[0]?.trim();
  if (doc.schemaVersion === 1 || isSchema1MediaType(declared ?? '') || isSchema1MediaType(ct ?? '')) {
    throw new AirlockError('UNSUPPORTED', `${what}: Docker schema 1 manifests are not supported`, {
      subject: what,
      hint: 'schema 1 is deprecated and unsigned by digest; rebuild or re-push the image with a current client',
    });
  }
  if (doc.schemaVersion !== 2) throw invalid(what, `schemaVersion ${String(doc.schemaVersion)} is not 2`);
  // The body's own mediaType wins; otherwise guess from the shape, then from Content-Type.
  let mediaType = declared;
  if (mediaType === undefined) {
    if (Array.isArray(doc.manifests)) mediaType = MediaType.OciIndex;
    else if (doc.config !== undefined) mediaType = MediaType.OciManifest;
    else if (ct !== undefined && isManifestMediaType(ct)) mediaType = ct;
  }
  if (mediaType === undefined || !isManifestMediaType(mediaType)) {
    throw new AirlockError('UNSUPPORTED', `${what}: unsupported manifest media type ${mediaType ?? '(none)'}`, {
      subject: what,
    });
  }
  const digest = sha256Digest(bytes);
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid(what, 'index has no manifests array');
    doc.manifests.forEach((d, i) => checkDescriptor(what, d, `manifests[${i}]`));
    return { kind: 'index', bytes, mediaType, digest, parsed: doc as unknown as ImageIndex };
  }
  checkDescriptor(what, doc.config, 'config');
  if (!Array.isArray(doc.layers)) throw invalid(what, 'manifest has no layers array');
  doc.layers.forEach((d, i) => checkDescriptor(what, d, `layers[${i}]`));
  return { kind: 'manifest', bytes, mediaType, digest, parsed: doc as unknown as ImageManifest };
}

/** Blobs an image manifest references: config first, then layers (foreign layers excluded). */
export function manifestBlobs(m: ImageManifest): Descriptor[] {
  return [m.config, ...m.layers.filter((l) => l.mediaType !== MediaType.DockerForeignLayerGzip)];
}
