/**
 * The rules of rollback protection on their own: which tag moves the import record refuses, how
 * the record is merged, what a damaged record does, and the guard's second check just before the
 * tags move (another importer wrote a newer bundle meanwhile).
 */
import { describe, expect, it } from 'vitest';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import { applyImport, checkExpiry, checkReservedNames, judge, RollbackGuard, type BundleIdentity, type TagMove } from '../../src/rollback/import-rollback.js';
import { mapImages, parseImportTarget } from '../../src/names/import-names.js';
import { emptyState, MAX_BUNDLE_HISTORY, parseImportState, serializeImportState, type ImportState } from '../../src/rollback/import-state.js';
import type { BundleManifest } from '../../src/bundle/manifest.js';
import { MemoryStateStore } from '../support/memory-state.js';

const d = (s: string): Digest => sha256Digest(s);
const KEY = d('key-a');
const OTHER = d('key-b');
const NOW = new Date('2026-12-01T10:00:00Z');

function bundle(name: string, sequence: number, created: string, signer: string | null = KEY): BundleIdentity {
  return { id: d(name), signer, sequence, created };
}

const move = (tag: string, digest: string): TagMove => ({ key: `m/quay.io/x/app:${tag}`, reference: `reg/m/quay.io/x/app:${tag}`, digest: d(digest) });

const B1 = bundle('b1', 10, '2026-11-01T00:00:00Z');
const B2 = bundle('b2', 20, '2026-11-08T00:00:00Z');

function after(...steps: Array<[BundleIdentity, TagMove[]]>): ImportState {
  return steps.reduce((s, [b, moves]) => applyImport(s, moves, b, NOW), emptyState());
}

describe('judge', () => {
  const state = after([B1, [move('1', 'old'), move('2', 'lib')]], [B2, [move('1', 'new'), move('2', 'lib')]]);

  it('lets a newer bundle, a rerun, the same content and unknown tags through', () => {
    const B3 = bundle('b3', 30, '2026-11-15T00:00:00Z');
    expect(judge(state, [move('1', 'newer'), move('9', 'x')], B3).refusals).toEqual([]);
    expect(judge(state, [move('1', 'new'), move('2', 'lib')], B2).refusals).toEqual([]);
    // An older bundle whose tags all hold its digest already moves nothing.
    expect(judge(state, [move('2', 'lib')], B1).refusals).toEqual([]);
  });

  it('refuses an older bundle of the same signer: replay when it was imported before, downgrade otherwise', () => {
    const replay = judge(state, [move('1', 'old'), move('2', 'lib')], B1);
    expect(replay.refusals.map((r) => [r.reason, r.tag, r.current.bundle])).toEqual([['replay', 'reg/m/quay.io/x/app:1', B2.id]]);
    const B0 = bundle('b0', 5, '2026-10-01T00:00:00Z');
    expect(judge(state, [move('1', 'ancient')], B0).refusals.map((r) => r.reason)).toEqual(['downgrade']);
    // A bundle without a sequence (an older airlock) counts as 0: older than any sequenced one.
    expect(judge(state, [move('1', 'legacy')], bundle('legacy', 0, '2026-12-01T00:00:00Z')).refusals.map((r) => r.reason)).toEqual(['downgrade']);
  });

  it('orders equal sequences by created, and refuses two different bundles that claim the same both', () => {
    const twin = bundle('twin', 20, '2026-11-08T00:00:00Z');
    expect(judge(state, [move('1', 'twin')], twin).refusals.map((r) => r.reason)).toEqual(['same-sequence']);
    expect(judge(state, [move('1', 'later')], bundle('later', 20, '2026-11-09T00:00:00Z')).refusals).toEqual([]);
    expect(judge(state, [move('1', 'earlier')], bundle('earlier', 20, '2026-11-07T00:00:00Z')).refusals.map((r) => r.reason)).toEqual(['downgrade']);
  });

  it('lets another signer move a tag (separate sequences), warning when its bundle was created earlier', () => {
    const other = bundle('other', 1, '2026-10-01T00:00:00Z', OTHER);
    const verdict = judge(state, [move('1', 'theirs')], other);
    expect(verdict.refusals).toEqual([]);
    expect(verdict.warnings.join()).toContain('different signers keep separate sequences');
    expect(judge(state, [move('1', 'theirs')], bundle('other2', 1, '2026-12-01T00:00:00Z', OTHER)).warnings).toEqual([]);
    // Unsigned bundles (accepted with --allow-unsigned) are one more signer: null.
    expect(judge(state, [move('1', 'x')], bundle('u', 1, '2026-01-01T00:00:00Z', null)).refusals).toEqual([]);
  });
});

describe('applyImport', () => {
  it('keeps the newer record when an older bundle reruns with the same content, and caps the history', () => {
    const state = after([B2, [move('2', 'lib')]], [B1, [move('2', 'lib')]]);
    expect(state.tags['m/quay.io/x/app:2']).toMatchObject({ bundle: B2.id, sequence: 20 });
    expect(state.bundles.map((b) => b.id)).toEqual([B2.id, B1.id]);
    let long = emptyState();
    for (let i = 0; i < MAX_BUNDLE_HISTORY + 5; i++) long = applyImport(long, [], bundle(`h${i}`, i + 1, '2026-01-01T00:00:00Z'), NOW);
    expect(long.bundles).toHaveLength(MAX_BUNDLE_HISTORY);
    expect(long.bundles.at(-1)!.id).toBe(d(`h${MAX_BUNDLE_HISTORY + 4}`));
  });

  it('round-trips through its bytes, and refuses a record it did not write', () => {
    const state = after([B1, [move('1', 'old')]]);
    expect(parseImportState(serializeImportState(state), 'x')).toEqual(JSON.parse(JSON.stringify(state)));
    for (const bad of ['nope', '[]', '{"schemaVersion":2}', JSON.stringify({ ...state, tags: { a: { digest: 'x' } } })]) {
      const err = (() => {
        try {
          parseImportState(Buffer.from(bad), 'reg/m/airlock/import-state:latest');
        } catch (e) {
          return e;
        }
      })();
      expect(isAirlockError(err, 'INTEGRITY'), bad).toBe(true);
      expect((err as Error).message).toContain('the import record reg/m/airlock/import-state:latest is damaged');
    }
  });
});

describe('RollbackGuard', () => {
  it('checks again before writing: a newer bundle recorded meanwhile by another importer stops this one', async () => {
    const store = new MemoryStateStore();
    const guard = await RollbackGuard.open({ path: 'b1.tar.zst', store, bundle: B1, moves: [move('1', 'old')], allowDowngrade: false, now: () => NOW });
    // Another importer records gen2 between this one's check and its tags.
    await (await RollbackGuard.open({ path: 'b2.tar.zst', store, bundle: B2, moves: [move('1', 'new')], allowDowngrade: false, now: () => NOW })).record();
    const err = await guard.record().catch((e: unknown) => e);
    expect(isAirlockError(err, 'POLICY')).toBe(true);
    expect((err as Error).message).toContain(`refusing to move reg/m/quay.io/x/app:1 back: bundle ${B1.id}`);
    expect(store.writes).toBe(1);
    expect(store.state.tags['m/quay.io/x/app:1']!.bundle).toBe(B2.id);
  });
});

describe('checkExpiry and reserved names', () => {
  it('refuses an expired bundle unless allowed', () => {
    const m = { created: '2026-11-01T00:00:00Z', expires: '2026-11-02T00:00:00Z' } as BundleManifest;
    expect(() => checkExpiry('b', m, new Date('2026-11-01T23:59:59Z'), false)).not.toThrow();
    expect(() => checkExpiry('b', m, new Date('2026-11-02T00:00:00Z'), false)).toThrow(/expired at 2026-11-02T00:00:00Z \(created 2026-11-01T00:00:00Z\)/);
    const warnings: string[] = [];
    checkExpiry('b', m, new Date('2026-12-01T00:00:00Z'), true, (e) => e.kind === 'warning' && warnings.push(e.message));
    expect(warnings.join()).toContain('--allow-expired');
  });

  it('refuses an image that would land on the record repository', () => {
    const target = parseImportTarget('reg.lan/m');
    const images = [{ name: 'quay.io/airlock/import-state:latest', digest: d('x') }];
    expect(() => checkReservedNames(mapImages(images, target), target)).not.toThrow();
    const err = (() => {
      try {
        checkReservedNames(mapImages(images, target, { stripHost: true }), target);
      } catch (e) {
        return e;
      }
    })();
    expect(isAirlockError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).toContain('where airlock keeps its import record');
  });
});
