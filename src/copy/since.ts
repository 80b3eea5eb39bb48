/**
 * `bundle create --since PREV`: what the target already holds, so a delta bundle ships only new
 * blobs. A PREV is one of
 *
 * - an earlier bundle, or only its first megabytes: just the signed head is read ({@link readHead});
 * - its exported manifest (`airlock bundle inspect --manifest PREV > prev.json`), with the signature
 *   from `PREV.json.sig` beside it when there is one (`airlock bundle inspect --signature`);
 * - an inventory of the target (`airlock inventory … > have.json`).
 *
 * A bundle delivered what it carried (its `blobs`): a PREV that is itself a delta contributes only
 * those, never its own `external` list, so every external blob of the new delta names the parent
 * that really carries it. An inventory delivered every blob it lists.
 *
 * Signers (see docs/FORMAT.md, "Delta bundles"): for a signed delta every bundle PREV must carry a
 * signature by the same key, checked against that key's public half; a bundle archive without a
 * signature is refused; an exported manifest without its `.sig` is accepted with a warning (its
 * signature was lost by exporting), and recorded without a key id. A wrong PREV can only make the
 * delta leave blobs out, never let content in: import proves that every external blob is present
 * at the target before it writes.
 */
import { createPublicKey } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { AirlockError } from '../errors.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { MAX_SIGNATURE_BYTES, readHead, type BundleHead } from '../bundle/read-head.js';
import { openRegularFile, readSmallFile } from '../fs/small-file.js';
import { findParts } from '../bundle/split-set.js';
import { BUNDLE_MEDIA_TYPE, parseBundleManifest, type BundleManifest, type BundleParent } from '../bundle/manifest.js';
import { parseSignature, verifySignature, type SigningKey } from '../bundle/signing.js';
import { ZSTD_FRAME_MAGIC } from '../bundle/format.js';
import { isInventoryDocument, MAX_INVENTORY_BYTES, parseInventory } from '../inventory/format.js';
import type { TrustedKey } from '../bundle/keys.js';
import { silent, type ProgressListener } from './progress.js';
import { checkChain, checkInventoryAge, DEFAULT_MAX_INVENTORY_AGE_MS, type Prev } from './since-chain.js';

export { DEFAULT_MAX_INVENTORY_AGE_MS, type Prev } from './since-chain.js';

/** A blob the target holds already, and the parent that delivered it. */
export interface DeliveredBlob {
  size: number;
  /** Id of the bundle (or inventory) that delivered it. */
  bundle: Digest;
}

/** Everything `--since` says the target holds. */
export interface DeliveredSet {
  /** Digest → size and the parent that delivered it. */
  blobs: ReadonlyMap<Digest, DeliveredBlob>;
  /** Every PREV, once each, oldest first (then by id): the new bundle's `parents`. */
  parents: BundleParent[];
}

export interface SinceOptions {
  /** The key the new bundle is signed with; absent for an unsigned bundle. */
  signingKey?: SigningKey;
  /** Keys whose inventory signatures are accepted; with none, inventory signatures are not checked. */
  inventoryTrust?: readonly TrustedKey[];
  /** The new bundle's time (default now): parents must not be younger, inventories not stale. */
  now?: Date;
  /** Oldest inventory accepted, in ms (default {@link DEFAULT_MAX_INVENTORY_AGE_MS}). */
  maxInventoryAgeMs?: number;
  /** Warnings go here. */
  onProgress?: ProgressListener;
}

/** A head read from a PREV or `bundle diff` argument: an archive (or its start) or an exported bundle.json. */
export interface HeadFile {
  path: string;
  /** `archive`: a bundle or the first megabytes of one; `manifest`: an exported bundle.json. */
  form: 'archive' | 'manifest';
  bundleJson: Buffer;
  /** bundle.json.sig: from the archive, or from `PATH.sig` beside an exported manifest. */
  signature?: Buffer;
  manifest: BundleManifest;
  id: Digest;
}

/**
 * Read every PREV and work out what the target holds.
 *
 * @throws SIGNATURE for a parent bundle by another signer, unsigned (an archive, when the new
 *   bundle is signed), or whose signature does not verify; INPUT_INVALID for a file that is none
 *   of the three kinds, a stale inventory, a cycle or a mismatched base (see `since-chain.ts`);
 *   INTEGRITY for a damaged head
 */
export async function loadSince(paths: readonly string[], opts: SinceOptions = {}): Promise<DeliveredSet> {
  const progress = opts.onProgress ?? silent;
  const now = opts.now ?? new Date();
  const prevs = new Map<Digest, Prev>();
  for (const path of paths) {
    const prev = await readPrev(path, opts, progress);
    if (prev.kind === 'inventory') checkInventoryAge(prev, now, opts.maxInventoryAgeMs ?? DEFAULT_MAX_INVENTORY_AGE_MS);
    // The same bundle twice (a head copy and the whole file, say) counts once.
    if (!prevs.has(prev.id)) prevs.set(prev.id, prev);
  }
  const all = [...prevs.values()];
  checkChain(all, now);
  for (const p of all) {
    const missing = p.parents.filter((pp) => pp.kind === 'bundle' && !prevs.has(pp.id));
    if (missing.length > 0) {
      progress({
        kind: 'warning',
        message: `${p.path} is a delta of ${missing.length} bundle(s) not given with --since: blobs only they carry are shipped again`,
      });
    }
  }
  const ordered = all.sort(preferred);
  const blobs = new Map<Digest, DeliveredBlob>();
  // The most preferred parent (bundles before inventories, oldest first) delivered each blob.
  for (const p of ordered) {
    for (const [digest, size] of p.delivered) if (!blobs.has(digest)) blobs.set(digest, { size, bundle: p.id });
  }
  const parents = [...ordered]
    .sort(byAge)
    .map((p): BundleParent => ({ id: p.id, created: p.created, ...(p.keyId === undefined ? {} : { keyId: p.keyId }), kind: p.kind }));
  return { blobs, parents };
}

/** Bundles before inventories (a bundle can be imported again), then oldest first, then by id. */
function preferred(a: Prev, b: Prev): number {
  if (a.kind !== b.kind) return a.kind === 'bundle' ? -1 : 1;
  return byAge(a, b);
}

function byAge(a: { created: string; id: string }, b: { created: string; id: string }): number {
  const t = Date.parse(a.created) - Date.parse(b.created);
  return t !== 0 ? t : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Read one PREV, whichever kind it is, and check its signer. */
async function readPrev(named: string, opts: SinceOptions, progress: ProgressListener): Promise<Prev> {
  const path = await headPath(named);
  if (await startsWithZstd(path)) return bundlePrev(await readHeadFile(path), opts, progress);
  const bytes = await readCapped(path);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw notAPrev(path, 'neither a zstd archive nor JSON');
  }
  if (isInventoryDocument(doc)) {
    const inv = parseInventory(bytes, path, opts.inventoryTrust ?? []);
    if (inv.keyId === undefined) {
      progress({
        kind: 'warning',
        message: `${path}: inventory ${inv.signed ? 'signature not checked (pass --trust KEY.pub)' : 'is not signed'}; taken on trust`,
      });
    }
    return {
      path,
      kind: 'inventory',
      id: inv.id,
      created: inv.payload.created,
      ...(inv.keyId === undefined ? {} : { keyId: inv.keyId }),
      delivered: new Map(inv.payload.blobs.map((b) => [b.digest, b.size])),
      external: [],
      parents: [],
    };
  }
  if ((doc as { mediaType?: unknown } | null)?.mediaType === BUNDLE_MEDIA_TYPE) {
    return bundlePrev(await manifestHeadFile(path, bytes), opts, progress);
  }
  throw notAPrev(path, 'not an airlock bundle, exported bundle.json or inventory');
}

/** A bundle PREV: its signer checked against the new bundle's. */
function bundlePrev(head: HeadFile, opts: SinceOptions, progress: ProgressListener): Prev {
  const keyId = checkParentSigner(head, opts.signingKey, progress);
  const m = head.manifest;
  return {
    path: head.path,
    kind: 'bundle',
    id: head.id,
    created: m.created,
    ...(keyId === undefined ? {} : { keyId }),
    delivered: new Map(m.blobs.map((b) => [b.digest, b.size])),
    external: m.external ?? [],
    parents: m.parents ?? [],
  };
}

/**
 * The key id to record for a parent bundle, after checking it may be one: its signature must
 * match its bundle.json; for a signed delta it must be made by the same key and verify with it.
 */
function checkParentSigner(head: HeadFile, key: SigningKey | undefined, progress: ProgressListener): string | undefined {
  const what = `parent bundle ${head.path} (${head.id})`;
  const hint = '--since only bundles of the same signer; or ship against an inventory of the target (airlock inventory)';
  if (head.signature === undefined) {
    if (key === undefined) return undefined;
    if (head.form === 'manifest') {
      progress({ kind: 'warning', message: `${head.path}: exported manifest without its signature (${head.path}.sig); its signer is not checked` });
      return undefined;
    }
    throw new AirlockError('SIGNATURE', `${what} is unsigned, this bundle is signed by key ${key.keyId}`, { subject: head.path, hint });
  }
  const sig = parseSignature(head.signature);
  if (sig.signedDigest !== head.id) {
    throw new AirlockError('SIGNATURE', `${what}: bundle.json was modified after it was signed by ${sig.keyId}`, {
      subject: head.path,
      hint: 'use an intact copy of the earlier bundle',
    });
  }
  if (key === undefined) return sig.keyId;
  if (sig.keyId !== key.keyId) {
    throw new AirlockError('SIGNATURE', `${what} was signed by key ${sig.keyId}, this bundle by ${key.keyId}`, {
      subject: head.path,
      details: { parentKeyId: sig.keyId, keyId: key.keyId },
      hint,
    });
  }
  const self: TrustedKey = { keyId: key.keyId, publicKey: createPublicKey(key.privateKey), path: key.path ?? 'signing key' };
  try {
    return verifySignature(head.bundleJson, head.signature, [self]).keyId;
  } catch (err) {
    if (err instanceof AirlockError)
      throw new AirlockError(err.code, `${what}: ${err.message}`, { subject: head.path, hint: 'use an intact copy of the earlier bundle', cause: err });
    throw err;
  }
}

/**
 * Read the head of a bundle archive, a truncated copy of one, or an exported bundle.json (with
 * `PATH.sig` beside it when present). Signatures are not checked here.
 *
 * @throws INPUT_INVALID for anything else; INTEGRITY for a damaged head
 */
export async function readHeadFile(named: string): Promise<HeadFile> {
  const path = await headPath(named);
  if (!(await startsWithZstd(path))) return manifestHeadFile(path, await readCapped(path));
  const head: BundleHead = await readHead(path);
  return {
    path,
    form: 'archive',
    bundleJson: head.bundleJson,
    ...(head.signature === undefined ? {} : { signature: head.signature }),
    manifest: parseBundleManifest(head.bundleJson, path),
    id: sha256Digest(head.bundleJson),
  };
}

async function manifestHeadFile(path: string, bytes: Buffer): Promise<HeadFile> {
  if (!/^\s*\{/.test(bytes.subarray(0, 64).toString('latin1'))) throw notAPrev(path, 'neither a zstd archive nor JSON');
  const manifest = parseBundleManifest(bytes, path);
  let signature: Buffer | undefined;
  try {
    signature = await readSmallFile(`${path}.sig`, { maxBytes: MAX_SIGNATURE_BYTES, what: 'bundle.json signature' });
  } catch (err) {
    if (!(err instanceof AirlockError && err.code === 'INPUT_INVALID' && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT')) throw err;
  }
  return { path, form: 'manifest', bundleJson: bytes, ...(signature === undefined ? {} : { signature }), manifest, id: sha256Digest(bytes) };
}

/**
 * Where the head of `path` is: `path` itself, or, for a split bundle named as `NAME` when only its
 * parts exist, its first part (the head is there, and the other parts need not be at hand).
 */
async function headPath(path: string): Promise<string> {
  try {
    await stat(path);
    return path;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return path; // reported when it is read
  }
  const first = (await findParts(path))[0];
  return first?.index === 1 ? first.path : path;
}

async function startsWithZstd(path: string): Promise<boolean> {
  const fh = await openRegularFile(path, 'bundle, bundle.json or inventory', SINCE_HINT);
  try {
    const magic = Buffer.alloc(4);
    const { bytesRead } = await fh.read(magic, 0, 4, 0);
    return bytesRead === 4 && magic.readUInt32LE(0) === ZSTD_FRAME_MAGIC;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** A JSON PREV is read whole, up to the inventory cap (an exported bundle.json is capped lower when parsed). */
async function readCapped(path: string): Promise<Buffer> {
  return readSmallFile(path, { maxBytes: MAX_INVENTORY_BYTES, what: 'bundle.json or inventory', hint: SINCE_HINT });
}

const SINCE_HINT = 'pass an earlier bundle (or its first megabytes), its bundle.json (airlock bundle inspect --manifest), or an inventory (airlock inventory)';

function notAPrev(path: string, why: string): AirlockError {
  return new AirlockError('INPUT_INVALID', `--since ${path}: ${why}`, {
    subject: path,
    hint: SINCE_HINT,
  });
}
