/**
 * `bundle import`: one signed archive → a registry (or an OCI layout directory), fail-closed.
 *
 * Before a single byte is sent: the signature is checked against the trusted keys (and the
 * policy's signers), the signed manifest is validated, every image name is mapped to its target
 * and checked against the policy, every carried blob is found in the archive index at its signed
 * size, and every manifest is read, verified and parsed. Then the target is checked (HEAD, nothing
 * written): for a delta bundle, every blob it does not carry must already be in the target
 * (copy/missing-content.ts), else the import stops naming each missing blob and the bundle to import
 * first; and the target's import record must not say that a newer bundle of the same signer set a
 * tag this bundle would move, nor may the bundle have expired (rollback/import-rollback.ts). Then, in order:
 * 1. blobs: skipped when the target has them, mounted from another of its repositories, or
 *    uploaded straight from their own archive entries (several at once); the sink checks each
 *    against the signed digest and size before committing it (the registry on the final PUT, an
 *    `oci:` layout as it writes);
 * 2. manifests, each repository's children before its indexes, by digest; then the import record,
 *    read and checked again, with this bundle's tags merged in;
 * 3. tags, last: a pull never sees a tag pointing at missing content, and when anything before
 *    fails nothing is tagged. A registry takes one PUT per tag, so a failure part-way through this
 *    phase leaves some tags moved (each to complete content) and the rest not: the error lists both
 *    (copy/tag-phase.ts). A layout names everything in one `index.json` write: all or none.
 * With a receipt (`--receipt`, receipt/import-receipt.ts) it must be signed by a receipt key, be for
 * this bundle id and record a pass, and the archive's sha256 must equal the receipt's before step 1:
 * evidence only, every check above still runs.
 * A rerun after any interruption skips what landed (HEAD) and ends in the same state. A failed
 * import into a layout this run created removes it again (Layout.discard).
 */
import { AirlockError, isAirlockError } from '../errors.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import type { Sink } from '../transport/types.js';
import { ArchiveReader } from '../bundle/archive-reader.js';
import { resolveSplitSet } from '../bundle/split-set.js';
import { namePartDamage } from '../bundle/split-check.js';
import { archiveLimits } from '../bundle/archive-limits.js';
import { BUNDLE_JSON, BUNDLE_SIG, INDEX_JSON, OCI_LAYOUT } from '../bundle/format.js';
import { blobPath } from '../layout/paths.js';
import { readHead, type BundleHead } from '../bundle/read-head.js';
import { parseBundleManifest, type BundleManifest } from '../bundle/manifest.js';
import { verifySignature, type TrustedKey } from '../bundle/signing.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { checkImagesAllowed, effectiveTrust, type EffectiveTrust, type ImportPolicy, type PolicySubject } from '../policy/policy.js';
import { describeTarget, mapImages, targetName, type ImageMapping, type ImportTarget } from '../names/import-names.js';
import { checkNameCollisions, claimedNames } from '../names/name-claims.js';
import { DAMAGED_BUNDLE_HINT, planImport, readBundleManifests } from '../copy/import-plan.js';
import { DEFAULT_IMPORT_CONCURRENCY } from '../copy/limits.js';
import { copyPlanned } from '../copy/engine.js';
import { countTransfers, type BlobRetry, type BlobTransfer, type TransferCounts } from '../copy/transfer.js';
import { ArchiveSource } from '../bundle/archive-source.js';
import { missingContentError } from '../copy/missing-content.js';
import { checkExpiry, checkReservedNames, identityOf, RollbackGuard, tagMoves } from '../rollback/import-rollback.js';
import { stateStoreFor, type ImportStateStore } from '../rollback/import-state.js';
import type { PendingReceipt, ReceiptRequirement, ReceiptUse } from '../receipt/import-receipt.js';

export interface ImportOptions {
  /** Every part of a split set, when given one by one (else `path` names the set: split-set.ts). */
  parts?: readonly string[];
  /** The bundle file. */
  path: string;
  target: ImportTarget;
  /** Where to write: the registry client of `target.host`, or the Layout of `target.dir`. */
  sink: Sink;
  /** Keys from `--trust`. */
  trusted: readonly TrustedKey[];
  /** Accept an unsigned bundle, or one signed by an unknown key (never a bad signature). */
  allowUnsigned?: boolean;
  policy?: ImportPolicy;
  stripHost?: boolean;
  /** Blob uploads in flight. Default {@link DEFAULT_IMPORT_CONCURRENCY}. */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Whole-blob retry settings (tests shorten the waits). */
  retry?: Partial<BlobRetry>;
  /** Move tags to an older bundle's content of the same signer (see import-rollback.ts). */
  allowDowngrade?: boolean;
  /** Import a bundle whose `expires` has passed. */
  allowExpired?: boolean;
  /** Where the import record is kept; default the target's own (rollback/import-state.ts). */
  state?: ImportStateStore;
  /** Injected clock (expiry, record times). */
  now?: () => Date;
  /** `--receipt`: evidence that these exact bytes were verified; checked, never a reason to skip a check. */
  receipt?: ReceiptRequirement;
}

/** One image and where it landed. */
export interface ImportedImage {
  name: string;
  /** Target reference: `HOST/REPO:TAG`, `HOST/REPO@DIGEST`, or for a layout `REPO:TAG`. */
  reference: string;
  digest: Digest;
  mediaType: string;
  tagged: boolean;
}

export interface ImportResult {
  path: string;
  bundleId: Digest;
  /** The trusted key that signed the bundle; absent when accepted unsigned. */
  keyId?: string;
  target: string;
  /** Where the target's import record is kept (see rollback/import-state.ts). */
  record: string;
  images: ImportedImage[];
  /** Counts over blob × repository pairs, and the bytes actually uploaded. */
  blobs: TransferCounts;
  manifests: number;
  transfers: BlobTransfer[];
  /** The verification receipt the import was given and checked. */
  receipt?: ReceiptUse;
}

/**
 * Check the bundle's signature as `verify` does (fail-closed).
 *
 * @returns the signer's key id, or undefined when an unsigned (or unknown-key) bundle is allowed
 */
function checkTrust(path: string, head: BundleHead, trust: EffectiveTrust, policy: ImportPolicy | undefined): string | undefined {
  const byPolicy = policy?.signers === undefined ? undefined : `policy ${policy.source} requires a signature by one of its signers`;
  if (head.signature === undefined) {
    if (trust.allowUnsigned) return undefined;
    throw new AirlockError('SIGNATURE', `${path}: the bundle is not signed`, {
      subject: path,
      details: { reason: 'unsigned' },
      hint: byPolicy ?? 'import only signed bundles (airlock bundle create --sign-key); --allow-unsigned accepts this one anyway',
    });
  }
  try {
    return verifySignature(head.bundleJson, head.signature, trust.trusted).keyId;
  } catch (err) {
    if (!isAirlockError(err, 'SIGNATURE') || err.details?.reason !== 'untrusted') throw err;
    if (trust.allowUnsigned) return undefined;
    if (byPolicy === undefined) throw err;
    throw new AirlockError('SIGNATURE', `${err.message}; ${byPolicy}`, {
      subject: err.subject,
      details: err.details,
      hint: 'add the key to the policy if it is a legitimate signer',
    });
  }
}

/**
 * Import a bundle.
 *
 * @throws SIGNATURE (unsigned, untrusted, bad signature), INTEGRITY (damaged or altered bundle),
 *   INPUT_INVALID (a name that does not map), POLICY (a policy refusal, an expired bundle, a tag
 *   the import record says a newer bundle set), USAGE (colliding names), NOT_FOUND
 *   (a delta whose external blobs the target lacks: nothing is written), and the target's errors
 *   (AUTH, NETWORK, TLS, REGISTRY, RATE_LIMITED, IO); no tag is written unless the failure comes
 *   in the tag phase itself, and then `details.tags` lists which moved (see copy/tag-phase.ts)
 * @example
 * const result = await importBundle({ path: 'images.tar.zst', target, sink, trusted: [key] });
 * for (const image of result.images) console.log(image.name, '→', image.reference);
 */
export async function importBundle(opts: ImportOptions): Promise<ImportResult> {
  const progress = opts.onProgress ?? silent;
  progress({ kind: 'phase', phase: 'checking bundle' });
  // A split set is read as its parts (bundle/split-set.ts); damage found in it names the part.
  const set = await resolveSplitSet(opts.path, opts.parts);
  const head = await readHead(set ?? opts.path);
  const trust = effectiveTrust(opts.policy, opts.trusted, opts.allowUnsigned === true);
  const keyId = checkTrust(opts.path, head, trust, opts.policy);
  if (keyId === undefined) progress({ kind: 'warning', message: `${opts.path} is imported WITHOUT a trusted signature (--allow-unsigned)` });
  const bundle = parseBundleManifest(head.bundleJson, opts.path);
  checkExpiry(opts.path, bundle, opts.now?.() ?? new Date(), opts.allowExpired === true, progress);
  checkNameCollisions(
    bundle.images.map((i) => i.name),
    'the bundle is ambiguous (made by an older airlock); recreate it, renaming one of them',
  );
  const mappings = mapImages(bundle.images, opts.target, { stripHost: opts.stripHost === true });
  checkReservedNames(mappings, opts.target);
  if (opts.policy !== undefined) checkImagesAllowed(opts.policy, policySubjects(mappings));

  let reader: ArchiveReader;
  try {
    reader = await ArchiveReader.open(set ?? opts.path, archiveLimits(bundle));
  } catch (err) {
    throw await namePartDamage(set, err, opts.signal);
  }
  try {
    // Before anything is written: the structure verify checks, as far as it is cheap to see.
    checkNothingUnlisted(reader, bundle);
    await reader.checkFrames(opts.signal);
    await reader.checkEnd();
    return await importContent(opts, reader, head, bundle, mappings, keyId);
  } catch (err) {
    throw withRerunHint(await namePartDamage(set, err, opts.signal));
  } finally {
    await reader.close();
  }
}

/**
 * What the policy checks for each image: its upstream name, and every upstream name a host-less
 * name passes for once mapped (see name-claims.ts): `localhost_6200/app` must not escape a policy
 * that denies `localhost:6200`, nor `busybox:1` one that denies `docker.io/library/busybox`.
 */
function policySubjects(mappings: readonly ImageMapping[]): PolicySubject[] {
  return mappings.flatMap((m) => [
    { name: m.name, registry: m.registry, repository: m.upstreamRepository },
    ...claimedNames(m.name).map((c) => ({ name: m.name, registry: c.registry, repository: c.repository, reading: c.reading })),
  ]);
}

/** Every entry the index lists must be signed: an archive with more in it is not what was signed. */
function checkNothingUnlisted(reader: ArchiveReader, bundle: BundleManifest): void {
  const listed = new Set<string>([BUNDLE_JSON, BUNDLE_SIG, OCI_LAYOUT, INDEX_JSON, ...bundle.blobs.map((b) => blobPath(b.digest))]);
  const extra = reader.entries().find((e) => !listed.has(e.path));
  if (extra !== undefined) {
    throw new AirlockError('INTEGRITY', `${reader.path}: entry ${extra.path} is not listed in the signed bundle manifest`, {
      subject: extra.path,
      hint: 'do not import this bundle; get an intact copy from its creator (bundle verify names every problem)',
    });
  }
}

/** An interruption gets the next step: run again; what landed is skipped. */
function withRerunHint(err: unknown): unknown {
  const aborted = (err as Error | undefined)?.name === 'AbortError';
  if (!aborted && !(isAirlockError(err, 'INTERRUPTED') && err.hint === undefined)) return err;
  return new AirlockError('INTERRUPTED', aborted ? 'import interrupted' : (err as Error).message, {
    hint: 'nothing was tagged; run the same command again: what already landed is skipped',
    cause: err,
  });
}

/** Everything after the checks: read manifests, plan, blobs, manifests, tags. */
async function importContent(
  opts: ImportOptions,
  reader: ArchiveReader,
  head: BundleHead,
  bundle: BundleManifest,
  mappings: ImageMapping[],
  keyId: string | undefined,
): Promise<ImportResult> {
  // The receipt is checked now, and the archive hashed against it while the checks below run.
  const receipt =
    opts.receipt === undefined
      ? undefined
      : await (await import('../receipt/import-receipt.js')).startReceiptCheck(opts.receipt, opts.path, sha256Digest(head.bundleJson), opts.signal, opts.parts);
  try {
    return await importChecked(opts, reader, head, bundle, mappings, keyId, receipt);
  } finally {
    receipt?.stop();
  }
}

/** The work of {@link importContent}, once a receipt (if any) is accepted for this bundle id. */
async function importChecked(
  opts: ImportOptions,
  reader: ArchiveReader,
  head: BundleHead,
  bundle: BundleManifest,
  mappings: ImageMapping[],
  keyId: string | undefined,
  receipt: PendingReceipt | undefined,
): Promise<ImportResult> {
  const progress = opts.onProgress ?? silent;
  const concurrency = opts.concurrency ?? DEFAULT_IMPORT_CONCURRENCY;
  const manifests = await readBundleManifests(reader, bundle, opts.signal);
  const plan = planImport(new ArchiveSource(reader, bundle, manifests), bundle, manifests, mappings);
  for (const m of mappings) progress({ kind: 'image', name: m.name, digest: m.digest, detail: `-> ${m.reference}` });
  await opts.sink.reachability?.ping(opts.signal === undefined ? {} : { signal: opts.signal });
  // Rollback and replay: refused here, before anything is written; recorded just before the tags.
  const guard = await RollbackGuard.open({
    path: opts.path,
    store: opts.state ?? stateStoreFor(opts.target, opts.sink),
    bundle: identityOf(sha256Digest(head.bundleJson), bundle, keyId),
    moves: tagMoves(mappings),
    allowDowngrade: opts.allowDowngrade === true,
    progress,
    ...(opts.now === undefined ? {} : { now: opts.now }),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  });
  // The last step before the first write: the bytes read must be the bytes the receipt names.
  const receiptUse = await receipt?.confirm();
  const target = opts.target;
  const { transfers, manifests: pushed } = await copyPlanned(plan, {
    sink: opts.sink,
    concurrency,
    prefix: target.kind === 'registry' ? target.prefix : '',
    operation: 'import',
    nameOf: (job) => targetName(target, job.repository, job.reference),
    integrity: { digest: 'signed digest', hint: DAMAGED_BUNDLE_HINT },
    missing: (absent, search) =>
      missingContentError({
        path: opts.path,
        target: describeTarget(target),
        bundle,
        missing: absent.map((c) => ({ desc: c.unit.desc, image: c.unit.image, repositories: c.unit.repositories, parent: c.unit.parent })),
        search: search !== undefined && (search.probes > 0 || search.catalog !== undefined || search.catalogError !== undefined) ? search : undefined,
        inventoryArgs: target.kind === 'layout' ? `--layout ${target.dir}` : `--registry ${describeTarget(target)}`,
      }),
    beforeTags: () => guard.record(opts.signal),
    onProgress: progress,
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    ...(opts.retry === undefined ? {} : { retry: opts.retry }),
  });
  return {
    path: opts.path,
    bundleId: sha256Digest(head.bundleJson),
    ...(keyId === undefined ? {} : { keyId }),
    target: describeTarget(opts.target),
    record: guard.where,
    images: mappings.map((m) => ({
      name: m.name,
      reference: m.reference,
      digest: m.digest,
      mediaType: manifests.get(m.digest)?.mediaType ?? '',
      tagged: m.tag !== undefined,
    })),
    blobs: countTransfers(transfers, plan.blobs.length),
    manifests: pushed,
    transfers,
    ...(receiptUse === undefined ? {} : { receipt: receiptUse }),
  };
}
