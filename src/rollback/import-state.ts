/**
 * The import record: what set each tag `bundle import` wrote into a target (digest, bundle id,
 * signer, sequence, created), kept in the target itself so that every importer of that registry
 * or layout sees it (docs/FORMAT.md, section 12). `import-rollback.ts` decides with it.
 *
 * - A registry keeps it as a small OCI artifact in the reserved repository
 *   `PREFIX/airlock/import-state`, tag `latest`: an image manifest with `artifactType`
 *   {@link IMPORT_STATE_MEDIA_TYPE}, the OCI empty config, and the record as its one layer.
 *   Distribution 2.8 has no artifact API, but stores such a manifest as it is, once its config and
 *   layer blobs are in the repository. One record per prefix: each prefix holds its own tags.
 * - An `oci:` layout keeps it as `DIR/airlock-state.json`, written atomically.
 *
 * The record is not signed (the secure side has no key to sign it with): it protects against
 * bundles carried in, not against whoever may write to the target.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { AirlockError, fromFsError, isAirlockError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import type { Descriptor } from '../oci/descriptor.js';
import { parseManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { writeFileAtomic } from '../layout/atomic.js';
import type { CallOptions, Sink, Source } from '../transport/types.js';
import type { ImportTarget } from '../names/import-names.js';
import { putSmallBlob } from '../copy/transfer.js';

export const IMPORT_STATE_MEDIA_TYPE = 'application/vnd.airlock.import-state.v1+json';

/** The reserved repository under the import prefix. Bundle images that would land there are refused. */
export const STATE_REPOSITORY = 'airlock/import-state';
export const STATE_TAG = 'latest';
/** The record's file in an `oci:` layout. */
export const LAYOUT_STATE_FILE = 'airlock-state.json';

/**
 * Largest record read: 64 MiB. A tag's entry is ~400 bytes, so this is over 100,000 tags; a
 * record beyond it is not one airlock wrote.
 */
export const MAX_STATE_BYTES = 64 << 20;

/** Bundles kept in the record's history: 1,000 (a daily import for almost three years). */
export const MAX_BUNDLE_HISTORY = 1000;

/** What set one tag. */
export interface TagRecord {
  digest: Digest;
  /** Bundle id. */
  bundle: Digest;
  /** Key id of the signer; null for a bundle accepted without a trusted signature. */
  signer: string | null;
  /** The bundle's sequence (0 for a bundle without one). */
  sequence: number;
  /** The bundle's `created`. */
  created: string;
  /** When the import that wrote this entry ran. */
  imported: string;
}

/** A bundle imported into the target. */
export interface BundleRecord {
  id: Digest;
  signer: string | null;
  sequence: number;
  created: string;
  imported: string;
}

export interface ImportState {
  schemaVersion: 1;
  mediaType: typeof IMPORT_STATE_MEDIA_TYPE;
  updated: string;
  /** `REPOSITORY:TAG` (repository as in the target, prefix included) → what set it. */
  tags: Record<string, TagRecord>;
  /** Oldest import first; at most {@link MAX_BUNDLE_HISTORY}. */
  bundles: BundleRecord[];
}

export function emptyState(): ImportState {
  return { schemaVersion: 1, mediaType: IMPORT_STATE_MEDIA_TYPE, updated: new Date(0).toISOString(), tags: {}, bundles: [] };
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;

function isSigner(v: unknown): v is string | null {
  return v === null || isDigest(v);
}

function isTime(v: unknown): v is string {
  return typeof v === 'string' && TIME_RE.test(v);
}

function isSequenceNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function tagRecordProblem(key: string, r: unknown): string | undefined {
  const t = r as Partial<TagRecord> | null;
  if (t === null || typeof t !== 'object') return `tags[${JSON.stringify(key)}] is not an object`;
  if (!isDigest(t.digest) || !isDigest(t.bundle) || !isSigner(t.signer) || !isSequenceNumber(t.sequence) || !isTime(t.created) || !isTime(t.imported)) {
    return `tags[${JSON.stringify(key)}] lacks digest, bundle, signer, sequence, created or imported`;
  }
  return undefined;
}

function bundleRecordProblem(i: number, r: unknown): string | undefined {
  const b = r as Partial<BundleRecord> | null;
  if (
    b === null ||
    typeof b !== 'object' ||
    !isDigest(b.id) ||
    !isSigner(b.signer) ||
    !isSequenceNumber(b.sequence) ||
    !isTime(b.created) ||
    !isTime(b.imported)
  ) {
    return `bundles[${i}] lacks id, signer, sequence, created or imported`;
  }
  return undefined;
}

/**
 * Parse a record. A record that is not one airlock wrote is refused (INTEGRITY): ignoring it would
 * switch the protection off for whoever can damage it.
 */
export function parseImportState(bytes: Buffer, where: string): ImportState {
  const fail = (why: string): AirlockError => damagedRecord(where, why);
  if (bytes.length > MAX_STATE_BYTES) throw fail(`${bytes.length} bytes, more than ${MAX_STATE_BYTES}`);
  let doc: Partial<ImportState>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Partial<ImportState>;
  } catch {
    throw fail('not JSON');
  }
  if (doc === null || typeof doc !== 'object' || doc.schemaVersion !== 1 || doc.mediaType !== IMPORT_STATE_MEDIA_TYPE) {
    throw fail(`expected schemaVersion 1 and mediaType ${IMPORT_STATE_MEDIA_TYPE}`);
  }
  if (!isTime(doc.updated) || doc.tags === null || typeof doc.tags !== 'object' || Array.isArray(doc.tags) || !Array.isArray(doc.bundles)) {
    throw fail('expected updated, tags and bundles');
  }
  for (const [key, r] of Object.entries(doc.tags)) {
    const problem = tagRecordProblem(key, r);
    if (problem !== undefined) throw fail(problem);
  }
  for (const [i, b] of doc.bundles.entries()) {
    const problem = bundleRecordProblem(i, b);
    if (problem !== undefined) throw fail(problem);
  }
  // A null-prototype copy: a tag key such as `__proto__` stays a plain key.
  const tags: Record<string, TagRecord> = Object.assign(Object.create(null) as Record<string, TagRecord>, doc.tags);
  return { schemaVersion: 1, mediaType: IMPORT_STATE_MEDIA_TYPE, updated: doc.updated, tags, bundles: doc.bundles };
}

/** The bytes written: 2-space JSON, tags sorted, a trailing newline. */
export function serializeImportState(state: ImportState): Buffer {
  const tags = Object.fromEntries(
    Object.keys(state.tags)
      .sort()
      .map((k) => [k, state.tags[k]]),
  );
  return Buffer.from(JSON.stringify({ ...state, tags }, null, 2) + '\n');
}

/** Where a target keeps its record. */
export interface ImportStateStore {
  /** For messages: `HOST/PREFIX/airlock/import-state:latest`, `oci:DIR/airlock-state.json`. */
  readonly where: string;
  /** The record; an empty one when the target has none yet. */
  read(opts?: CallOptions): Promise<ImportState>;
  write(state: ImportState, opts?: CallOptions): Promise<void>;
}

/** `oci:DIR`: the file `DIR/airlock-state.json`. */
export class LayoutStateStore implements ImportStateStore {
  readonly where: string;
  readonly #file: string;

  constructor(dir: string) {
    this.#file = join(dir, LAYOUT_STATE_FILE);
    this.where = `oci:${this.#file}`;
  }

  async read(): Promise<ImportState> {
    let bytes: Buffer;
    try {
      const size = (await stat(this.#file)).size;
      if (size > MAX_STATE_BYTES) throw damagedRecord(this.where, `${size} bytes, more than ${MAX_STATE_BYTES}`);
      bytes = await readFile(this.#file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw fromFsError(err, this.#file, 'reading');
    }
    return parseImportState(bytes, this.where);
  }

  async write(state: ImportState): Promise<void> {
    await writeFileAtomic(this.#file, serializeImportState(state));
  }
}

/** The OCI empty descriptor's content: `{}`. */
const EMPTY_CONFIG = Buffer.from('{}');

/** A registry: the artifact `PREFIX/airlock/import-state:latest`. */
export class RegistryStateStore implements ImportStateStore {
  readonly where: string;
  readonly #registry: Sink;
  readonly #reader: Source;
  readonly #repository: string;

  /** @param reader the same registry as `registry`, read (its `readBack`) */
  constructor(registry: Sink, reader: Source, host: string, prefix: string) {
    this.#registry = registry;
    this.#reader = reader;
    this.#repository = stateRepository(prefix);
    this.where = `${host}/${this.#repository}:${STATE_TAG}`;
  }

  async read(opts: CallOptions = {}): Promise<ImportState> {
    let manifest;
    try {
      manifest = await this.#reader.getManifest(this.#repository, STATE_TAG, opts);
    } catch (err) {
      if (isAirlockError(err, 'NOT_FOUND')) return emptyState();
      throw err;
    }
    const damaged = (why: string): AirlockError => damagedRecord(this.where, why);
    if (manifest.kind !== 'manifest' || manifest.parsed.artifactType !== IMPORT_STATE_MEDIA_TYPE)
      throw damaged(`it is not an ${IMPORT_STATE_MEDIA_TYPE} artifact`);
    const layers = manifest.parsed.layers;
    const layer = layers[0];
    if (layers.length !== 1 || layer === undefined || layer.mediaType !== IMPORT_STATE_MEDIA_TYPE) throw damaged('it does not hold exactly one record layer');
    if (layer.size > MAX_STATE_BYTES) throw damaged(`its record is ${layer.size} bytes, more than ${MAX_STATE_BYTES}`);
    const body = await this.#reader.openBlob(this.#repository, layer, opts);
    const bytes = await buffer(body.pipe(new VerifyingStream(layer, `the import record ${this.where}`)).on('error', () => body.destroy()));
    return parseImportState(bytes, this.where);
  }

  async write(state: ImportState, opts: CallOptions = {}): Promise<void> {
    const record = serializeImportState(state);
    const config: Descriptor = { mediaType: MediaType.OciEmpty, digest: sha256Digest(EMPTY_CONFIG), size: EMPTY_CONFIG.length };
    const layer: Descriptor = { mediaType: IMPORT_STATE_MEDIA_TYPE, digest: sha256Digest(record), size: record.length };
    for (const [desc, bytes] of [
      [config, EMPTY_CONFIG],
      [layer, record],
    ] as const) {
      if (!(await this.#registry.hasBlob(this.#repository, desc, opts))) await putSmallBlob(this.#registry, this.#repository, desc, bytes, opts.signal);
    }
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: IMPORT_STATE_MEDIA_TYPE,
      config,
      layers: [layer],
      annotations: { 'org.opencontainers.image.created': state.updated },
    };
    const bytes = Buffer.from(JSON.stringify(doc, null, 2) + '\n');
    await this.#registry.putManifest(this.#repository, parseManifest(bytes, MediaType.OciManifest, this.where), STATE_TAG, opts);
  }
}

/** A record airlock cannot read: INTEGRITY, naming it and what the operator can do. */
function damagedRecord(where: string, why: string): AirlockError {
  return new AirlockError('INTEGRITY', `the import record ${where} is damaged: ${why}`, {
    subject: where,
    hint: 'nothing was written; look at it (it lists what set each tag), then repair or delete it: deleting it drops the rollback protection for what it recorded',
  });
}

/** True for the record repository of any prefix (what `airlock inventory` leaves out). */
export function isStateRepository(repository: string): boolean {
  return repository === STATE_REPOSITORY || repository.endsWith(`/${STATE_REPOSITORY}`);
}

/** The reserved repository of a prefix: `PREFIX/airlock/import-state`. */
export function stateRepository(prefix: string): string {
  return prefix === '' ? STATE_REPOSITORY : `${prefix}/${STATE_REPOSITORY}`;
}

/**
 * The store of `target` written through `sink`: the layout's file, or the registry artifact.
 *
 * @throws INTERNAL for a registry sink that cannot read manifests and blobs back (every real one can)
 */
export function stateStoreFor(target: ImportTarget, sink: Sink): ImportStateStore {
  if (target.kind === 'layout') return new LayoutStateStore(target.dir);
  if (sink.readBack === undefined) throw new AirlockError('INTERNAL', `${sink.description} cannot read back the import record`);
  return new RegistryStateStore(sink, sink.readBack, target.host, target.prefix);
}
