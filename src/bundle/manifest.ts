/**
 * `bundle.json`, the bundle manifest: what a bundle carries, signed by `bundle.json.sig`. Its
 * JSON Schema is `schemas/bundle.schema.json`; {@link validateBundleManifest} adds the rules a
 * schema cannot state (each blob once, totals that add up, images whose manifests are present).
 * The bundle id is the sha256 digest of the exact bytes: parse them, never re-serialise.
 */
// schemas/bundle.schema.json, compiled at build time (scripts/compile-schemas.mjs).
import validateBundleSchema from '../generated/bundle-validate.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { AirlockError } from '../errors.js';
import { BUNDLE_MEDIA_TYPE } from './format.js';
import { MAX_BUNDLE_JSON_BYTES } from './read-head.js';
import { parseStrictJson, valueAt } from './strict-json.js';
import { isManifestMediaType } from '../oci/media-types.js';

export { BUNDLE_MEDIA_TYPE } from './format.js';

/** An image in the bundle, under the reference it was listed as. */
export interface BundleImage {
  /** Full reference as listed, e.g. `quay.io/coreos/etcd:v3.3`. */
  name: string;
  /** Where it was pulled from (often equal to `name`). */
  source: string;
  /** Digest of its top manifest or index, as stored in the bundle. */
  digest: Digest;
  mediaType: string;
  /** Size of the top manifest or index. */
  size: number;
  /** `os/arch[/variant]` of every platform carried. */
  platforms: string[];
  /** Bytes of every distinct blob of this image, as if it were alone. */
  bytes?: number;
  /** The digest the source served when it differs from `digest` (converted on the way). */
  upstreamDigest?: Digest;
}

/** A file under `blobs/sha256/`. */
export interface BundleBlob {
  digest: Digest;
  size: number;
  mediaType: string;
}

/**
 * A blob the images of a delta bundle need but the bundle does not carry: one of its parents
 * delivered it, and the target must already hold it.
 */
export interface ExternalBlob extends BundleBlob {
  /** Id of the parent that delivered it: a bundle id, or an inventory id. */
  bundle: Digest;
}

/** What a delta bundle was made against (`bundle create --since`). */
export interface BundleParent {
  /** Bundle id (sha256 of its bundle.json) or inventory id (sha256 of its payload). */
  id: Digest;
  /** The parent's own `created`. */
  created: string;
  /** Key id of the parent's signer, when it was signed (and checked, for a signed delta). */
  keyId?: string;
  /** `bundle`: an earlier bundle (its head or exported bundle.json); `inventory`: a target's inventory. */
  kind: 'bundle' | 'inventory';
}

/** Digest and size of `oci-layout` or `index.json`. */
export interface LayoutFile {
  digest: Digest;
  size: number;
}

/** The content of bundle.json (schema: `schemas/bundle.schema.json`). */
export interface BundleManifest {
  schemaVersion: 1;
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  /** RFC 3339 UTC, whole seconds as airlock writes it: `2024-05-01T12:00:00Z`. */
  created: string;
  /**
   * Grows from one bundle of a signer to the next (see `rollback/sequence.ts`); import refuses to move
   * a tag back to a lower one. Absent in bundles made before airlock wrote it.
   */
  sequence?: number;
  /** RFC 3339 UTC: verify and import refuse the bundle after this time (unless allowed). */
  expires?: string;
  /** e.g. `airlock/0.1.0`. */
  creator: string;
  images: BundleImage[];
  /** Every blob carried, each once, in archive order. */
  blobs: BundleBlob[];
  layout: { 'oci-layout': LayoutFile; 'index.json': LayoutFile };
  totals: BundleTotals;
  /** Delta bundles only: what it was made against, oldest first. */
  parents?: BundleParent[];
  /** Delta bundles only: blobs the images need that a parent delivered, not carried here. */
  external?: ExternalBlob[];
}

export interface BundleTotals {
  images: number;
  /** Blobs carried. */
  blobs: number;
  /** Bytes carried: the sum of `blobs[].size`. */
  bytes: number;
  /** What the images would take without deduplication, external blobs included. */
  referencedBytes: number;
  /** Delta bundles only: the sum of `external[].size`. */
  externalBytes?: number;
}

/**
 * What a bundle carries, in the words every command prints: images; manifests (image manifests and
 * indexes); blobs (configs and layers: everything else under `blobs/`); bytes (all of them).
 * bundle.json's `totals.blobs` counts every file under `blobs/`, so it is `manifests + blobs` here.
 */
export interface BundleContents {
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
}

/** The {@link BundleContents} of `images` images carried in `files` (manifests and blobs, each once). */
export function bundleContents(images: number, files: readonly { mediaType: string; size: number }[]): BundleContents {
  const manifests = files.filter((f) => isManifestMediaType(f.mediaType)).length;
  return { images, manifests, blobs: files.length - manifests, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/** The sequence import compares: a bundle without one (made by an older airlock) counts as 0. */
export function sequenceOf(m: Pick<BundleManifest, 'sequence'>): number {
  return m.sequence ?? 0;
}

/** True when the bundle has an expiry and it has passed at `now`. */
export function isExpired(m: Pick<BundleManifest, 'expires'>, now: Date): boolean {
  return m.expires !== undefined && Date.parse(m.expires) <= now.getTime();
}

/** True when the manifest describes a delta bundle (made with `--since`). */
export function isDelta(m: BundleManifest): boolean {
  return m.parents !== undefined;
}

/** Most problems listed in one error: 20, enough to see the pattern without flooding. */
const MAX_PROBLEMS = 20;

/**
 * Every reason `doc` is not a valid bundle manifest (empty when it is): schema violations, then
 * duplicate blobs, totals that do not add up, images whose top manifest is neither carried nor
 * external, and a `created` that is not a real date.
 */
export function validateBundleManifest(doc: unknown): string[] {
  const validate = validateBundleSchema;
  if (!validate(doc)) {
    return (validate.errors ?? []).slice(0, MAX_PROBLEMS).map((e) => describeSchemaError(doc, e));
  }
  const m = doc as BundleManifest;
  const problems: string[] = [];
  const carried = new Set<string>();
  for (const b of m.blobs) {
    if (carried.has(b.digest)) problems.push(`blob ${b.digest} is listed twice`);
    carried.add(b.digest);
  }
  const external = new Set<string>();
  for (const b of m.external ?? []) {
    if (carried.has(b.digest) || external.has(b.digest)) problems.push(`external blob ${b.digest} is listed twice`);
    external.add(b.digest);
  }
  problems.push(...deltaProblems(m));
  for (const img of m.images) {
    if (!carried.has(img.digest) && !external.has(img.digest)) problems.push(`image ${img.name}: manifest ${img.digest} is not in blobs`);
  }
  const bytes = m.blobs.reduce((n, b) => n + b.size, 0);
  if (m.totals.images !== m.images.length) problems.push(`totals.images is ${m.totals.images}, images lists ${m.images.length}`);
  if (m.totals.blobs !== m.blobs.length) problems.push(`totals.blobs is ${m.totals.blobs}, blobs lists ${m.blobs.length}`);
  if (m.totals.bytes !== bytes) problems.push(`totals.bytes is ${m.totals.bytes}, the blobs add up to ${bytes}`);
  if (m.totals.referencedBytes < m.totals.bytes + (m.totals.externalBytes ?? 0)) {
    problems.push('totals.referencedBytes is less than the carried and external bytes');
  }
  if (!isRealDate(m.created)) problems.push(`created ${m.created} is not a valid date`);
  if (m.expires !== undefined) {
    if (!isRealDate(m.expires)) problems.push(`expires ${m.expires} is not a valid date`);
    else if (Date.parse(m.expires) <= Date.parse(m.created)) problems.push(`expires ${m.expires} is not after created ${m.created}`);
  }
  return problems.slice(0, MAX_PROBLEMS);
}

/** What a `pattern` failure means, by the field that failed (ajv inlines $refs, so its path says). */
const PATTERN_MEANING: Readonly<Record<string, string>> = {
  mediaType: 'is not a media type (type/subtype, RFC 6838)',
  platforms: 'is not a platform (os/arch or os/arch/variant)',
  created: 'is not an RFC 3339 UTC time',
};

/**
 * One schema error as a line that says what is wrong: where (`/images/0/platforms/1`), the value
 * found (JSON, cut short: it may be hostile), and what it should be.
 */
function describeSchemaError(
  doc: unknown,
  e: { instancePath: string; keyword: string; message?: string | undefined; params: Record<string, unknown> },
): string {
  const where = e.instancePath || '/';
  if (e.keyword === 'additionalProperties') return `${where}: unknown field ${JSON.stringify(String(e.params['additionalProperty']))}`;
  if (e.keyword === 'required') return `${where}: missing field ${JSON.stringify(String(e.params['missingProperty']))}`;
  const value = valueAt(doc, e.instancePath);
  const shown = value === undefined ? 'absent' : (JSON.stringify(value) ?? String(value));
  const text = shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
  const parts = e.instancePath.split('/');
  const field = /^[0-9]+$/.test(parts.at(-1) ?? '') ? parts.at(-2) : parts.at(-1);
  const meaning =
    e.keyword === 'pattern'
      ? (PATTERN_MEANING[field ?? ''] ?? (/digest|^id$|^bundle$|keyId/i.test(field ?? '') ? 'is not a sha256 digest' : undefined))
      : undefined;
  return `${where}: ${text} ${meaning ?? e.message ?? `fails schema rule "${e.keyword}"`}`;
}

/** A delta names each parent once, and every external blob names one of its parents. */
function deltaProblems(m: BundleManifest): string[] {
  const problems: string[] = [];
  if (m.parents === undefined) {
    if (m.external !== undefined || m.totals.externalBytes !== undefined) problems.push('external blobs or totals.externalBytes without parents');
    return problems;
  }
  const ids = new Set<string>();
  for (const p of m.parents) {
    if (ids.has(p.id)) problems.push(`parent ${p.id} is listed twice`);
    ids.add(p.id);
    if (!isRealDate(p.created)) problems.push(`parent ${p.id}: created ${p.created} is not a valid date`);
  }
  for (const b of m.external ?? []) {
    if (!ids.has(b.bundle)) problems.push(`external blob ${b.digest} names ${b.bundle}, which is not a parent`);
  }
  const externalBytes = (m.external ?? []).reduce((n, b) => n + b.size, 0);
  if ((m.totals.externalBytes ?? 0) !== externalBytes) {
    problems.push(`totals.externalBytes is ${m.totals.externalBytes ?? 'absent'}, the external blobs add up to ${externalBytes}`);
  }
  return problems;
}

/** True when an RFC 3339 UTC timestamp names a real instant (no 31 February, no hour 24). */
function isRealDate(text: string): boolean {
  const t = new Date(text);
  return !Number.isNaN(t.getTime()) && t.toISOString().slice(0, 19) === text.slice(0, 19);
}

/**
 * Parse and validate the exact bytes of a bundle.json.
 *
 * @param source the bundle it came from, for messages
 * @throws INTEGRITY listing what is wrong: the manifest is part of the (signed) bundle, so a bad
 *   one means a damaged or hostile bundle
 */
export function parseBundleManifest(bytes: Buffer, source: string): BundleManifest {
  const fail = (problems: string[]): AirlockError =>
    new AirlockError('INTEGRITY', `${source}: invalid bundle.json: ${problems.join('; ')}`, {
      subject: source,
      details: { problems },
      hint: 'the bundle was not written by a compatible airlock, or it was altered',
    });
  if (bytes.length > MAX_BUNDLE_JSON_BYTES) throw fail([`${bytes.length} bytes, more than ${MAX_BUNDLE_JSON_BYTES}`]);
  let doc: unknown;
  try {
    doc = parseStrictJson(bytes);
  } catch (err) {
    // A signed document two readers could read differently (a key twice, the last winning) is refused.
    throw fail([(err as Error).message]);
  }
  const problems = validateBundleManifest(doc);
  if (problems.length > 0) throw fail(problems);
  return doc as BundleManifest;
}

/** The bytes airlock writes for a manifest: 2-space indented JSON and a newline. */
export function serializeBundleManifest(manifest: BundleManifest): Buffer {
  return Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
}

/** The bundle id: the sha256 digest of the exact bundle.json bytes. */
export function bundleId(bundleJson: Buffer): Digest {
  return sha256Digest(bundleJson);
}
