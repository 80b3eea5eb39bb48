/**
 * Rollback and replay protection for `bundle import`, with the target's import record
 * (`import-state.ts`).
 *
 * Refused before anything is written (POLICY, naming the tag, both bundles and both dates):
 * - an expired bundle, unless `allowExpired`;
 * - a bundle that would move a tag to other content than what the record says a bundle of the
 *   same signer with a higher sequence (or the same sequence and a later `created`) set it to,
 *   unless `allowDowngrade`. That one rule also refuses a replay (a bundle imported before, whose
 *   tags a newer bundle has since moved) and an old signed head put at the front of a newer
 *   archive (its sequence is the old one).
 *
 * Not refused: a tag that already records this bundle's digest (a rerun, or another bundle with
 * the same content); a tag set by another signer (signers keep separate sequences: which keys are
 * trusted is the policy's business), with a warning when that bundle was created later; a tag the
 * record does not know (a first import, or a tag written by something else).
 *
 * The record is written when blobs and manifests are in place, just before the tags move: read
 * again, checked again (another import may have written it meanwhile) and merged. Written before
 * the tags rather than after, a crash between the two leaves the record ahead of the tags (a rerun
 * of the same bundle finishes the job), never the tags ahead of the record (which would let an
 * older bundle through).
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import { sequenceOf, type BundleManifest } from '../bundle/manifest.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import type { ImageMapping, ImportTarget } from '../names/import-names.js';
import { MAX_BUNDLE_HISTORY, stateRepository, type BundleRecord, type ImportState, type ImportStateStore, type TagRecord } from './import-state.js';

/** The bundle being imported, as the record sees it. */
export interface BundleIdentity {
  id: Digest;
  /** Key id of the trusted signer; null when accepted without one. */
  signer: string | null;
  sequence: number;
  created: string;
}

export function identityOf(id: Digest, bundle: BundleManifest, keyId: string | undefined): BundleIdentity {
  return { id, signer: keyId ?? null, sequence: sequenceOf(bundle), created: bundle.created };
}

/**
 * Refuse an expired bundle (POLICY), or warn when `allow` says to import it anyway.
 */
export function checkExpiry(path: string, bundle: BundleManifest, now: Date, allow: boolean, progress: ProgressListener = silent): void {
  if (bundle.expires === undefined || Date.parse(bundle.expires) > now.getTime()) return;
  const message = `${path}: the bundle expired at ${bundle.expires} (created ${bundle.created})`;
  if (allow) {
    progress({ kind: 'warning', message: `${message}; imported anyway because of --allow-expired` });
    return;
  }
  throw new AirlockError('POLICY', message, {
    subject: path,
    hint: 'nothing was written; ask its creator for a fresh bundle, or pass --allow-expired to import it anyway',
    details: { reason: 'expired', expires: bundle.expires, created: bundle.created, now: now.toISOString() },
  });
}

/** One tag this import writes. */
export interface TagMove {
  /** Record key: `REPOSITORY:TAG` in the target. */
  key: string;
  /** As the operator reads it: `HOST/REPOSITORY:TAG`, or `REPOSITORY:TAG` in a layout. */
  reference: string;
  digest: Digest;
}

export function tagMoves(mappings: readonly ImageMapping[]): TagMove[] {
  const moves = new Map<string, TagMove>();
  for (const m of mappings) {
    if (m.tag === undefined) continue;
    const key = `${m.repository}:${m.tag}`;
    moves.set(key, { key, reference: m.reference, digest: m.digest });
  }
  return [...moves.values()];
}

/**
 * Refuse images that would land on the reserved repository of the record.
 *
 * @throws USAGE naming the image
 */
export function checkReservedNames(mappings: readonly ImageMapping[], target: ImportTarget): void {
  if (target.kind !== 'registry') return;
  const reserved = stateRepository(target.prefix);
  const clash = mappings.find((m) => m.repository === reserved);
  if (clash === undefined) return;
  throw new AirlockError('USAGE', `image ${clash.name} would land as ${clash.reference}, the repository where airlock keeps its import record`, {
    subject: clash.name,
    hint: 'import it under another --to prefix, or without --strip-host',
  });
}

/** Why a move is refused. */
export type RefusalReason = 'downgrade' | 'replay' | 'same-sequence';

export interface Refusal {
  reason: RefusalReason;
  tag: string;
  /** What the record says set the tag. */
  current: TagRecord;
}

/** Same signer: > 0 when `a` is newer than `b`. Sequence first, then `created`. */
function compare(a: { sequence: number; created: string }, b: { sequence: number; created: string }): number {
  if (a.sequence !== b.sequence) return a.sequence - b.sequence;
  return Date.parse(a.created) - Date.parse(b.created);
}

/** What the record says about moving each tag. */
export function judge(state: ImportState, moves: readonly TagMove[], bundle: BundleIdentity): { refusals: Refusal[]; warnings: string[] } {
  const refusals: Refusal[] = [];
  const warnings: string[] = [];
  const seenBefore = state.bundles.some((b) => b.id === bundle.id);
  for (const move of moves) {
    const current = state.tags[move.key];
    if (current === undefined || current.digest === move.digest || current.bundle === bundle.id) continue;
    if (current.signer !== bundle.signer) {
      if (Date.parse(current.created) > Date.parse(bundle.created)) {
        warnings.push(
          `${move.reference} was set by bundle ${current.bundle} of ${signerName(current.signer)}, created ${current.created}, later than this bundle (${bundle.created}); moved anyway: different signers keep separate sequences`,
        );
      }
      continue;
    }
    const order = compare(bundle, current);
    if (order > 0) continue;
    refusals.push({ reason: order === 0 ? 'same-sequence' : seenBefore ? 'replay' : 'downgrade', tag: move.reference, current });
  }
  return { refusals, warnings };
}

function signerName(signer: string | null): string {
  return signer === null ? 'no trusted signer' : `key ${signer}`;
}

function describe(b: { bundle?: Digest; id?: Digest; sequence: number; created: string }): string {
  return `bundle ${b.bundle ?? b.id} (sequence ${b.sequence}, created ${b.created})`;
}

/** The POLICY error for `refusals` (at least one). */
export function refusalError(path: string, where: string, bundle: BundleIdentity, refusals: readonly Refusal[]): AirlockError {
  const first = refusals[0]!;
  const more = refusals.length > 1 ? ` (and ${refusals.length - 1} more tag${refusals.length > 2 ? 's' : ''})` : '';
  const signer = signerName(bundle.signer);
  const c = first.current;
  let message: string;
  if (first.reason === 'replay') {
    message = `${path}: refusing to replay ${describe(bundle)}: it was imported before, and since then ${describe(c)} of the same signer (${signer}) moved ${first.tag} to ${c.digest}${more}`;
  } else if (first.reason === 'same-sequence') {
    message = `${path}: refusing to move ${first.tag}: ${describe(bundle)} and ${describe(c)}, which set it to ${c.digest}, have the same signer (${signer}), sequence and date: neither is newer${more}`;
  } else {
    message = `${path}: refusing to move ${first.tag} back: ${describe(bundle)} is older than ${describe(c)} of the same signer (${signer}), which set it to ${c.digest}${more}`;
  }
  return new AirlockError('POLICY', message, {
    subject: first.tag,
    hint: `nothing was tagged; import a bundle at least as new as ${c.bundle}, or pass --allow-downgrade to roll back on purpose (the record is ${where})`,
    details: {
      reason: first.reason,
      bundle,
      record: where,
      refused: refusals.map((r) => ({ tag: r.tag, reason: r.reason, current: r.current })),
    },
  });
}

/**
 * The record after this import: every tag it writes names this bundle, except a tag whose record
 * already has this digest from a bundle at least as new (a rerun of an older bundle does not make
 * the record forget the newer one); this bundle goes last in the history.
 */
export function applyImport(state: ImportState, moves: readonly TagMove[], bundle: BundleIdentity, now: Date): ImportState {
  const imported = now.toISOString();
  const tags: Record<string, TagRecord> = Object.assign(Object.create(null) as Record<string, TagRecord>, state.tags);
  for (const move of moves) {
    const current = tags[move.key];
    const keep = current !== undefined && current.digest === move.digest && !(current.signer === bundle.signer && compare(bundle, current) > 0);
    if (keep) continue;
    tags[move.key] = { digest: move.digest, bundle: bundle.id, signer: bundle.signer, sequence: bundle.sequence, created: bundle.created, imported };
  }
  const entry: BundleRecord = { id: bundle.id, signer: bundle.signer, sequence: bundle.sequence, created: bundle.created, imported };
  const bundles = [...state.bundles.filter((b) => b.id !== bundle.id), entry].slice(-MAX_BUNDLE_HISTORY);
  return { ...state, updated: imported, tags, bundles };
}

export interface GuardOptions {
  path: string;
  store: ImportStateStore;
  bundle: BundleIdentity;
  moves: readonly TagMove[];
  allowDowngrade: boolean;
  now?: () => Date;
  progress?: ProgressListener;
  signal?: AbortSignal;
}

/**
 * The rollback check of one import: {@link RollbackGuard.open} reads the record and refuses
 * before anything is written; {@link RollbackGuard.record} re-reads, re-checks and writes it just
 * before the tags move.
 */
export class RollbackGuard {
  readonly #opts: GuardOptions;

  private constructor(opts: GuardOptions) {
    this.#opts = opts;
  }

  /** Where the record is kept, for messages and results. */
  get where(): string {
    return this.#opts.store.where;
  }

  /** @throws POLICY when the record refuses a tag (unless `allowDowngrade`); the store's errors */
  static async open(opts: GuardOptions): Promise<RollbackGuard> {
    const guard = new RollbackGuard(opts);
    guard.#check(await opts.store.read(opts.signal === undefined ? {} : { signal: opts.signal }), true);
    return guard;
  }

  /** Re-read the record, check it again, merge this import in and write it. */
  async record(signal?: AbortSignal): Promise<void> {
    const call = signal === undefined ? {} : { signal };
    const state = await this.#opts.store.read(call);
    this.#check(state, false);
    const now = this.#opts.now?.() ?? new Date();
    await this.#opts.store.write(applyImport(state, this.#opts.moves, this.#opts.bundle, now), call);
  }

  #check(state: ImportState, report: boolean): void {
    const o = this.#opts;
    const progress = o.progress ?? silent;
    const { refusals, warnings } = judge(state, o.moves, o.bundle);
    if (report) for (const message of warnings) progress({ kind: 'warning', message });
    if (refusals.length === 0) return;
    const err = refusalError(o.path, o.store.where, o.bundle, refusals);
    if (!o.allowDowngrade) throw err;
    if (report) progress({ kind: 'warning', message: `${err.message}; moved anyway because of --allow-downgrade` });
  }
}
