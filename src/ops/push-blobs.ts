/**
 * Bringing blobs from a bundle into a sink: skip what is there (HEAD), mount what sits in another
 * repository of the target, upload the rest straight from the archive.
 *
 * Two phases. Checking, which writes nothing: every blob is looked for (HEAD) in every repository
 * that needs it, and a blob a delta does not carry, when none of them has it, further in the target
 * (import-external.ts); the caller stops there if such a blob is nowhere. Writing: where one
 * repository has a blob, the others mount it from there; each missing blob is read from its own
 * archive entry and uploaded once, the sink checking it against the SIGNED digest and size (see
 * {@link uploadOnce}), then mounted into the other repositories that need it. A failed upload is retried whole, with a fresh
 * entry stream (the registry client retries requests, never a body already in flight); before a
 * retry the blob is looked for again, since a lost response to the final PUT means it landed.
 */
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { AirlockError, isAirlockError } from '../errors.js';
import { shortDigest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { RegistryHttpError } from '../registry/errors.js';
import { failureReason } from '../registry/events.js';
import { backoffDelay, DEFAULT_RETRY, isTemporary } from '../registry/retry.js';
import { canMount, type Sink } from '../transport/types.js';
import type { ArchiveReader } from '../bundle/archive-reader.js';
import type { ProgressListener } from '../copy/progress.js';
import { Semaphore } from '../registry/semaphore.js';
import { runLimited } from '../copy/run-limited.js';
import { LARGE_BLOB_BYTES, SMALL_REQUESTS_IN_FLIGHT } from './import-limit.js';
import { DAMAGED_BUNDLE_HINT, withDamagedHint, type BlobUnit } from './import-plan.js';
import type { TargetSearch } from './import-external.js';

/**
 * Existence checks (HEAD) and mounts in flight during the checking phase: 8. They carry no body,
 * so more than the upload limit costs the registry little and hides round trips to a remote one.
 */
export const CHECK_CONCURRENCY = 8;

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
  sleep: DEFAULT_RETRY.sleep,
  random: Math.random,
};

/** What happened to one blob in one repository. */
export interface BlobTransfer {
  digest: string;
  size: number;
  repository: string;
  action: 'present' | 'mounted' | 'uploaded';
}

export interface PushBlobsOptions {
  sink: Sink;
  reader: ArchiveReader;
  /** Uploads in flight at once. */
  concurrency: number;
  signal?: AbortSignal;
  progress: ProgressListener;
  retry?: Partial<BlobRetry>;
}

/** True for failures a fresh attempt may not meet again: connection loss, 429, 5xx, an expired session. */
export function isRetryableUpload(err: unknown): boolean {
  if (err instanceof RegistryHttpError) {
    return err.status === 408 || err.status === 429 || err.status >= 500 || isExpiredSession(err);
  }
  if (isAirlockError(err)) return err.code === 'NETWORK' || err.code === 'RATE_LIMITED';
  return isTemporary(err, { idempotent: true, contacted: true });
}

/** The registry dropped or replaced the upload session: a new one will do. */
function isExpiredSession(err: unknown): boolean {
  return err instanceof RegistryHttpError && err.registryErrors.some((e) => e.code === 'BLOB_UPLOAD_INVALID' || e.code === 'BLOB_UPLOAD_UNKNOWN');
}

/** A unit's state after the checking phase: where it already is and which repositories still lack it. */
export interface CheckedBlob {
  unit: BlobUnit;
  /** Repositories that need it and hold it. */
  present: string[];
  /** A repository of the target holding it to mount from (one that needs it, or one a search found). */
  from: string | undefined;
  /** Repositories that need it and lack it. */
  missing: string[];
}

export interface CheckBlobsOptions {
  sink: Sink;
  signal?: AbortSignal;
  progress: ProgressListener;
  /** Where to look further for blobs the bundle does not carry (a delta's external blobs). */
  search?: TargetSearch;
}

/**
 * The checking phase, which writes nothing: every unit is looked for (HEAD) in every repository
 * that needs it (a sink without repositories: once); an external blob found in none of them is
 * then looked for by `search`.
 */
export async function checkBlobs(units: readonly BlobUnit[], opts: CheckBlobsOptions): Promise<CheckedBlob[]> {
  const { sink, progress } = opts;
  const perRepository = canMount(sink);
  progress({ kind: 'phase', phase: 'checking target', items: units.length });
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
  const lost = all.filter((c) => c.unit.entry === undefined && c.from === undefined);
  if (search !== undefined && lost.length > 0 && perRepository) {
    progress({ kind: 'phase', phase: 'searching the target for blobs the bundle does not carry', items: lost.length });
    await runLimited(lost, CHECK_CONCURRENCY, opts.signal, async (c) => {
      c.from = await search.locate(c.unit.desc, c.unit.repositories, c.unit.repositories[0] ?? '');
    });
  }
  return all;
}

/** External blobs (not in the bundle) that the checks found nowhere in the target. */
export function absentBlobs(checked: readonly CheckedBlob[]): CheckedBlob[] {
  return checked.filter((c) => c.unit.entry === undefined && c.from === undefined && c.missing.length > 0);
}

/**
 * Bring every unit into every repository that needs it.
 *
 * @returns one record per blob and repository
 * @throws the first failure (INTEGRITY for content that does not match the signed manifest,
 *   AUTH/REGISTRY/NETWORK… from the sink, NOT_FOUND for an external blob the target lacks)
 */
export async function pushBlobs(units: readonly BlobUnit[], opts: PushBlobsOptions & { search?: TargetSearch }): Promise<BlobTransfer[]> {
  const checked = await checkBlobs(units, opts);
  const absent = absentBlobs(checked)[0];
  if (absent !== undefined) {
    throw new AirlockError('NOT_FOUND', `blob ${absent.unit.desc.digest} of ${absent.unit.image} is not in this bundle (delta) and not in ${absent.missing[0]} on ${opts.sink.description}`, {
      subject: absent.unit.desc.digest,
      hint: 'import the parent bundle first, into the same target',
    });
  }
  return transferBlobs(checked, opts);
}

/**
 * The writing phase, after {@link checkBlobs}: mount what the target holds elsewhere, then upload
 * the rest from the archive (once, then mounted into the other repositories that need it).
 */
export async function transferBlobs(checked: readonly CheckedBlob[], opts: PushBlobsOptions): Promise<BlobTransfer[]> {
  const retry: BlobRetry = { ...DEFAULT_BLOB_RETRY, ...opts.retry };
  const { sink, progress } = opts;
  const transfers: BlobTransfer[] = [];
  const record = (unit: BlobUnit, repository: string, action: BlobTransfer['action']): void => {
    transfers.push({ digest: unit.desc.digest, size: unit.desc.size, repository, action });
  };
  for (const c of checked) for (const repository of c.present) record(c.unit, repository, 'present');

  const mountable = checked.filter((c) => c.from !== undefined && c.missing.length > 0);
  if (mountable.length > 0) progress({ kind: 'phase', phase: 'mounting blobs', items: mountable.length });
  // Mounted where possible; what a registry declined to mount is uploaded with the rest.
  const declined = new Map<CheckedBlob, string[]>();
  await runLimited(mountable, CHECK_CONCURRENCY, opts.signal, async (c, signal) => {
    for (const repository of c.missing) {
      if (canMount(sink) && (await sink.mountBlob(repository, c.unit.desc, c.from!, { signal }))) record(c.unit, repository, 'mounted');
      else declined.set(c, [...(declined.get(c) ?? []), repository]);
    }
  });

  // Upload in plan (bundle) order, whatever order the checks finished in.
  const todo = checked
    .map((c) => ({ unit: c.unit, missing: c.from === undefined ? c.missing : (declined.get(c) ?? []) }))
    .filter((c) => c.missing.length > 0);
  const absent = todo.find((c) => c.unit.entry === undefined);
  if (absent !== undefined) {
    throw new AirlockError('NOT_FOUND', `blob ${absent.unit.desc.digest} of ${absent.unit.image} is not in this bundle (delta), and ${sink.description} declined to mount it into ${absent.missing[0]}`, {
      subject: absent.unit.desc.digest,
      hint: 'import the parent bundle again, into the same target, then this one',
    });
  }
  const total = todo.reduce((n, c) => n + c.unit.desc.size, 0);
  progress({ kind: 'phase', phase: 'uploading blobs', total, items: todo.length });
  // Large uploads are bounded by `concurrency` (the registry's ingest is the limit); small ones,
  // bound by round trips, run more at once.
  const large = new Semaphore(opts.concurrency);
  await runLimited(todo, Math.max(opts.concurrency, SMALL_REQUESTS_IN_FLIGHT), opts.signal, async ({ unit, missing }, signal) => {
    const [first, ...rest] = missing as [string, ...string[]];
    const release = unit.desc.size >= LARGE_BLOB_BYTES ? await large.acquire(signal) : () => undefined;
    try {
      await uploadWithRetry(unit, first, opts, retry, signal);
    } finally {
      release();
    }
    record(unit, first, 'uploaded');
    for (const repository of rest) {
      if (canMount(sink) && (await sink.mountBlob(repository, unit.desc, first, { signal }))) {
        record(unit, repository, 'mounted');
      } else {
        await uploadWithRetry(unit, repository, { ...opts, progress: () => undefined }, retry, signal);
        record(unit, repository, 'uploaded');
      }
    }
  });
  return transfers;
}

/** Upload one blob into one repository from its archive entry; retried whole, with a fresh stream. */
async function uploadWithRetry(unit: BlobUnit, repository: string, opts: PushBlobsOptions, retry: BlobRetry, signal: AbortSignal): Promise<void> {
  const what = `blob ${unit.desc.digest} of ${unit.image} (${opts.reader.path})`;
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
      // Nothing flowed: the failure was in a request the client already retried (the POST).
      const worthIt = sent > 0 || isExpiredSession(err);
      if (signal.aborted || attempt >= retry.attempts || !worthIt || !isRetryableUpload(err)) throw withDamagedHint(err);
      opts.progress({
        kind: 'retry',
        what: `upload of ${shortDigest(unit.desc.digest)}… to ${repository}`,
        attempt: attempt + 1,
        attempts: retry.attempts,
        reason: failureReason(err),
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
export async function putSmallBlob(sink: Sink, repository: string, desc: Descriptor, bytes: Buffer, signal?: AbortSignal, retry: BlobRetry = DEFAULT_BLOB_RETRY): Promise<void> {
  const stop = signal ?? new AbortController().signal;
  for (let attempt = 1; ; attempt++) {
    try {
      await sink.putBlob(repository, desc, Readable.from([bytes]), { signal: stop });
      return;
    } catch (err) {
      if (stop.aborted || attempt >= retry.attempts || !isRetryableUpload(err)) throw err;
      await retry.sleep(backoffDelay(attempt - 1, retry), stop);
      if (await landedAnyway(sink, repository, desc, stop)) return;
    }
  }
}

/** After a lost connection the blob may have landed (the final PUT's answer was what got lost). */
async function landedAnyway(sink: Sink, repository: string, desc: Descriptor, signal: AbortSignal): Promise<boolean> {
  try {
    return await sink.hasBlob(repository, desc, { signal });
  } catch (err) {
    if (isRetryableUpload(err) && !signal.aborted) return false;
    throw err;
  }
}

/**
 * One attempt: archive entry → sink, with nothing in between but a byte count. The sink verifies
 * (the Sink contract): a registry computes the digest of what it receives and refuses the final
 * PUT of content that does not match the signed digest (DIGEST_INVALID), so nothing unverified is
 * ever committed; an `oci:` layout hashes what it writes and renames only matching content. A
 * second sha256 here would repeat that check on the main thread (~0.65 s of CPU per GB, measured:
 * bench/README.md). The entry reader yields exactly the signed size or fails, and the registry
 * client refuses a body that is short or long. A stream failure ends the attempt at once.
 */
async function uploadOnce(unit: BlobUnit, repository: string, opts: PushBlobsOptions, what: string, signal: AbortSignal, onBytes: (n: number) => void): Promise<void> {
  const entry = opts.reader.openEntry(unit.entry as string, { onBytes });
  let failed: (err: unknown) => void = () => undefined;
  const streamFailed = new Promise<never>((_, reject) => (failed = reject));
  streamFailed.catch(() => undefined); // may fail after the race is decided: never unhandled
  entry.on('error', (err) => failed(err));
  const put = opts.sink.putBlob(repository, unit.desc, entry, { signal });
  put.catch(() => undefined);
  try {
    await Promise.race([put, streamFailed]);
  } catch (err) {
    // Let the sink clean up (cancel its upload session) before the failure is reported.
    await Promise.race([put.catch(() => undefined), delay(SINK_SETTLE_MS, undefined, { ref: false })]);
    throw refusedContent(err, unit, what);
  } finally {
    entry.destroy();
  }
}

/**
 * The registry refused the content as not matching its digest (DIGEST_INVALID): the archive entry
 * differs from what was signed, so say so in the bundle's terms rather than the registry's.
 */
function refusedContent(err: unknown, unit: BlobUnit, what: string): unknown {
  if (!(err instanceof RegistryHttpError) || err.code !== 'INTEGRITY') return err;
  return new AirlockError('INTEGRITY', `${what}: content does not match its signed digest (${err.message})`, {
    subject: unit.desc.digest,
    hint: DAMAGED_BUNDLE_HINT,
    cause: err,
  });
}
