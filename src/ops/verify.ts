/**
 * `bundle verify`: everything the secure side can check before trusting a byte, offline, in one
 * streaming pass over the archive (plus a whole-file hash for the sidecar on a second core).
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
 */
import { createHash } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { basename } from 'node:path';
import { fromFsError, isAirlockError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { isManifestMediaType } from '../oci/media-types.js';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.js';
import { blobPath } from '../layout/paths.js';
import { readHead } from '../bundle/read-head.js';
import { streamEntries } from '../bundle/entry-stream.js';
import { ArchiveReader } from '../bundle/archive-reader.js';
import { isExpired, parseBundleManifest, type BundleManifest, type BundleParent, type ExternalBlob } from '../bundle/manifest.js';
import { checkSignature, type TrustedKey } from '../bundle/signing.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { hashFileInWorker } from './file-hash.js';
import { problemsError, type Problem } from './problems.js';
import { checkReferences } from './verify-references.js';

export interface VerifyOptions {
  path: string;
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
}

export interface VerifyResult {
  path: string;
  bundleId: Digest;
  keyId?: string;
  images: number;
  blobs: number;
  bytes: number;
  checksumFile?: string;
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
}

interface Expected {
  digest: string;
  size: number;
  mediaType?: string;
}

export async function verifyBundle(opts: VerifyOptions): Promise<VerifyResult> {
  const head = await readHead(opts.path);
  const problems: Problem[] = [];
  const { keyId, problems: sigProblems } = checkTrust(head.bundleJson, head.signature, opts);
  problems.push(...sigProblems);
  const manifest = parseBundleManifest(head.bundleJson, opts.path);
  const expired = isExpired(manifest, opts.now?.() ?? new Date());
  if (expired) {
    const progress = opts.onProgress ?? silent;
    const message = `the bundle expired at ${manifest.expires} (created ${manifest.created})`;
    if (opts.allowExpired === true) progress({ kind: 'warning', message: `${opts.path}: ${message}; accepted because of --allow-expired` });
    else problems.push({ code: 'POLICY', subject: opts.path, message });
  }
  const sidecar = `${opts.path}.sha256`;
  // Read (and refuse a FIFO or device as) the sidecar now, not after the long pass.
  const sidecarText = opts.checksum === false ? undefined : await readSidecar(sidecar);
  // The hash worker stops with the command: on Ctrl-C, and when the pass fails early.
  const stopHash = new AbortController();
  const hashSignal = opts.signal === undefined ? stopHash.signal : AbortSignal.any([opts.signal, stopHash.signal]);
  const fileHash = sidecarText === undefined ? undefined : hashFileInWorker(opts.path, hashSignal);
  fileHash?.catch(() => undefined);
  try {
    return await verifyContent(opts, head, manifest, keyId, problems, sidecar, sidecarText, fileHash, expired);
  } finally {
    stopHash.abort();
  }
}

/** The streaming pass and the checks after it; see {@link verifyBundle}. */
async function verifyContent(
  opts: VerifyOptions,
  head: Awaited<ReturnType<typeof readHead>>,
  manifest: BundleManifest,
  keyId: string | undefined,
  problems: Problem[],
  sidecar: string,
  sidecarText: string | undefined,
  fileHash: Promise<string> | undefined,
  expired: boolean,
): Promise<VerifyResult> {
  const progress = opts.onProgress ?? silent;
  const expected = new Map<string, Expected>([
    ['oci-layout', manifest.layout['oci-layout']],
    ['index.json', manifest.layout['index.json']],
  ]);
  for (const b of manifest.blobs) expected.set(blobPath(b.digest as Digest), b);
  progress({ kind: 'phase', phase: 'verifying', total: manifest.totals.bytes, items: expected.size });
  const seen: Array<{ path: string; size: number }> = [];
  const seenPaths = new Set<string>();
  /** Small JSON entries (index.json, manifests) that matched their digest, by path. */
  const kept = new Map<string, Buffer>();
  const checked = new Set<string>();
  let complete = false;
  try {
    await streamEntries(
      opts.path,
      async (entry, body) => {
        seen.push({ path: entry.path, size: entry.size });
        const position = seen.length - 1;
        for (const why of entry.problems) problems.push({ code: 'INTEGRITY', subject: entry.path, message: `entry ${JSON.stringify(entry.path)}: ${why}` });
        if (entry.problems.length > 0) return;
        if (seenPaths.has(entry.path)) {
          problems.push({ code: 'INTEGRITY', subject: entry.path, message: `entry ${entry.path} appears twice` });
          return;
        }
        seenPaths.add(entry.path);
        const headEntry = headPosition(entry.path);
        if (headEntry !== undefined) {
          if (position !== headEntry) problems.push({ code: 'INTEGRITY', subject: entry.path, message: `${entry.path} is not at the start of the archive` });
          return;
        }
        const want = expected.get(entry.path);
        if (want === undefined) {
          problems.push({ code: 'INTEGRITY', subject: entry.path, message: `entry ${entry.path} is not listed in the signed bundle manifest` });
          return;
        }
        checked.add(entry.path);
        await checkContent(entry.path, body, want, kept, problems, progress, opts.signal);
      },
      { signal: opts.signal },
    );
    complete = true;
  } catch (err) {
    // Ctrl-C can surface as a broken tar stream: stop, do not go on entry by entry.
    opts.signal?.throwIfAborted();
    if (!isAirlockError(err, 'INTEGRITY')) throw err;
    // The sequential pass cannot go past damaged zstd data. Check what it did not reach one entry
    // at a time through the archive index, so every damaged blob is named, not just the first.
    const rest = [...expected].filter(([path]) => !checked.has(path));
    for (const path of await checkByIndex(opts.path, rest, kept, problems, progress, opts.signal)) {
      checked.add(path);
      seenPaths.add(path);
    }
    problems.push({ code: 'INTEGRITY', subject: opts.path, message: `the archive cannot be read to its end: ${err.message}` });
  }

  for (const [path, want] of expected) {
    if (!seenPaths.has(path)) problems.push({ code: 'INTEGRITY', subject: want.digest, message: `${path} is listed in the signed manifest but missing from the archive` });
  }
  if (head.signature === undefined ? seenPaths.has('bundle.json.sig') : !seenPaths.has('bundle.json.sig')) {
    problems.push({ code: 'INTEGRITY', subject: 'bundle.json.sig', message: 'the signature entry and the archive head disagree' });
  }
  const manifests = new Map<string, Buffer>();
  for (const b of manifest.blobs) {
    const bytes = kept.get(blobPath(b.digest as Digest));
    if (bytes !== undefined) manifests.set(b.digest, bytes);
  }
  problems.push(...checkReferences(manifest, kept.get('index.json'), manifests));
  if (complete) problems.push(...(await checkIndexAgrees(opts.path, seen)));
  if (fileHash !== undefined && sidecarText !== undefined) problems.push(...(await checkSidecarFile(opts.path, sidecar, sidecarText, fileHash)));

  if (problems.length > 0) {
    const hint = problems.every((p) => p.code === 'POLICY')
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
    ...(fileHash === undefined ? {} : { checksumFile: sidecar }),
    manifest,
    ...(manifest.parents === undefined ? {} : { parents: manifest.parents }),
    expects: manifest.external ?? [],
    created: manifest.created,
    ...(manifest.sequence === undefined ? {} : { sequence: manifest.sequence }),
    ...(manifest.expires === undefined ? {} : { expires: manifest.expires }),
    expired,
  };
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
  problems: Problem[],
  progress: ProgressListener,
  signal: AbortSignal | undefined,
): Promise<void> {
  const keep = (path === 'index.json' || isManifestMediaType(want.mediaType ?? '')) && want.size <= MAX_MANIFEST_BYTES;
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
    problems.push({
      code: 'INTEGRITY',
      subject: want.digest,
      message: `${path} is damaged: expected ${want.digest} (${want.size} bytes), got ${digest} (${size} bytes)`,
    });
    return;
  }
  if (keep) kept.set(path, Buffer.concat(chunks));
}

/**
 * Check `entries` one at a time through the archive index. Returns the paths it could read (damaged
 * or not); entries it could not reach stay unchecked and are reported as missing by the caller.
 */
async function checkByIndex(
  path: string,
  entries: Array<[string, Expected]>,
  kept: Map<string, Buffer>,
  problems: Problem[],
  progress: ProgressListener,
  signal: AbortSignal | undefined,
): Promise<string[]> {
  let reader: ArchiveReader;
  try {
    reader = await ArchiveReader.open(path);
  } catch (err) {
    if (isAirlockError(err)) return [];
    throw err;
  }
  const reached: string[] = [];
  try {
    for (const [name, want] of entries) {
      if (reader.entry(name) === undefined) continue;
      reached.push(name);
      try {
        await checkContent(name, reader.openEntry(name), want, kept, problems, progress, signal);
      } catch (err) {
        if (!isAirlockError(err)) throw err;
        problems.push({ code: 'INTEGRITY', subject: want.digest, message: err.message });
      }
    }
  } finally {
    await reader.close();
  }
  return reached;
}

/** Entries that must come first, at these positions. */
function headPosition(path: string): number | undefined {
  if (path === 'bundle.json') return 0;
  if (path === 'bundle.json.sig') return 1;
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

/** The random-access index (used by import) must describe exactly the entries the pass saw. */
async function checkIndexAgrees(path: string, seen: Array<{ path: string; size: number }>): Promise<Problem[]> {
  let reader: ArchiveReader;
  try {
    reader = await ArchiveReader.open(path);
  } catch (err) {
    if (!isAirlockError(err)) throw err;
    return [{ code: 'INTEGRITY', subject: path, message: `archive index: ${err.message}` }];
  }
  try {
    const indexed = reader.entries();
    const same = indexed.length === seen.length && indexed.every((e, i) => e.path === seen[i]?.path && e.size === seen[i]?.size);
    return same ? [] : [{ code: 'INTEGRITY', subject: path, message: 'the archive index does not match the archive entries' }];
  } finally {
    await reader.close();
  }
}

/** Largest `.sha256` sidecar read: 64 KiB (sha256sum writes one line of ~100 bytes). */
const MAX_SIDECAR_BYTES = 64 << 10;

/** The sidecar's text, or undefined when there is none. */
async function readSidecar(sidecar: string): Promise<string | undefined> {
  try {
    await lstat(sidecar);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fromFsError(err, sidecar, 'reading');
  }
  const bytes = await readSmallFile(sidecar, { maxBytes: MAX_SIDECAR_BYTES, what: 'sha256sum sidecar', hint: `remove ${sidecar} or replace it with the one written beside the bundle` });
  return bytes.toString('utf8');
}

async function checkSidecarFile(path: string, sidecar: string, sidecarText: string, fileHash: Promise<string>): Promise<Problem[]> {
  const text = sidecarText.slice(0, 4096);
  const m = /^([a-f0-9]{64}) [ *](.+)$/m.exec(text);
  if (m === null) return [{ code: 'INTEGRITY', subject: sidecar, message: `${sidecar} is not in sha256sum format` }];
  if (basename(m[2]!) !== basename(path)) {
    return [{ code: 'INTEGRITY', subject: sidecar, message: `${sidecar} is for ${m[2]}, not ${basename(path)}` }];
  }
  const actual = await fileHash;
  return actual === m[1] ? [] : [{ code: 'INTEGRITY', subject: sidecar, message: `the file's sha256 ${actual} differs from ${sidecar}` }];
}

