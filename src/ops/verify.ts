/**
 * `bundle verify`: everything the secure side can check before trusting a byte, offline, in one
 * pass over the archive's entries through the same reader `bundle import` uses (plus a whole-file
 * hash for the sidecar on a second core): a bundle that verifies can be read by import.
 *
 * Checked: the signature (fail-closed: unsigned or untrusted is a problem unless allowed), the
 * manifest schema, every entry's size and sha256 against the signed list, that nothing unlisted,
 * duplicated, unsafe (links, devices, `..`, absolute paths) or missing is in the archive, that
 * `index.json` names exactly the signed images, that every manifest finds what it references, that
 * the random-access index agrees with the archive, and the `.sha256` sidecar when present.
 * Every problem found is reported, not just the first. An expired bundle is a problem (POLICY)
 * unless `allowExpired`, when it is a warning.
 *
 * A delta bundle is checked the same way for everything it carries; the blobs it does not carry
 * (`external`) cannot be checked here and are returned as `expects`: the target must hold them.
 *
 * A split set (bundle/split-set.ts) is read as its parts; its sidecar's line for each part is
 * checked, so that a damaged part is named ("part 3 of 7 … is damaged: copy it again").
 */
import { count } from '../words.js';
import { createHash } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { basename } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { fromFsError, isAirlockError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.js';
import { blobPath } from '../layout/paths.js';
import { archiveLimits } from '../bundle/archive-limits.js';
import { BUNDLE_JSON, BUNDLE_SIG, INDEX_JSON, OCI_LAYOUT } from '../bundle/format.js';
import { readHead, type BundleHead } from '../bundle/read-head.js';
import { streamEntries } from '../bundle/entry-stream.js';
import { ArchiveReader } from '../bundle/archive-reader.js';
import {
  bundleContents,
  isExpired,
  parseBundleManifest,
  type BundleContents,
  type BundleManifest,
  type BundleParent,
  type ExternalBlob,
} from '../bundle/manifest.js';
import { checkSignature, type TrustedKey } from '../bundle/signing.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { hashFileInWorker } from '../fs/file-hash.js';
import { MAX_PROBLEMS, ProblemList, problemsError, type Problem } from '../bundle/problems.js';
import { checkReferences } from '../bundle/verify-references.js';
import { MAX_SIDECAR_BYTES as MAX_SET_SIDECAR_BYTES, parseSidecar, resolveSplitSet, type ArchiveLocation, type SplitSet } from '../bundle/split-set.js';
import { damagedParts, hashFilesInWorker, type ArchiveFile, type HashedFiles } from '../bundle/split-check.js';
import { VERIFY_CHECKS, type VerifyCheck } from '../receipt/checks.js';

export interface VerifyOptions {
  path: string;
  /** Every part of a split set, when given one by one (else `path` names the set: split-set.ts). */
  parts?: readonly string[];
  trusted: TrustedKey[];
  allowUnsigned?: boolean;
  /** Report an expired bundle as a warning, not a problem. */
  allowExpired?: boolean;
  /** Injected clock for the expiry (tests). */
  now?: () => Date;
  /** Check `PATH.sha256` when it exists (default true). */
  checksum?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /**
   * The file's (or every part's) sha256 when the caller hashes them anyway (a receipt records
   * them): the sidecar is checked against it instead of hashing the files a second time.
   */
  fileHash?: Promise<HashedFiles>;
}

export interface VerifyResult {
  path: string;
  bundleId: Digest;
  keyId?: string;
  images: number;
  /** Files under `blobs/`, manifests included (as bundle.json's totals count them). */
  blobs: number;
  bytes: number;
  /** What it carries, in the words the command prints. */
  contents: BundleContents;
  checksumFile?: string;
  /** A split set's parts, hashed and checked against the sidecar (when it had one). */
  parts?: ArchiveFile[];
  manifest: BundleManifest;
  /** Delta only: the bundles (and inventories) it was made against. */
  parents?: BundleParent[];
  /** Blobs the images need that the bundle does not carry: the target must already hold them (empty for a full bundle). */
  expects: ExternalBlob[];
  created: string;
  /** Absent for a bundle made before airlock wrote sequences. */
  sequence?: number;
  expires?: string;
  /** True when `expires` has passed (only with `allowExpired`; otherwise verification failed). */
  expired: boolean;
  /** What was checked and passed, as a receipt names it (receipt/receipt.ts). */
  checks: VerifyCheck[];
}

interface Expected {
  digest: string;
  size: number;
  mediaType?: string;
}

export async function verifyBundle(opts: VerifyOptions): Promise<VerifyResult> {
  const set = await resolveSplitSet(opts.path, opts.parts);
  if (set !== undefined) return verifyLocation(opts, set);
  return verifyLocation(opts, opts.path);
}

async function verifyLocation(opts: VerifyOptions, loc: ArchiveLocation): Promise<VerifyResult> {
  const set = typeof loc === 'string' ? undefined : loc;
  const head = await readHead(loc);
  const problems = new ProblemList();
  const { keyId, problems: sigProblems } = checkTrust(head.bundleJson, head.signature, opts);
  problems.add(...sigProblems);
  const manifest = parseBundleManifest(head.bundleJson, opts.path);
  const expired = isExpired(manifest, opts.now?.() ?? new Date());
  if (expired) {
    const progress = opts.onProgress ?? silent;
    const message = `the bundle expired at ${manifest.expires} (created ${manifest.created})`;
    if (opts.allowExpired === true) progress({ kind: 'warning', message: `${opts.path}: ${message}; accepted because of --allow-expired` });
    else problems.add({ code: 'POLICY', subject: opts.path, message });
  }
  const sidecar = set?.sidecar ?? `${opts.path}.sha256`;
  // Read (and refuse a FIFO or device as) the sidecar now, not after the long pass.
  // A split set's has a line per part (split-set.ts reads it with the same cap).
  const sidecarText =
    opts.checksum === false || (set !== undefined && set.sidecar === undefined)
      ? undefined
      : await readSidecar(sidecar, set === undefined ? MAX_SIDECAR_BYTES : MAX_SET_SIDECAR_BYTES);
  // The hash worker stops with the command: on Ctrl-C, and when the pass fails early.
  const stopHash = new AbortController();
  const hashSignal = opts.signal === undefined ? stopHash.signal : AbortSignal.any([opts.signal, stopHash.signal]);
  // The caller's hash of the files when it makes one anyway (a receipt), else our own.
  const given = opts.fileHash;
  const fileHash =
    sidecarText === undefined
      ? undefined
      : set === undefined
        ? (given?.then((h) => h.sha256) ?? hashFileInWorker(opts.path, hashSignal))
        : (given ??
          hashFilesInWorker(
            set.parts.map((p) => p.path),
            hashSignal,
          ));
  fileHash?.catch(() => undefined);
  try {
    return await verifyContent(opts, loc, head, manifest, keyId, problems, sidecar, sidecarText, fileHash, expired);
  } finally {
    stopHash.abort();
  }
}

/** The pass over the entries and the checks after it; see {@link verifyBundle}. */
async function verifyContent(
  opts: VerifyOptions,
  loc: ArchiveLocation,
  head: BundleHead,
  manifest: BundleManifest,
  keyId: string | undefined,
  problems: ProblemList,
  sidecar: string,
  sidecarText: string | undefined,
  fileHash: Promise<string | HashedFiles> | undefined,
  expired: boolean,
): Promise<VerifyResult> {
  const progress = opts.onProgress ?? silent;
  const expected = new Map<string, Expected>([
    [OCI_LAYOUT, manifest.layout['oci-layout']],
    [INDEX_JSON, manifest.layout['index.json']],
  ]);
  for (const b of manifest.blobs) expected.set(blobPath(b.digest as Digest), b);
  const contents = bundleContents(manifest.images.length, manifest.blobs);
  // The total counts every byte hashed, the layout's two files included, so the share ends at 100 %.
  const total = [...expected.values()].reduce((n, e) => n + e.size, 0);
  progress({ kind: 'phase', phase: 'verifying', total, items: contents.blobs, noun: 'blob', detail: count(contents.manifests, 'manifest') });
  const pass: Pass = { path: opts.path, loc, head, expected, problems, progress, found: new Set(), kept: new Map(), sawSignature: false, signal: opts.signal };
  let read = true;
  let reader: ArchiveReader | undefined;
  try {
    reader = await ArchiveReader.open(loc, archiveLimits(manifest));
  } catch (err) {
    // Ctrl-C can surface as a broken read: stop, do not go on entry by entry.
    opts.signal?.throwIfAborted();
    if (!isAirlockError(err, 'INTEGRITY')) throw err;
    problems.add({ code: 'INTEGRITY', subject: opts.path, message: `archive index: ${err.message}` });
    // A tail that lists more than the manifest signs is not damage to locate: stop here. Otherwise
    // a sequential pass names what can still be read, and where the archive breaks.
    if (err.details?.bound === true) read = false;
    else await diagnoseSequentially(pass);
  }
  if (reader !== undefined) {
    try {
      await readThroughIndex(reader, pass);
    } finally {
      await reader.close();
    }
  }

  if (read) {
    for (const [path, want] of expected) {
      if (!pass.found.has(path))
        problems.add({ code: 'INTEGRITY', subject: want.digest, message: `${path} is listed in the signed manifest but missing from the archive` });
    }
    if (head.signature !== undefined && !pass.sawSignature) {
      problems.add({ code: 'INTEGRITY', subject: BUNDLE_SIG, message: 'the signature entry and the archive head disagree' });
    }
  }
  const manifests = new Map<string, Buffer>();
  for (const b of manifest.blobs) {
    const bytes = pass.kept.get(blobPath(b.digest as Digest));
    if (bytes !== undefined) manifests.set(b.digest, bytes);
  }
  problems.add(...checkReferences(manifest, pass.kept.get(INDEX_JSON), manifests));
  let parts: ArchiveFile[] | undefined;
  if (fileHash !== undefined && sidecarText !== undefined) {
    if (typeof loc === 'string') problems.add(...(await checkSidecarFile(opts.path, sidecar, sidecarText, fileHash as Promise<string>)));
    else {
      const hashed = (await fileHash) as HashedFiles;
      parts = hashed.parts;
      problems.add(...checkSplitSidecar(loc, sidecar, hashed));
    }
  }

  if (problems.count > 0) {
    const hint =
      problems.count === problems.items.length && problems.items.every((p) => p.code === 'POLICY')
        ? 'ask its creator for a fresh bundle; --allow-expired accepts this one anyway'
        : 'do not import this bundle; copy it again from the source media or recreate it';
    throw problemsError(`${opts.path} failed verification`, problems, hint);
  }
  return {
    path: opts.path,
    bundleId: sha256Digest(head.bundleJson),
    ...(keyId === undefined ? {} : { keyId }),
    images: manifest.images.length,
    blobs: manifest.blobs.length,
    bytes: manifest.totals.bytes,
    contents,
    ...(fileHash === undefined ? {} : { checksumFile: sidecar }),
    ...(parts === undefined ? {} : { parts }),
    manifest,
    ...(manifest.parents === undefined ? {} : { parents: manifest.parents }),
    expects: manifest.external ?? [],
    created: manifest.created,
    ...(manifest.sequence === undefined ? {} : { sequence: manifest.sequence }),
    ...(manifest.expires === undefined ? {} : { expires: manifest.expires }),
    expired,
    checks: VERIFY_CHECKS.filter((c) =>
      c === 'signature' ? keyId !== undefined : c === 'expiry' ? !expired : c === 'sidecar' ? fileHash !== undefined : true,
    ),
  };
}

/** State of one verification: what is expected, what was found. Everything in it is bounded by the signed manifest. */
interface Pass {
  path: string;
  /** The file or split set read. */
  loc: ArchiveLocation;
  head: BundleHead;
  expected: Map<string, Expected>;
  problems: ProblemList;
  progress: ProgressListener;
  /** Listed paths found in the archive (never an unlisted one: a hostile archive may have a million). */
  found: Set<string>;
  /** Small JSON entries (index.json, manifests) that matched their digest, by path. */
  kept: Map<string, Buffer>;
  /** True once the head's signature entry was found where it belongs. */
  sawSignature: boolean;
  signal: AbortSignal | undefined;
}

/**
 * Read every entry through the archive index with the reader `bundle import` uses
 * (`ArchiveReader.openEntry`), so that what verifies is exactly what import can read. The reader
 * holds each seek-table frame to one zstd frame of the kind the index declares at the offset the
 * seek table gives, each entry's tar header to its index record, and the frames to tile the file;
 * with the tar end frame checked too, the sequential view (`tar --zstd -x`) is the same archive.
 */
async function readThroughIndex(reader: ArchiveReader, pass: Pass): Promise<void> {
  const { problems } = pass;
  const entries = reader.entries();
  for (let position = 0; position < entries.length; position++) {
    pass.signal?.throwIfAborted();
    const entry = entries[position]!;
    const headAt = headPosition(entry.path);
    if (headAt !== undefined) {
      if (position !== headAt) problems.add({ code: 'INTEGRITY', subject: entry.path, message: `${entry.path} is not at the start of the archive` });
      else await checkHeadEntry(reader, entry.path, pass);
      continue;
    }
    const want = pass.expected.get(entry.path);
    if (want === undefined) {
      // Import never reads it; its presence alone makes the archive not what was signed.
      problems.add({ code: 'INTEGRITY', subject: entry.path, message: `entry ${entry.path} is not listed in the signed bundle manifest` });
      continue;
    }
    pass.found.add(entry.path);
    try {
      await checkContent(entry.path, reader.openEntry(entry.path), want, pass.kept, problems, pass.progress, pass.signal);
    } catch (err) {
      if (!isAirlockError(err, 'INTEGRITY')) throw err;
      problems.add({ code: 'INTEGRITY', subject: want.digest, message: err.message });
    }
  }
  try {
    await reader.checkEnd();
  } catch (err) {
    if (!isAirlockError(err, 'INTEGRITY')) throw err;
    problems.add({ code: 'INTEGRITY', subject: reader.path, message: err.message });
  }
}

/** bundle.json and its signature read by entry must be the bytes the head reader found. */
async function checkHeadEntry(reader: ArchiveReader, path: string, pass: Pass): Promise<void> {
  const want = path === BUNDLE_JSON ? pass.head.bundleJson : pass.head.signature;
  const mismatch = (): void =>
    pass.problems.add({ code: 'INTEGRITY', subject: path, message: `${path} read through the archive index differs from the archive head` });
  if (want === undefined || reader.entry(path)?.size !== want.length) return mismatch();
  let bytes: Buffer;
  try {
    bytes = await buffer(reader.openEntry(path));
  } catch (err) {
    if (!isAirlockError(err, 'INTEGRITY')) throw err;
    pass.problems.add({ code: 'INTEGRITY', subject: path, message: err.message });
    return;
  }
  if (!bytes.equals(want)) return mismatch();
  if (path === BUNDLE_SIG) pass.sawSignature = true;
}

/** Thrown from the sequential pass to end it once the problem list is full. */
class ListFull extends Error {}

/**
 * When the index cannot be used: one sequential pass over the file, only to name what is
 * damaged, unlisted or unsafe, and where the archive breaks (verification has already failed).
 * It stops once {@link MAX_PROBLEMS} problems are listed: every entry that is not a problem is a
 * signed one, so the pass reads at most the signed entries and a hundred more, however many a
 * hostile archive holds (a million tiny ones cost 1.5 GB when every entry was kept track of).
 */
async function diagnoseSequentially(pass: Pass): Promise<void> {
  const { problems } = pass;
  let position = -1;
  try {
    await streamEntries(
      pass.loc,
      async (entry, body) => {
        if (problems.full) throw new ListFull();
        position += 1;
        for (const why of entry.problems) problems.add({ code: 'INTEGRITY', subject: entry.path, message: `entry ${JSON.stringify(entry.path)}: ${why}` });
        if (entry.problems.length > 0) return;
        const headAt = headPosition(entry.path);
        if (headAt !== undefined) {
          if (position !== headAt) problems.add({ code: 'INTEGRITY', subject: entry.path, message: `${entry.path} is not at the start of the archive` });
          else if (entry.path === BUNDLE_SIG) pass.sawSignature = true;
          return;
        }
        const want = pass.expected.get(entry.path);
        if (want === undefined) {
          problems.add({ code: 'INTEGRITY', subject: entry.path, message: `entry ${entry.path} is not listed in the signed bundle manifest` });
          return;
        }
        if (pass.found.has(entry.path)) {
          problems.add({ code: 'INTEGRITY', subject: entry.path, message: `entry ${entry.path} appears twice` });
          return;
        }
        pass.found.add(entry.path);
        await checkContent(entry.path, body, want, pass.kept, problems, pass.progress, pass.signal);
      },
      { ...(pass.signal === undefined ? {} : { signal: pass.signal }) },
    );
  } catch (err) {
    if (err instanceof ListFull) {
      problems.stopped = true;
      return;
    }
    // Ctrl-C can surface as a broken tar stream: that is an interruption, not damage.
    pass.signal?.throwIfAborted();
    if (!isAirlockError(err, 'INTEGRITY')) throw err;
    problems.add({ code: 'INTEGRITY', subject: pass.path, message: `the archive cannot be read to its end: ${err.message}` });
  }
}

/**
 * Hash one entry's content and compare it with the signed digest and size. Small JSON entries
 * (index.json, manifests) that match are kept for the reference checks.
 */
async function checkContent(
  path: string,
  body: AsyncIterable<Buffer>,
  want: Expected,
  kept: Map<string, Buffer>,
  problems: ProblemList,
  progress: ProgressListener,
  signal: AbortSignal | undefined,
): Promise<void> {
  const keep = (path === INDEX_JSON || isManifestMediaType(want.mediaType ?? '')) && want.size <= MAX_MANIFEST_BYTES;
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    signal?.throwIfAborted();
    hash.update(chunk);
    size += chunk.length;
    if (keep && size <= MAX_MANIFEST_BYTES) chunks.push(chunk);
    progress({ kind: 'bytes', bytes: chunk.length });
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (size !== want.size || digest !== want.digest) {
    problems.add({
      code: 'INTEGRITY',
      subject: want.digest,
      message: `${path} is damaged: expected ${want.digest} (${want.size} bytes), got ${digest} (${size} bytes)`,
    });
    return;
  }
  if (keep) kept.set(path, Buffer.concat(chunks));
}

/** Entries that must come first, at these positions. */
function headPosition(path: string): number | undefined {
  if (path === BUNDLE_JSON) return 0;
  if (path === BUNDLE_SIG) return 1;
  return undefined;
}

function checkTrust(bundleJson: Buffer, signature: Buffer | undefined, opts: VerifyOptions): { keyId?: string; problems: Problem[] } {
  if (signature === undefined) {
    if (opts.allowUnsigned === true) return { problems: [] };
    return { problems: [{ code: 'SIGNATURE', subject: opts.path, message: 'the bundle is not signed' }] };
  }
  try {
    return { keyId: checkSignature(bundleJson, signature, opts.trusted).keyId, problems: [] };
  } catch (err) {
    if (!isAirlockError(err, 'SIGNATURE')) throw err;
    // An untrusted (unknown) key is acceptable only when unsigned bundles are; a bad signature never is.
    if (opts.allowUnsigned === true && err.details?.reason === 'untrusted') return { problems: [] };
    return { problems: [{ code: 'SIGNATURE', subject: err.subject ?? opts.path, message: err.message }] };
  }
}

/** Largest `.sha256` sidecar read: 64 KiB (sha256sum writes one line of ~100 bytes). */
const MAX_SIDECAR_BYTES = 64 << 10;

/** The sidecar's text, or undefined when there is none. */
async function readSidecar(sidecar: string, maxBytes: number): Promise<string | undefined> {
  try {
    await lstat(sidecar);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromFsError(err, sidecar, 'reading');
  }
  const bytes = await readSmallFile(sidecar, {
    maxBytes,
    what: 'sha256sum sidecar',
    hint: `remove ${sidecar} or replace it with the one written beside the bundle`,
  });
  return bytes.toString('utf8');
}

async function checkSidecarFile(path: string, sidecar: string, sidecarText: string, fileHash: Promise<string>): Promise<Problem[]> {
  const text = sidecarText.slice(0, 4096);
  const m = /^([a-f0-9]{64}) [ *](.+)$/m.exec(text);
  if (m === null) return [{ code: 'INTEGRITY', subject: sidecar, message: `${sidecar} is not in sha256sum format` }];
  // A split set's sidecar beside the joined file: its `# HASH  NAME` line is the joined archive's.
  const whole = parseSidecar(sidecarText).whole;
  const line = whole !== undefined && basename(whole.name) === basename(path) ? { sha256: whole.sha256, name: whole.name } : { sha256: m[1]!, name: m[2]! };
  if (basename(line.name) !== basename(path)) {
    return [{ code: 'INTEGRITY', subject: sidecar, message: `${sidecar} is for ${line.name}, not ${basename(path)}` }];
  }
  const actual = await fileHash;
  return actual === line.sha256 ? [] : [{ code: 'INTEGRITY', subject: sidecar, message: `the file's sha256 ${actual} differs from ${sidecar}` }];
}

/** A split set's parts (and the joined archive) against its sidecar: each damaged part named. */
function checkSplitSidecar(set: SplitSet, sidecar: string, hashed: HashedFiles): Problem[] {
  const expected = set.expected;
  if (expected === undefined || expected.parts.length === 0) {
    return [{ code: 'INTEGRITY', subject: sidecar, message: `${sidecar} lists no parts of ${basename(set.path)}` }];
  }
  const problems: Problem[] = damagedParts(set, hashed).map((e) => ({ code: 'INTEGRITY', subject: e.subject ?? sidecar, message: e.message }));
  if (expected.whole !== undefined && expected.whole.sha256 !== hashed.sha256 && problems.length === 0) {
    problems.push({ code: 'INTEGRITY', subject: sidecar, message: `the parts joined have sha256 ${hashed.sha256}, ${sidecar} says ${expected.whole.sha256}` });
  }
  return problems;
}
