/**
 * The checks that make a set of `--since` PREVs one consistent history before a delta is built
 * on it: no parent younger than its child and no cycle, every PREV agreeing with what the others
 * record about it (a mismatched base), one size per digest, no stale inventory. All failures are
 * INPUT_INVALID and happen before anything is fetched or written.
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import type { BundleParent, ExternalBlob } from '../bundle/manifest.js';

/**
 * An inventory older than 30 days is refused: mirrors are refreshed daily or weekly, so a month-old
 * snapshot has missed several refreshes and any pruning since; a fresh one costs one command.
 */
export const DEFAULT_MAX_INVENTORY_AGE_MS = 30 * 24 * 3600 * 1000;

/**
 * Clocks of the connected side and the machines that made PREVs may differ a little: 10 minutes
 * of "created in the future" is tolerated, more is an error.
 */
export const CLOCK_SKEW_MS = 10 * 60 * 1000;

/** RFC 3339 UTC, as bundle.json `created` (and so `parents[].created`) must be. */
const UTC_TIME_RE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$/;

/** One PREV as read: what it delivered and what it says about its own history. */
export interface Prev {
  path: string;
  kind: 'bundle' | 'inventory';
  id: Digest;
  created: string;
  /** Key id of its signer, when signed and (for a signed delta) checked. */
  keyId?: string;
  /** Digest → size: a bundle's carried blobs, an inventory's listed blobs. */
  delivered: ReadonlyMap<Digest, number>;
  /** A delta bundle's own external blobs (never counted as delivered by it). */
  external: readonly ExternalBlob[];
  /** A delta bundle's own parents. */
  parents: readonly BundleParent[];
}

function invalid(message: string, subject: string, hint: string): AirlockError {
  return new AirlockError('INPUT_INVALID', message, { subject, hint });
}

/** @throws INPUT_INVALID when the inventory is not dated in UTC, is older than `maxAgeMs` or from the future */
export function checkInventoryAge(prev: Prev, now: Date, maxAgeMs: number): void {
  const hint = 'make a fresh inventory on the secure side: airlock inventory … > have.json';
  const at = Date.parse(prev.created);
  if (!UTC_TIME_RE.test(prev.created) || Number.isNaN(at)) {
    throw invalid(`inventory ${prev.path}: created ${JSON.stringify(prev.created)} is not an RFC 3339 UTC time`, prev.path, hint);
  }
  const age = now.getTime() - at;
  if (age > maxAgeMs) {
    const days = Math.floor(age / 86_400_000);
    throw invalid(
      `inventory ${prev.path} is stale: made ${prev.created}, ${days} days ago (at most ${Math.round(maxAgeMs / 86_400_000)} accepted); the target may have changed since`,
      prev.path,
      `${hint}, or accept it with --max-inventory-age DAYS`,
    );
  }
  if (age < -CLOCK_SKEW_MS) {
    throw invalid(`inventory ${prev.path} was made ${prev.created}, after this bundle (${now.toISOString()})`, prev.path, 'check the clocks of both sides');
  }
}

/**
 * Check that the PREVs form one history. Each PREV must be older than the new bundle (`now`)
 * and than any PREV that names it as a parent, parents must not form a cycle, what a PREV records
 * about another PREV given here (its created time, kind, signer, the blobs it says that one
 * delivered) must be true, and one digest must have one size everywhere.
 *
 * @throws INPUT_INVALID naming the PREVs involved
 */
export function checkChain(prevs: readonly Prev[], now: Date): void {
  const byId = new Map(prevs.map((p) => [p.id as string, p]));
  const cycleHint = 'a bundle can only build on older bundles: check which files were passed with --since';
  const baseHint = 'the --since files do not belong to one history: pass the bundles this delta really follows';
  for (const p of prevs) {
    if (Date.parse(p.created) - now.getTime() > CLOCK_SKEW_MS) {
      throw invalid(`cycle: ${p.path} was created ${p.created}, after this bundle (${now.toISOString()})`, p.path, cycleHint);
    }
    for (const parent of p.parents) {
      if (parent.id === p.id || Date.parse(parent.created) > Date.parse(p.created)) {
        throw invalid(`cycle: ${p.path} (created ${p.created}) names ${parent.id} (created ${parent.created}) as its parent`, p.path, cycleHint);
      }
      const given = byId.get(parent.id);
      if (given === undefined) continue;
      const same =
        given.created === parent.created &&
        given.kind === parent.kind &&
        (parent.keyId === undefined || given.keyId === undefined || given.keyId === parent.keyId);
      if (!same) {
        throw invalid(
          `mismatched base: ${p.path} records parent ${parent.id} as ${describe(parent)}, but ${given.path} is ${describe(given)}`,
          p.path,
          baseHint,
        );
      }
    }
    for (const e of p.external) {
      const given = byId.get(e.bundle);
      if (given === undefined) continue;
      const size = given.delivered.get(e.digest);
      if (size !== e.size) {
        throw invalid(
          `mismatched base: ${p.path} expects ${e.digest} (${e.size} bytes) from ${given.path}, which ${size === undefined ? 'does not deliver it' : `lists it as ${size} bytes`}`,
          p.path,
          baseHint,
        );
      }
    }
  }
  const cycle = findCycle(prevs, byId);
  if (cycle !== undefined) throw invalid(`cycle: ${cycle.join(' → ')}`, cycle[0]!, cycleHint);
  checkSizes(prevs, baseHint);
}

function describe(p: { kind: string; created: string; keyId?: string }): string {
  return `a ${p.kind} created ${p.created}${p.keyId === undefined ? '' : ` signed by ${p.keyId}`}`;
}

/** Paths of a parent cycle among the PREVs, if there is one (depth-first, colouring). */
function findCycle(prevs: readonly Prev[], byId: ReadonlyMap<string, Prev>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: Prev[] = [];
  const visit = (p: Prev): string[] | undefined => {
    if (state.get(p.id) === 'done') return undefined;
    if (state.get(p.id) === 'open') return [...stack.slice(stack.indexOf(p)), p].map((q) => q.path);
    state.set(p.id, 'open');
    stack.push(p);
    for (const parent of p.parents) {
      const next = byId.get(parent.id);
      const found = next === undefined ? undefined : visit(next);
      if (found !== undefined) return found;
    }
    stack.pop();
    state.set(p.id, 'done');
    return undefined;
  };
  for (const p of prevs) {
    const found = visit(p);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** One digest, one size: two PREVs disagreeing means one of them is not what it claims. */
function checkSizes(prevs: readonly Prev[], hint: string): void {
  const seen = new Map<string, { size: number; path: string }>();
  for (const p of prevs) {
    for (const [digest, size] of p.delivered) {
      const other = seen.get(digest);
      if (other === undefined) seen.set(digest, { size, path: p.path });
      else if (other.size !== size) {
        throw invalid(`mismatched base: ${digest} is ${other.size} bytes in ${other.path} but ${size} bytes in ${p.path}`, digest, hint);
      }
    }
  }
}
