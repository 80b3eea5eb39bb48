/**
 * Bringing blobs from a source into a sink: skip what is there, mount what sits in another
 * repository of the sink, upload the rest straight from the source.
 *
 * Two phases. Checking, which writes nothing: every blob is looked for in every repository that
 * needs it, and a blob the source does not carry (a delta bundle's external blob), when none of
 * them has it, further in the sink through its search (a registry's other repositories); the
 * caller stops there if such a blob is nowhere. Writing: where one repository has a blob, the
 * others mount it from there; each missing blob is read from the source and uploaded once, the
 * sink checking it against the expected digest and size (see {@link uploadOnce}), then mounted into
 * the other repositories that need it. A failed upload is retried whole, with a fresh stream from
 * the source (a sink retries its own requests, never a body already in flight), when the sink says
 * the failure is worth it; before a retry the blob is looked for again, since a lost response to
 * the final request means it landed.
 */
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { AirlockError, isAirlockError } from '../errors.js';
import { shortDigest, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { backoffDelay, sleep } from '../sync/backoff.js';
import { Semaphore } from '../sync/semaphore.js';
import type { BlobSearch, Sink, Source } from '../transport/types.js';
import type { ProgressListener } from './progress.js';
import { runLimited } from './run-limited.js';
import { CHECK_CONCURRENCY, LARGE_BLOB_BYTES, SMALL_REQUESTS_IN_FLIGHT } from './limits.js';

/** One blob to bring into the sink, with every repository that needs it. */
export interface BlobUnit {
  /** Digest, size and media type as the plan (for a bundle: the signed manifest) gives them. */
  desc: Descriptor;
  /** Sink repositories that need it, in plan order. */
  repositories: string[];
  /**
   * Where to read it: a source and its repository (the first image that needed it); undefined for a
   * blob no source carries (a delta bundle's external blob), which must then be found in the sink.
   */
  from: BlobLocation | undefined;
  /** The first image that needs it, for messages. */
  image: string;
  /** For a blob a delta does not carry: the parent (bundle or inventory id) that delivered it. */
  parent?: Digest;
}

/** A blob's place in a source. */
export interface BlobLocation {
  source: Source;
  repository: string;
}

/**
 * After the stream of a blob failed, the sink gets 5 s to notice and clean up (a registry cancels
 * its upload session); a sink that never notices is left behind rather than waited for.
 */
const SINK_SETTLE_MS = 5_000;

/** How whole-blob uploads are retried; see {@link DEFAULT_BLOB_RETRY}. */
export interface BlobRetry {
  /** Attempts per blob, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
}

/**
 * 4 attempts, 1 s doubling to 10 s: each request inside an attempt already rides out ~20 s of
 * registry trouble (the client's own retries), so a whole-blob retry is for a connection lost
 * while the body was in flight, and three of them ride out a registry restart.
 */
export const DEFAULT_BLOB_RETRY: BlobRetry = {
  attempts: 4,
  baseDelayMs: 1_000,
  maxDelayMs: 10_000,
  sleep,
  random: Math.random,
};

/** What happened to one blob in one repository. */
export interface BlobTransfer {
  digest: string;
  size: number;
  repository: string;
  action: 'present' | 'mounted' | 'uploaded';
}

/** Counts over blob × repository pairs, and the bytes actually uploaded: what a copy reports. */
export interface TransferCounts {
  /** Distinct blobs the plan moved. */
  distinct: number;
  present: number;
  mounted: number;
  uploaded: number;
  uploadedBytes: number;
}

/** The counts of `transfers`, for a plan of `distinct` blobs. */
export function countTransfers(transfers: readonly BlobTransfer[], distinct: number): TransferCounts {
  const count = (action: BlobTransfer['action']): number => transfers.filter((t) => t.action === action).length;
  const uploadedBytes = transfers.filter((t) => t.action === 'uploaded').reduce((n, t) => n + t.size, 0);
  return { distinct, present: count('present'), mounted: count('mounted'), uploaded: count('uploaded'), uploadedBytes };
}

/** What the engine says when content does not match its digest, in the terms of the source. */
export interface IntegrityWording {
  /** `signed digest` for a bundle, `digest` otherwise. */
  digest: string;
  /** The operator's next step. */
  hint: string;
}

export interface TransferOptions {
  sink: Sink;
  /** Large uploads in flight at once. */
  concurrency: number;
  signal?: AbortSignal;
  progress: ProgressListener;
  retry?: Partial<BlobRetry>;
  integrity: IntegrityWording;
}

/** A unit's state after the checking phase: where it already is and which repositories still lack it. */
export interface CheckedBlob {
  unit: BlobUnit;
  /** Repositories that need it and hold it. */
  present: string[];
  /** A repository of the sink holding it to mount from (one that needs it, or one a search found). */
  from: string | undefined;
  /** Repositories that need it and lack it. */
  missing: string[];
}

export interface CheckBlobsOptions {
  sink: Sink;
  signal?: AbortSignal;
  progress: ProgressListener;
  /** Where to look further for blobs the source does not carry (a delta's external blobs). */
  search?: BlobSearch;
}

/**
 * The checking phase, which writes nothing: every unit is looked for in every repository that
 * needs it (a sink without repositories: once); a unit the source does not carry and that none of
 * them holds is then looked for by `search`.
 */
export async function checkBlobs(units: readonly BlobUnit[], opts: CheckBlobsOptions): Promise<CheckedBlob[]> {
  const { sink, progress } = opts;
  const perRepository = sink.mounting !== undefined;
  progress({ kind: 'phase', phase: 'checking target', items: units.length, noun: 'blob' });
  const checked = new Map<BlobUnit, CheckedBlob>();
  await runLimited(units, CHECK_CONCURRENCY, opts.signal, async (unit, signal) => {
    const repos = perRepository ? unit.repositories : unit.repositories.slice(0, 1);
    const found = await Promise.all(repos.map((r) => sink.hasBlob(r, unit.desc, { signal })));
    const present = repos.filter((_, i) => found[i]);
    checked.set(unit, { unit, present, from: present[0], missing: repos.filter((_, i) => !found[i]) });
    progress({ kind: 'blob', digest: unit.desc.digest, size: unit.desc.size, skipped: present.length === repos.length });
  });
  const all = units.map((u) => checked.get(u)!);
  const search = opts.search;
  const lost = all.filter((c) => c.unit.from === undefined && c.from === undefined);
  if (search !== undefined && lost.length > 0 && perRepository) {
    progress({ kind: 'phase', phase: 'searching the target for blobs the bundle does not carry', items: lost.length, noun: 'blob' });
    await runLimited(lost, CHECK_CONCURRENCY, opts.signal, async (c) => {
      c.from = await search.locate(c.unit.desc, c.unit.repositories, c.unit.repositories[0] ?? '');
    });
  }
  return all;
}

/** Units the source does not carry that the checks found nowhere in the sink. */
export function absentBlobs(checked: readonly CheckedBlob[]): CheckedBlob[] {
  return checked.filter((c) => c.unit.from === undefined && c.from === undefined && c.missing.length > 0);
}

/**
 * The writing phase, after {@link checkBlobs}: mount what the sink holds elsewhere, then upload
 * the rest from the source (once, then mounted into the other repositories that need it).
 *
 * @returns one record per blob and repository
 * @throws the first failure (INTEGRITY for content that does not match its digest, AUTH, REGISTRY,
 *   NETWORK … from the sink, NOT_FOUND for a unit the source lacks that the sink declined to mount)
 */
export async function transferBlobs(checked: readonly CheckedBlob[], opts: TransferOptions): Promise<BlobTransfer[]> {
  const retry: BlobRetry = { ...DEFAULT_BLOB_RETRY, ...opts.retry };
  const { sink, progress } = opts;
  const mounting = sink.mounting;
  const transfers: BlobTransfer[] = [];
  const record = (unit: BlobUnit, repository: string, action: BlobTransfer['action']): void => {
    transfers.push({ digest: unit.desc.digest, size: unit.desc.size, repository, action });
  };
  for (const c of checked) for (const repository of c.present) record(c.unit, repository, 'present');

  const mountable = checked.filter((c) => c.from !== undefined && c.missing.length > 0);
  if (mountable.length > 0) progress({ kind: 'phase', phase: 'mounting blobs', items: mountable.length, noun: 'blob' });
  // Mounted where possible; what the sink declined to mount is uploaded with the rest.
  const declined = new Map<CheckedBlob, string[]>();
  await runLimited(mountable, CHECK_CONCURRENCY, opts.signal, async (c, signal) => {
    for (const repository of c.missing) {
      if (mounting !== undefined && (await mounting.mountBlob(repository, c.unit.desc, c.from!, { signal }))) record(c.unit, repository, 'mounted');
      else declined.set(c, [...(declined.get(c) ?? []), repository]);
    }
  });

  // Upload in plan order, whatever order the checks finished in.
  const todo = checked.map((c) => ({ unit: c.unit, missing: c.from === undefined ? c.missing : (declined.get(c) ?? []) })).filter((c) => c.missing.length > 0);
  const absent = todo.find((c) => c.unit.from === undefined);
  if (absent !== undefined) {
    throw new AirlockError(
      'NOT_FOUND',
      `blob ${absent.unit.desc.digest} of ${absent.unit.image} is not in this bundle (delta), and ${sink.description} declined to mount it into ${absent.missing[0]}`,
      {
        subject: absent.unit.desc.digest,
        hint: 'import the parent bundle again, into the same target, then this one',
      },
    );
  }
  const total = todo.reduce((n, c) => n + c.unit.desc.size, 0);
  progress({ kind: 'phase', phase: 'uploading blobs', total, items: todo.length, noun: 'blob' });
  // Large uploads are bounded by `concurrency` (the sink's ingest is the limit); small ones,
  // bound by round trips, run more at once.
  const large = new Semaphore(opts.concurrency);
  await runLimited(todo, Math.max(opts.concurrency, SMALL_REQUESTS_IN_FLIGHT), opts.signal, async ({ unit, missing }, signal) => {
    const [first, ...rest] = missing as [string, ...string[]];
    const release = unit.desc.size >= LARGE_BLOB_BYTES ? await large.acquire(signal) : () => undefined;
    progress({ kind: 'blob', digest: unit.desc.digest, size: unit.desc.size, image: unit.image });
    try {
      await uploadWithRetry(unit, first, opts, retry, signal);
    } finally {
      release();
    }
    record(unit, first, 'uploaded');
    for (const repository of rest) {
      if (mounting !== undefined && (await mounting.mountBlob(repository, unit.desc, first, { signal }))) {
        record(unit, repository, 'mounted');
      } else {
        await uploadWithRetry(unit, repository, { ...opts, progress: () => undefined }, retry, signal);
        record(unit, repository, 'uploaded');
      }
    }
  });
  return transfers;
}

/** Upload one blob into one repository from the source; retried whole, with a fresh stream. */
async function uploadWithRetry(unit: BlobUnit, repository: string, opts: TransferOptions, retry: BlobRetry, signal: AbortSignal): Promise<void> {
  const from = unit.from as BlobLocation;
  const what = `blob ${unit.desc.digest} of ${unit.image} (${from.source.description})`;
  for (let attempt = 1; ; attempt++) {
    let sent = 0;
    try {
      await uploadOnce(unit, repository, opts, what, signal, (n) => {
        sent += n;
        opts.progress({ kind: 'bytes', bytes: n });
      });
      return;
    } catch (err) {
      // The bytes of a failed attempt are sent again: take them back from the progress count.
      if (sent > 0) opts.progress({ kind: 'bytes', bytes: -sent });
      const retrying = opts.sink.retrying;
      if (signal.aborted || attempt >= retry.attempts || retrying === undefined || !retrying.isRetryable(err, sent > 0))
        throw withIntegrityHint(err, opts.integrity);
      opts.progress({
        kind: 'retry',
        what: `upload of ${shortDigest(unit.desc.digest)}… to ${repository}`,
        attempt: attempt + 1,
        attempts: retry.attempts,
        reason: retrying.describe(err),
      });
      await retry.sleep(backoffDelay(attempt - 1, retry), signal);
      if (await landedAnyway(opts.sink, repository, unit.desc, signal)) return;
    }
  }
}

/**
 * Upload a small blob held in memory (airlock's own bookkeeping, such as the import record), with
 * the same whole-blob retries as content: a fresh stream each attempt, and a look whether a lost
 * answer hid a success.
 */
export async function putSmallBlob(
  sink: Sink,
  repository: string,
  desc: Descriptor,
  bytes: Buffer,
  signal?: AbortSignal,
  retry: BlobRetry = DEFAULT_BLOB_RETRY,
): Promise<void> {
  const stop = signal ?? new AbortController().signal;
  for (let attempt = 1; ; attempt++) {
    try {
      await sink.putBlob(repository, desc, Readable.from([bytes]), { signal: stop });
      return;
    } catch (err) {
      // Resending bytes held in memory costs nothing: any retryable failure is worth another attempt.
      if (stop.aborted || attempt >= retry.attempts || sink.retrying?.isRetryable(err, true) !== true) throw err;
      await retry.sleep(backoffDelay(attempt - 1, retry), stop);
      if (await landedAnyway(sink, repository, desc, stop)) return;
    }
  }
}

/** After a lost connection the blob may have landed (the final request's answer was what got lost). */
async function landedAnyway(sink: Sink, repository: string, desc: Descriptor, signal: AbortSignal): Promise<boolean> {
  try {
    return await sink.hasBlob(repository, desc, { signal });
  } catch (err) {
    if (sink.retrying?.isRetryable(err, true) === true && !signal.aborted) return false;
    throw err;
  }
}

/**
 * One attempt: source stream → sink, with nothing in between but a byte count. The sink verifies
 * (the Sink contract): a registry computes the digest of what it receives and refuses the final
 * PUT of content that does not match (DIGEST_INVALID), so nothing unverified is ever committed; an
 * `oci:` layout hashes what it writes and renames only matching content. A second sha256 here would
 * repeat that check on the main thread (~0.65 s of CPU per GB). A bundle's entry stream yields
 * exactly the signed size or fails, and the registry client refuses a body that is short or long.
 * A stream failure ends the attempt at once.
 */
async function uploadOnce(
  unit: BlobUnit,
  repository: string,
  opts: TransferOptions,
  what: string,
  signal: AbortSignal,
  onBytes: (n: number) => void,
): Promise<void> {
  const { source, repository: fromRepository } = unit.from as BlobLocation;
  const body = await source.openBlob(fromRepository, unit.desc, { signal, onBytes });
  let failed: (err: unknown) => void = () => undefined;
  const streamFailed = new Promise<never>((_, reject) => (failed = reject));
  streamFailed.catch(() => undefined); // may fail after the race is decided: never unhandled
  body.on('error', (err) => failed(err));
  const put = opts.sink.putBlob(repository, unit.desc, body, { signal });
  let refused = false;
  put.catch(() => (refused = true));
  try {
    await Promise.race([put, streamFailed]);
  } catch (err) {
    // Let the sink clean up (cancel its upload session) before the failure is reported.
    await Promise.race([put.catch(() => undefined), delay(SINK_SETTLE_MS, undefined, { ref: false })]);
    throw refused && !body.errored ? refusedContent(err, unit, what, opts.integrity) : err;
  } finally {
    body.destroy();
  }
}

/**
 * The sink refused the content as not matching its digest: the source's bytes differ from what the
 * plan expects, so say so in the source's terms rather than the sink's.
 */
function refusedContent(err: unknown, unit: BlobUnit, what: string, wording: IntegrityWording): unknown {
  if (!isAirlockError(err, 'INTEGRITY')) return err;
  return new AirlockError('INTEGRITY', `${what}: content does not match its ${wording.digest} (${err.message})`, {
    subject: unit.desc.digest,
    hint: wording.hint,
    cause: err,
  });
}

/** An INTEGRITY error from reading the source, with the next step for the operator. */
function withIntegrityHint(err: unknown, wording: IntegrityWording): unknown {
  if (!isAirlockError(err, 'INTEGRITY') || err.hint !== undefined) return err;
  return new AirlockError('INTEGRITY', err.message, {
    ...(err.subject === undefined ? {} : { subject: err.subject }),
    ...(err.details === undefined ? {} : { details: err.details }),
    hint: wording.hint,
    cause: err,
  });
}
