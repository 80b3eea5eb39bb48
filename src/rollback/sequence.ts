/**
 * The `sequence` of a new bundle: a number that only grows from one bundle of a signer to the
 * next, so that `bundle import` can refuse to move a tag back to an older bundle's content.
 *
 * By default it is the largest of
 * - the creation time in whole seconds since 1970: two machines sharing a key, a CI job whose files
 *   are thrown away after each run, or a fresh machine all keep growing with the clock and need no
 *   shared state (a counter kept only in a file would start again at 1 on each of them, and every
 *   import after the first would be refused as a rollback);
 * - the last sequence this key used here + 1, from `KEY.sequence` beside the private key: a clock
 *   stepped back, or two bundles within one second, still grow;
 * - the largest sequence of the `--since` parents + 1: a delta is newer than what it builds on.
 *
 * `--sequence N` sets it explicitly (a release number, say); it must still be above the recorded
 * one and the parents'. Lowering it on purpose means editing or deleting `KEY.sequence`: a flag
 * that silently allowed it would be one typo away from a bundle every target refuses.
 *
 * The file is a small JSON document naming the key it belongs to, written atomically (temp +
 * rename). A file left by another key (the key was regenerated under the same name) is ignored
 * with a warning and replaced. Reading, choosing and writing happen under `KEY.sequence.lock`
 * (created exclusively), so two creates with one key on one machine never take the same number.
 * Where the key's directory is read-only (a mounted secret), there is no record: a warning says
 * so, and the sequence comes from the clock and the parents alone.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import { writeFileAtomic } from '../layout/atomic.js';
import { readHeadFile } from '../copy/since.js';
import type { ProgressListener } from '../copy/progress.js';

/** Largest sequence accepted: the largest integer JSON numbers carry exactly. */
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER;

/** A sequence file is a few dozen bytes; anything near this is not one. */
const MAX_SEQUENCE_FILE_BYTES = 64 << 10;

/** What `KEY.sequence` holds. */
interface SequenceRecord {
  keyId: string;
  sequence: number;
  /** The bundle that used it, for the operator's eyes. */
  bundle?: string;
  updated: string;
}

/** The state file of a private key: `KEY.sequence` beside it. */
export function sequenceFileFor(keyPath: string): string {
  return `${keyPath}.sequence`;
}

/**
 * The last sequence `keyId` used according to `file`; 0 when there is no file, or it belongs to
 * another key (then a warning says so).
 *
 * @throws INPUT_INVALID when the file exists but is not a sequence record
 */
export async function readRecordedSequence(file: string, keyId: string, progress: ProgressListener): Promise<number> {
  let text: Buffer;
  try {
    text = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new AirlockError('IO', `cannot read ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const bad = (why: string): AirlockError =>
    new AirlockError('INPUT_INVALID', `${file} is not a sequence record: ${why}`, {
      subject: file,
      hint: 'it keeps the last bundle sequence of the key beside it; delete it (the next bundle then takes its sequence from the clock) or pass --sequence N',
    });
  if (text.length > MAX_SEQUENCE_FILE_BYTES) throw bad('far too large');
  let doc: Partial<SequenceRecord>;
  try {
    doc = JSON.parse(text.toString('utf8')) as Partial<SequenceRecord>;
  } catch {
    throw bad('not JSON');
  }
  if (doc === null || typeof doc !== 'object' || typeof doc.keyId !== 'string' || !isSequence(doc.sequence)) {
    throw bad('expected {"keyId": …, "sequence": N}');
  }
  if (doc.keyId !== keyId) {
    progress({ kind: 'warning', message: `${file} belongs to key ${doc.keyId}, not ${keyId}: ignored (it is replaced by this key's)` });
    return 0;
  }
  return doc.sequence;
}

/** How long create waits for another create's hold on the record: 10 s (a hold lasts milliseconds). */
const LOCK_WAIT_MS = 10_000;
/** A lock older than this was left by a process that died holding it: 60 s. */
const STALE_LOCK_MS = 60_000;
/** Poll interval while another create holds the lock. */
const LOCK_POLL_MS = 50;

/** Errors that mean "this directory cannot be written", not "something broke". */
const READ_ONLY = new Set(['EACCES', 'EPERM', 'EROFS']);

/**
 * Run `fn` holding `FILE.lock`. Resolves to undefined, after a warning, when the directory cannot
 * be written at all (no record can be kept there).
 *
 * @throws IO when another create holds the lock for more than {@link LOCK_WAIT_MS}
 */
export async function withSequenceLock<T>(file: string, fn: () => Promise<T>, progress: ProgressListener, signal?: AbortSignal): Promise<T | undefined> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await open(lock, 'wx', 0o644)).close();
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (READ_ONLY.has(code)) {
        progress({ kind: 'warning', message: `cannot keep ${file} (${code}): this bundle's sequence comes from the clock and the --since parents alone` });
        return undefined;
      }
      if (code !== 'EEXIST') throw new AirlockError('IO', `cannot create ${lock}: ${(err as Error).message}`, { subject: lock, cause: err });
      const held = await stat(lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (held > STALE_LOCK_MS) {
        await unlink(lock).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) {
        throw new AirlockError('IO', `${lock} is held by another bundle create with the same key`, {
          subject: lock,
          hint: `wait for it to finish; if no bundle create is running, delete ${lock}`,
        });
      }
      await sleep(LOCK_POLL_MS, undefined, signal === undefined ? {} : { signal });
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/** Write `file` atomically: `keyId` used `sequence` for `bundle`. */
export async function recordSequence(file: string, keyId: string, sequence: number, bundle: Digest, now: Date): Promise<void> {
  const record: SequenceRecord = { keyId, sequence, bundle, updated: now.toISOString() };
  await writeFileAtomic(file, Buffer.from(JSON.stringify(record, null, 2) + '\n'));
}

export function isSequence(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= MAX_SEQUENCE;
}

/**
 * The largest sequence among the `--since` files that are bundles (their heads are read again;
 * `loadSince` has already checked them); 0 when none has one.
 */
export async function parentSequence(since: readonly string[]): Promise<number> {
  let max = 0;
  for (const path of since) {
    try {
      max = Math.max(max, (await readHeadFile(path)).manifest.sequence ?? 0);
    } catch {
      // An inventory: it orders nothing.
    }
  }
  return max;
}

/** What the sequence of a new bundle is chosen from. */
export interface SequenceInputs {
  /** `--sequence N`. */
  explicit?: number;
  /** The last one this key used here (0: none). */
  recorded: number;
  /** Where `recorded` came from, for messages. */
  file?: string;
  /** The largest sequence of the `--since` parents (0: none). */
  parents: number;
}

/**
 * The sequence of a bundle created at `created` (see the module comment).
 *
 * @throws USAGE when `--sequence` is not above the recorded one or the parents'
 */
export function chooseSequence(inputs: SequenceInputs, created: Date): number {
  const floor = Math.max(inputs.recorded, inputs.parents);
  if (inputs.explicit !== undefined) {
    if (inputs.explicit <= inputs.recorded) {
      throw new AirlockError(
        'USAGE',
        `--sequence ${inputs.explicit}: this key already made sequence ${inputs.recorded} (recorded in ${inputs.file ?? 'its sequence file'})`,
        {
          subject: inputs.file,
          hint: `give a number above ${inputs.recorded}, or leave --sequence out; to go back on purpose, edit or delete ${inputs.file ?? 'the sequence file'} first (targets that imported the newer bundles will refuse this one)`,
        },
      );
    }
    if (inputs.explicit <= inputs.parents) {
      throw new AirlockError(
        'USAGE',
        `--sequence ${inputs.explicit}: a --since parent has sequence ${inputs.parents}; a delta must be newer than what it builds on`,
        {
          hint: `give a number above ${inputs.parents}, or leave --sequence out`,
        },
      );
    }
    return inputs.explicit;
  }
  const next = Math.max(floor + 1, Math.floor(created.getTime() / 1000));
  if (!isSequence(next)) throw new AirlockError('USAGE', `the next sequence would be ${next}, beyond ${MAX_SEQUENCE}`, { subject: inputs.file });
  return next;
}

/** Units of `--expires`: seconds, minutes, hours, days, weeks. */
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** The longest `--expires` accepted: 100 years keeps every date a 4-digit year. */
const MAX_EXPIRY_MS = 100 * 365 * 86_400_000;

/**
 * Parse `--expires`: one or more NUMBER+UNIT (`30d`, `12h`, `1d12h`, `90m`, `1w`, `45s`).
 *
 * @throws USAGE for anything else, zero, or more than 100 years
 */
export function parseDuration(text: string): number {
  const hint = 'write it as NUMBER+UNIT with s, m, h, d or w, e.g. 30d, 12h or 1d12h';
  if (!/^(?:\d{1,9}[smhdw])+$/.test(text)) throw new AirlockError('USAGE', `--expires ${text}: not a duration`, { hint });
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhdw])/g)) ms += Number(n) * UNIT_MS[unit!]!;
  if (ms <= 0) throw new AirlockError('USAGE', `--expires ${text}: must be longer than 0`, { hint });
  if (ms > MAX_EXPIRY_MS) throw new AirlockError('USAGE', `--expires ${text}: longer than 100 years`, { hint });
  return ms;
}
