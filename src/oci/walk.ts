/**
 * The manifest graph of an image: an index lists child manifests (and may list indexes), an image
 * manifest references its config and layers. This walks it from a top manifest, children before
 * the index that lists them, each distinct manifest once, indexes at most {@link MAX_INDEX_DEPTH}
 * deep. Resolution (fetching from a source), import planning (over the manifests a bundle
 * carries, already verified) and the inventory all walk it here; what differs between them is
 * given as hooks: how to get a child, what to do with a manifest or an index, what to say about
 * one too deep. `bundle verify` checks the same edges ({@link manifestReferences}) one manifest at
 * a time, since it must also check manifests no image reaches.
 *
 * The walk is written once, as a generator that yields every hook's result; {@link walkManifests}
 * awaits what is a promise, {@link walkManifestsSync} takes hooks that return plain values. Each
 * walk does one thing at a time, in list order: a child is fetched only once the one before it
 * has been walked, so a source sees the same requests in the same order every time.
 */
import type { Digest } from '../digest/digest.js';
import type { Descriptor, Platform } from './descriptor.js';
import { manifestBlobs, type RawManifest } from './manifest.js';

/**
 * Indexes may nest; real images use one level. The walk stops at an index this deep (the top is
 * depth 0), so a graph of nested indexes costs bounded work.
 */
export const MAX_INDEX_DEPTH = 4;

export type IndexManifest = Extract<RawManifest, { kind: 'index' }>;
export type ImageManifestRaw = Extract<RawManifest, { kind: 'manifest' }>;

/**
 * What one manifest references: an index its child manifests, an image manifest its config and
 * layers (foreign layers excluded, see {@link manifestBlobs}). The edges the walk follows.
 */
export function manifestReferences(m: RawManifest): Descriptor[] {
  return m.kind === 'index' ? m.parsed.manifests : manifestBlobs(m.parsed);
}

/**
 * The hooks of a walk. `Got` is what `child` returns and `Done` what the visits return: plain
 * values for {@link walkManifestsSync}, possibly promises for {@link walkManifests}.
 */
export interface WalkHooks<Got, Done> {
  /**
   * The manifest a child descriptor names, checked against it as the caller needs; undefined
   * leaves the child out. Asked once per child the walk enters: never for one already in `seen`.
   */
  child(desc: Descriptor, index: IndexManifest): Got;
  /** Every child descriptor of an index, in list order and repeats included, before `seen` is asked. */
  descriptor?(desc: Descriptor, index: IndexManifest): void;
  /**
   * An image manifest, when entered: its config and layers, and its platform as the nearest
   * index descriptor above it gives it (undefined for a single-platform top).
   */
  manifest?(m: ImageManifestRaw, blobs: Descriptor[], platform: Platform | undefined): Done;
  /** An index, after every child it lists. */
  index?(m: IndexManifest): Done;
  /**
   * An index at depth {@link MAX_INDEX_DEPTH}. Throw to refuse the image; when this returns, the
   * index is visited without its children.
   */
  tooDeep(m: IndexManifest): void;
}

export interface WalkOptions {
  /**
   * Digests of the manifests entered so far. The walk adds each manifest it enters and enters
   * none already here, the top included. Pass one set to several walks to visit a manifest once
   * across all of them (the default is a new set: once per walk).
   */
  seen?: Set<Digest>;
  /** Refuse a graph that would put more than `manifests` digests in `seen`: `exceeded()` is thrown. */
  cap?: { manifests: number; exceeded: () => Error };
}

type MaybePromise<T> = T | Promise<T>;

/** Hooks for {@link walkManifests}: any of them may return a promise. */
export type WalkVisitor = WalkHooks<MaybePromise<RawManifest | undefined>, MaybePromise<void>> & WalkOptions;
/** Hooks for {@link walkManifestsSync}: none of them may return a promise. */
export type WalkVisitorSync = WalkHooks<RawManifest | undefined, void> & WalkOptions;

/**
 * Walk from `top`, awaiting each hook in turn.
 *
 * @throws whatever a hook throws, and `cap.exceeded()`
 * @example
 * await walkManifests(top, { child: (d) => source.getManifest(repo, d.digest), tooDeep: refuse, manifest: (m) => out.push(m), index: (m) => out.push(m) });
 */
export async function walkManifests(top: RawManifest, visitor: WalkVisitor): Promise<void> {
  const walk = steps(top, visitor);
  for (let step = walk.next(); step.done !== true; ) {
    const value = step.value;
    step = walk.next(isPromise(value) ? await value : value);
  }
}

/**
 * Walk from `top` with hooks that answer at once (a lookup in manifests already read).
 *
 * @throws whatever a hook throws, and `cap.exceeded()`
 */
export function walkManifestsSync(top: RawManifest, visitor: WalkVisitorSync): void {
  const walk = steps(top, visitor);
  for (let step = walk.next(); step.done !== true; step = walk.next(step.value));
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

/** The walk itself: yields each hook's result and is resumed with it, resolved. */
function* steps(top: RawManifest, visitor: AnyVisitor): Generator<unknown, void, unknown> {
  yield* enter(visitor, visitor.seen ?? new Set<Digest>(), top, undefined, 0);
}

type AnyVisitor = WalkHooks<unknown, unknown> & WalkOptions;

// At module level, not a closure inside steps(): a generator function made per walk costs each
// walk its own prototype and object shape, which made resolving a 1000-manifest image from memory
// 2-3 times slower (measured: ~12 ms against ~4 ms).
function* enter(visitor: AnyVisitor, seen: Set<Digest>, m: RawManifest, platform: Platform | undefined, depth: number): Generator<unknown, void, unknown> {
  // Asked again after a child is fetched: a getter may answer with another manifest than the
  // descriptor names, or a walk sharing `seen` may have entered it meanwhile.
  if (seen.has(m.digest)) return;
  seen.add(m.digest);
  if (visitor.cap !== undefined && seen.size > visitor.cap.manifests) throw visitor.cap.exceeded();
  if (m.kind === 'manifest') {
    yield visitor.manifest?.(m, manifestReferences(m), platform);
    return;
  }
  if (depth >= MAX_INDEX_DEPTH) {
    visitor.tooDeep(m);
  } else {
    for (const desc of manifestReferences(m)) {
      visitor.descriptor?.(desc, m);
      // A child listed again (an index may list one many times, or nested indexes share one) is
      // neither fetched nor entered twice.
      if (seen.has(desc.digest)) continue;
      const child = (yield visitor.child(desc, m)) as RawManifest | undefined;
      if (child === undefined) continue;
      yield* enter(visitor, seen, child, desc.platform ?? platform, depth + 1);
    }
  }
  yield visitor.index?.(m);
}
