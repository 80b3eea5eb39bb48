/**
 * `bundle create`: registry (or layout) → one signed archive.
 *
 * Every manifest is resolved first, so the signed head can list every blob before the first layer
 * is read; then blobs stream one after another from the source, through size and digest
 * verification, into the archive. Nothing is held in memory but manifests. The archive is written
 * as `OUT.partial` and renamed only when complete, next to its `.sha256` sidecar.
 *
 * An interrupted run (crash, Ctrl-C, network failure) leaves `OUT.partial`. The next run with the
 * same images and content continues it: it reuses the old bundle.json bytes (and so its `created`
 * time), reads back and checks every complete entry (`resumeArchive`), and fetches only the blobs
 * that are not already there. A layer stored in Raw blocks that was cut part-way is continued
 * inside the blob: its complete blocks are kept (and hashed as they are read back), the rest is
 * fetched from that offset (HTTP Range), and the digest is checked over the whole blob; if it does
 * not match, the file is cut back to the start of that blob so that the next run fetches it whole.
 * Anything else about the partial file means starting over.
 *
 * With `split` the archive is written as a split set of parts of that size (`OUT.part-001`, …:
 * bundle/split-set.ts), byte for byte the same archive; `OUT.partial.part-NNN` while written, and
 * an interrupted run's parts are continued the same way.
 *
 * With `since` (earlier bundles, their heads or manifests, or inventories of the target: see
 * `copy/since.ts`) the bundle is a delta: it carries every manifest but only the configs and
 * layers none of them delivered. The PREVs are read and checked before anything is fetched.
 *
 * Every bundle states its `sequence` (see `rollback/sequence.ts`) and, with `expiresInMs`, when it expires.
 * A signed bundle's sequence is recorded in `KEY.sequence` before the first blob is written, so a
 * bundle started and never finished still counts: the next one is above it.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { AirlockError } from '../errors.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { ArchiveSink, type ArchiveContent } from '../bundle/archive-sink.js';
import { bundleContents, serializeBundleManifest, type BundleContents, type BundleParent } from '../bundle/manifest.js';
import { readHead } from '../bundle/read-head.js';
import { keptParts } from '../bundle/parted-output.js';
import type { WrittenFile } from '../bundle/batch-output.js';
import { findParts, partName, partWidth, type ArchiveLocation } from '../bundle/split-set.js';
import type { HashedPart } from '../bundle/trailing-hasher.js';
import { signBundle, type SigningKey, type TrustedKey } from '../bundle/signing.js';
import { resolveAll, type ImageToResolve } from '../copy/resolve.js';
import { planBundle, trackedImages, type BundlePlan, type PlannedImage } from '../copy/plan.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { copyInOrder } from '../copy/engine.js';
import { loadSince } from '../copy/since.js';
import { bundleManifest, signableBundleJson, type BundleStamp } from '../bundle/bundle-json.js';
import {
  chooseSequence,
  parentSequence,
  readRecordedSequence,
  recordSequence,
  sequenceFileFor,
  withSequenceLock,
  type SequenceInputs,
} from '../rollback/sequence.js';
import { checkOutputFree, fileExists, PARTIAL_SUFFIX } from '../fs/output-file.js';
import { checkImageNames } from '../names/create-names.js';
import { checkOutputFile } from '../fs/output-location.js';

export interface CreateOptions {
  images: ImageToResolve[];
  output: string;
  /** Required unless `unsigned` is true. */
  signingKey?: SigningKey;
  unsigned?: boolean;
  force?: boolean;
  /** zstd level for compressible entries. */
  level?: number;
  /** Blobs opened ahead of the one being copied (default DEFAULT_OPEN_AHEAD; see blob-feed.ts). */
  openAhead?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Injected clock, for reproducible tests. */
  now?: () => Date;
  /**
   * Continue `OUT.partial` left by an interrupted run with the same images (default true);
   * false starts over.
   */
  resume?: boolean;
  /** `--since` files: make a delta of what they say the target holds. */
  since?: readonly string[];
  /** Keys whose inventory signatures are accepted (`--since have.json`). */
  inventoryTrust?: readonly TrustedKey[];
  /** Oldest `--since` inventory accepted, in ms. */
  maxInventoryAgeMs?: number;
  /** `--sequence N`: this bundle's sequence instead of the next one (see `rollback/sequence.ts`). */
  sequence?: number;
  /** `--expires`: the bundle expires this long after it is created. */
  expiresInMs?: number;
  /**
   * Where the signing key's last sequence is kept; default `KEY.sequence` beside the key file
   * (no file for a key that was not loaded from one, nor for an unsigned bundle).
   */
  sequenceFile?: string;
  /** `--split`: write parts of this many bytes (`OUT.part-001`, …) instead of one file. */
  split?: number;
}

export interface CreateResult {
  path: string;
  checksumFile: string;
  /** sha256 of the exact bundle.json bytes: the bundle's identity. */
  bundleId: Digest;
  signed: boolean;
  keyId?: string;
  images: PlannedImage[];
  totals: BundlePlan['totals'];
  /** What it carries, in the words the command prints. */
  contents: BundleContents;
  archiveBytes: number;
  sha256: string;
  /** `--split`: every part as published (path, size, sha256), in order. */
  parts?: HashedPart[];
  /** The bundle's `created`, `sequence` and `expires` as written in bundle.json. */
  created: string;
  sequence: number;
  expires?: string;
  /** Blobs, and their bytes, taken from `OUT.partial` of an interrupted run instead of the source. */
  reusedBlobs: number;
  reusedBytes: number;
  /** Set for a delta: its parents, and what it expects the target to hold. */
  delta?: { parents: BundleParent[]; externalBlobs: number; externalBytes: number };
}

export async function createBundle(opts: CreateOptions): Promise<CreateResult> {
  const progress = opts.onProgress ?? silent;
  if (opts.signingKey === undefined && opts.unsigned !== true) {
    throw new AirlockError('USAGE', 'no signing key given', {
      hint: 'pass --sign-key KEY (make one with: airlock key generate --out KEY), or --unsigned to create an unsigned bundle',
    });
  }
  if (opts.images.length === 0) {
    throw new AirlockError('USAGE', 'no images to bundle', { hint: 'pass image references or -f images.yaml' });
  }
  await checkOutputFile(opts.output, 'output');
  await checkOutputFree(opts.output, opts.force === true);
  if (opts.force !== true) {
    // A split set under the name (its sidecar would be replaced), or a set where the single file goes.
    const old = await findParts(opts.output);
    if (old.length > 0) await checkOutputFree(old[0]!.path, false);
  }
  const delivered =
    opts.since === undefined || opts.since.length === 0
      ? undefined
      : await loadSince(opts.since, {
          ...(opts.signingKey === undefined ? {} : { signingKey: opts.signingKey }),
          ...(opts.inventoryTrust === undefined ? {} : { inventoryTrust: opts.inventoryTrust }),
          ...(opts.maxInventoryAgeMs === undefined ? {} : { maxInventoryAgeMs: opts.maxInventoryAgeMs }),
          now: opts.now?.() ?? new Date(),
          onProgress: progress,
        });

  checkImageNames(opts.images);

  const sequencing = await sequenceInputs(opts);
  // A --sequence not above the parents' fails before any request; against the key's record it is
  // checked when the head is made (a rerun that continues OUT.partial keeps its own sequence).
  chooseSequence({ ...sequencing, recorded: 0 }, opts.now?.() ?? new Date());

  progress({ kind: 'phase', phase: 'resolving manifests', items: opts.images.length, noun: 'image' });
  const resolved = await resolveAll(opts.images, {
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    onResolved: (r) => progress({ kind: 'image', name: r.name, digest: r.top.digest, detail: r.platforms.join(',') || undefined }),
  });
  const plan = planBundle(resolved, delivered === undefined ? {} : { delivered });
  const partial = opts.output + PARTIAL_SUFFIX;
  const partialName = opts.split === undefined ? partial : `${partial}.part-*`;
  const { sink, head, signature, stamp } = await startArchive(plan, partial, opts, sequencing);
  let held: { held: number; heldBytes: number };
  let result: WrittenFile;
  try {
    held = await copyInOrder(plan.blobs, sink, {
      openAhead: opts.openAhead,
      signal: opts.signal,
      onProgress: progress,
      images: trackedImages(resolved, plan),
      onHeld: (h) => {
        const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
        const inside = h.part === undefined ? '' : `, and ${mib(h.part.bytes)} of the ${mib(h.part.item.desc.size)} MiB of the next one`;
        progress({
          kind: 'warning',
          message: `continuing ${partialName}: ${h.items} of ${plan.blobs.length} blobs (${mib(h.bytes - (h.part?.bytes ?? 0))} MiB) are already there${inside}`,
        });
      },
    });
    result = await sink.complete();
  } catch (err) {
    // Keep what was written: the next run continues from it (see the module comment).
    await sink.abort(err);
    throw resumable(err, partialName, opts.signal);
  }
  const checksumFile = await sink.publish(opts.output, result);
  const parts = result.parts?.map((p, i) => ({ ...p, path: published(opts.output, i, result.parts!.length) }));
  return {
    path: opts.output,
    checksumFile,
    bundleId: sha256Digest(head),
    signed: signature !== undefined,
    ...(signature === undefined ? {} : { keyId: signature.keyId }),
    created: stamp.created,
    sequence: stamp.sequence,
    ...(stamp.expires === undefined ? {} : { expires: stamp.expires }),
    images: plan.images,
    totals: plan.totals,
    contents: bundleContents(
      plan.images.length,
      plan.blobs.map((b) => b.desc),
    ),
    archiveBytes: result.bytes,
    sha256: result.sha256,
    ...(parts === undefined ? {} : { parts }),
    reusedBlobs: held.held,
    reusedBytes: held.heldBytes,
    ...(plan.parents === undefined
      ? {}
      : { delta: { parents: plan.parents, externalBlobs: plan.external?.length ?? 0, externalBytes: plan.totals.externalBytes ?? 0 } }),
  };
}

/** What the sequence is chosen from: `--sequence`, the key's record, the parents. */
async function sequenceInputs(opts: CreateOptions): Promise<SequenceInputs> {
  const progress = opts.onProgress ?? silent;
  const parents = await parentSequence(opts.since ?? []);
  const key = opts.signingKey;
  const file = key === undefined ? undefined : (opts.sequenceFile ?? (key.path === undefined ? undefined : sequenceFileFor(key.path)));
  const recorded = key === undefined || file === undefined ? 0 : await readRecordedSequence(file, key.keyId, progress);
  return { recorded, parents, ...(file === undefined ? {} : { file }), ...(opts.sequence === undefined ? {} : { explicit: opts.sequence }) };
}

/** The stamp as written: `created`, `sequence` and `expires` of bundle.json. */
interface WrittenStamp {
  created: string;
  sequence: number;
  expires?: string;
}

/** The archive to write into, with the head that goes (or already is) at its start. */
interface Started {
  /** Positioned after the head and whatever an interrupted run left that is kept. */
  sink: ArchiveSink;
  head: Buffer;
  signature: { bytes: Buffer; keyId: string } | undefined;
  stamp: WrittenStamp;
}

/** The expiry of a bundle created at `created` (whole seconds), if it has one. */
function expiryFor(created: Date, opts: CreateOptions): Date | undefined {
  return opts.expiresInMs === undefined ? undefined : new Date(Math.floor(created.getTime() / 1000) * 1000 + opts.expiresInMs);
}

/** Continue `partial` when it was started for the same plan and signer; else start a new file. */
async function startArchive(plan: BundlePlan, partial: string, opts: CreateOptions, sequencing: SequenceInputs): Promise<Started> {
  const progress = opts.onProgress ?? silent;
  const fresh = async (): Promise<Started> => {
    const created = opts.now?.() ?? new Date();
    created.setMilliseconds(0);
    const expires = expiryFor(created, opts);
    // The head of a bundle with a given sequence; `record` keeps that sequence as the key's last.
    const make = async (inputs: SequenceInputs, record: boolean) => {
      const stamp: BundleStamp = { sequence: chooseSequence(inputs, created), ...(expires === undefined ? {} : { expires }) };
      const head = signableBundleJson(plan, created, stamp);
      if (record && opts.signingKey !== undefined && inputs.file !== undefined && stamp.sequence! > inputs.recorded) {
        await recordSequence(inputs.file, opts.signingKey.keyId, stamp.sequence!, sha256Digest(head), opts.now?.() ?? new Date());
      }
      return { manifest: bundleManifest(plan, created, stamp), head };
    };
    const key = opts.signingKey;
    const file = sequencing.file;
    // Read, choose and record under the key's lock: two creates never take the same number.
    const made =
      (key !== undefined && file !== undefined
        ? await withSequenceLock(
            file,
            async () => make({ ...sequencing, recorded: await readRecordedSequence(file, key.keyId, progress) }, true),
            progress,
            opts.signal,
          )
        : undefined) ?? (await make(sequencing, false));
    const signature = key === undefined ? undefined : signBundle(made.head, key);
    let sink: ArchiveSink;
    try {
      sink = await ArchiveSink.create(partial, archiveContent(plan, made.head, signature?.bytes), {
        mtime: created,
        level: opts.level,
        split: opts.split,
      });
    } catch (err) {
      // The head could not be written (a full disk, say): what was is kept, as for a blob.
      throw resumable(err, opts.split === undefined ? partial : `${partial}.part-*`, opts.signal);
    }
    return { sink, head: made.head, signature, stamp: writtenStamp(made.manifest) };
  };
  const left = opts.resume === false ? undefined : await interrupted(partial, opts.split);
  if (left === undefined) return fresh();
  const restart = (why: string): Promise<Started> => {
    progress({ kind: 'warning', message: `not continuing ${opts.split === undefined ? partial : `${partial}.part-*`}: ${why}; starting over` });
    return fresh();
  };
  const old = await reusableHead(plan, left, opts);
  if (typeof old === 'string') return restart(old);
  // The record may have been lost since the partial file was started: it is the key's last at least.
  const key = opts.signingKey;
  const file = sequencing.file;
  if (key !== undefined && file !== undefined && old.stamp.sequence > sequencing.recorded) {
    await withSequenceLock(
      file,
      async () => {
        if (old.stamp.sequence > (await readRecordedSequence(file, key.keyId, progress))) {
          await recordSequence(file, key.keyId, old.stamp.sequence, sha256Digest(old.head), opts.now?.() ?? new Date());
        }
      },
      progress,
      opts.signal,
    );
  }
  try {
    const size = typeof left === 'string' ? (await stat(left)).size : left.size;
    progress({ kind: 'phase', phase: `checking ${basename(partial)}${typeof left === 'string' ? '' : '.part-*'} from an interrupted run`, total: size });
    const sink = await ArchiveSink.resume(partial, archiveContent(plan, old.head, old.signature?.bytes), {
      mtime: old.created,
      level: opts.level,
      split: opts.split,
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      onBytes: (n) => progress({ kind: 'bytes', bytes: n }),
    });
    return { sink, head: old.head, signature: old.signature, stamp: old.stamp };
  } catch (err) {
    if (opts.signal?.aborted === true) throw err;
    return restart((err as Error).message);
  }
}

/** What an interrupted run left to continue: `OUT.partial`, or the start of its split set; undefined when nothing. */
async function interrupted(partial: string, split: number | undefined): Promise<ArchiveLocation | undefined> {
  if (split === undefined) return (await fileExists(partial)) ? partial : undefined;
  const set = await keptParts(partial, split);
  return set.parts.length === 0 ? undefined : set;
}

/** Path of part `i` (0-based) of `count` as published (sink.publish). */
function published(output: string, i: number, count: number): string {
  return partName(output, i + 1, partWidth(count));
}

function writtenStamp(m: { created: string; sequence?: number; expires?: string }): WrittenStamp {
  return { created: m.created, sequence: m.sequence ?? 0, ...(m.expires === undefined ? {} : { expires: m.expires }) };
}

/**
 * The head of `partial` if this run would write exactly it: bundle.json is what this plan gives
 * with the old `created` time and sequence (so images, blobs, order and layout are all the same,
 * and `--expires` or `--sequence`, when given, are the same too), and the signature is what the
 * current key (or none) gives. Otherwise why not.
 */
async function reusableHead(
  plan: BundlePlan,
  partial: ArchiveLocation,
  opts: CreateOptions,
): Promise<{ created: Date; head: Buffer; signature: { bytes: Buffer; keyId: string } | undefined; stamp: WrittenStamp } | string> {
  const key = opts.signingKey;
  let old: Awaited<ReturnType<typeof readHead>>;
  try {
    old = await readHead(partial);
  } catch (err) {
    return `its head cannot be read (${(err as Error).message})`;
  }
  let doc: { created?: unknown; sequence?: unknown };
  try {
    doc = JSON.parse(old.bundleJson.toString('utf8')) as { created?: unknown; sequence?: unknown };
  } catch {
    return 'its bundle.json is not JSON';
  }
  const date = typeof doc.created === 'string' ? new Date(doc.created) : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) return 'its bundle.json has no valid creation time';
  if (typeof doc.sequence !== 'number') return 'it was started by an airlock that wrote no sequence';
  const expires = expiryFor(date, opts);
  const manifest = bundleManifest(plan, date, { sequence: opts.sequence ?? doc.sequence, ...(expires === undefined ? {} : { expires }) });
  if (!serializeBundleManifest(manifest).equals(old.bundleJson)) {
    return 'it was started for other images, other image content, or another --sequence or --expires';
  }
  const stamp = writtenStamp(manifest);
  if (key === undefined)
    return old.signature === undefined ? { created: date, head: old.bundleJson, signature: undefined, stamp } : 'it is signed, this bundle is not';
  if (old.signature === undefined) return 'it is unsigned, this bundle is signed';
  const signature = signBundle(old.bundleJson, key);
  if (!signature.bytes.equals(old.signature)) return 'it was signed with another key';
  return { created: date, head: old.bundleJson, signature, stamp };
}

/** What the archive holds: the signed head, then every planned blob in order. */
function archiveContent(plan: BundlePlan, head: Buffer, signature: Buffer | undefined): ArchiveContent {
  return { bundleJson: head, ...(signature === undefined ? {} : { signature }), indexJson: plan.indexJson, blobs: plan.blobs.map((b) => b.desc) };
}

/** A failure after writing started: `partial` is kept, and the hint says how to continue. */
function resumable(err: unknown, partial: string, signal: AbortSignal | undefined): unknown {
  const next = `run the same command again to continue from ${partial}`;
  if (signal?.aborted === true && !(err instanceof AirlockError)) {
    return new AirlockError('INTERRUPTED', 'interrupted while writing the bundle', { subject: partial, hint: next, cause: err });
  }
  if (!(err instanceof AirlockError)) return err;
  // A hint that already ends in "then run the command again" (a full disk's) says it once, precisely.
  const first = err.hint?.replace(/[,;] then run the (same )?command again$/, '');
  return new AirlockError(err.code, err.message, {
    hint: first === undefined ? next : `${first}; then ${next}`,
    ...(err.subject === undefined ? {} : { subject: err.subject }),
    ...(err.details === undefined ? {} : { details: err.details }),
    cause: err,
  });
}
