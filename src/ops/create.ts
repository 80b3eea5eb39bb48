/**
 * `bundle create`: registry (or layout) → one signed archive.
 *
 * Every manifest is resolved first, so the signed head can list every blob before the first layer
 * is read; then blobs stream one after another from the source, through size and digest
 * verification, into the archive. Nothing is held in memory but manifests. The archive is written
 * as `OUT.partial` and renamed only when complete, next to its `.sha256` sidecar.
 */
import { rename } from 'node:fs/promises';
import { basename } from 'node:path';
import { AirlockError, fromFsError } from '../errors.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import { isCompressedMediaType } from '../oci/media-types.js';
import { blobPath, OCI_LAYOUT_CONTENT } from '../layout/paths.js';
import { writeFileAtomic } from '../layout/atomic.js';
import { ArchiveWriter } from '../bundle/archive-writer.js';
import { BUNDLE_MEDIA_TYPE, type BundleManifest } from '../bundle/manifest.js';
import { signBundle, type SigningKey } from '../bundle/signing.js';
import { resolveImage, type ImageToResolve, type ResolvedImage } from '../copy/resolve.js';
import { planBundle, type BundlePlan, type PlannedImage } from '../copy/plan.js';
import { silent, type ProgressListener } from '../copy/progress.js';
import { checkOutputFree, PARTIAL_SUFFIX, removeQuietly } from './output-file.js';
import { VERSION } from '../version.js';

export interface CreateOptions {
  images: ImageToResolve[];
  output: string;
  /** Required unless `unsigned` is true. */
  signingKey?: SigningKey;
  unsigned?: boolean;
  force?: boolean;
  /** zstd level for compressible entries. */
  level?: number;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Injected clock, for reproducible tests. */
  now?: () => Date;
}

export interface CreateResult {
  path: string;
  checksumFile: string;
  /** sha256 of the exact bundle.json bytes: the bundle's identity. */
  bundleId: Digest;
  signed: boolean;
  keyId?: string;
  images: PlannedImage[];
  totals: BundlePlan['totals'];
  archiveBytes: number;
  sha256: string;
}

export async function createBundle(opts: CreateOptions): Promise<CreateResult> {
  const progress = opts.onProgress ?? silent;
  if (opts.signingKey === undefined && opts.unsigned !== true) {
    throw new AirlockError('USAGE', 'no signing key given', {
      hint: 'pass --sign-key KEY (make one with: airlock key generate --out KEY), or --unsigned to create an unsigned bundle',
    });
  }
  if (opts.images.length === 0) {
    throw new AirlockError('USAGE', 'no images to bundle', { hint: 'pass image references or -f images.yaml' });
  }
  await checkOutputFree(opts.output, opts.force === true);

  progress({ kind: 'phase', phase: 'resolving manifests', items: opts.images.length });
  const resolved: ResolvedImage[] = [];
  for (const image of opts.images) {
    opts.signal?.throwIfAborted();
    const r = await resolveImage(image, { signal: opts.signal });
    resolved.push(r);
    progress({ kind: 'image', name: r.name, digest: r.top.digest, detail: r.platforms.join(',') || undefined });
  }
  const plan = planBundle(resolved);
  const created = opts.now?.() ?? new Date();
  created.setMilliseconds(0);
  const manifest = bundleManifest(plan, created);
  const head = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
  const signature = opts.signingKey === undefined ? undefined : signBundle(head, opts.signingKey);

  const partial = opts.output + PARTIAL_SUFFIX;
  const writer = await ArchiveWriter.create(partial, { mtime: created, level: opts.level });
  let result: { sha256: string; bytes: number };
  try {
    await writer.addBuffer('bundle.json', head, { compress: true });
    if (signature !== undefined) await writer.addBuffer('bundle.json.sig', signature.bytes, { compress: true });
    await writer.addBuffer('oci-layout', OCI_LAYOUT_CONTENT, { compress: true });
    await writer.addBuffer('index.json', plan.indexJson, { compress: true });
    progress({ kind: 'phase', phase: 'copying blobs', total: plan.totals.bytes, items: plan.blobs.length });
    for (const blob of plan.blobs) {
      opts.signal?.throwIfAborted();
      const path = blobPath(blob.desc.digest);
      progress({ kind: 'blob', digest: blob.desc.digest, size: blob.desc.size });
      if (blob.manifest !== undefined) {
        await writer.addBuffer(path, blob.manifest.bytes, { compress: true });
        progress({ kind: 'bytes', bytes: blob.desc.size });
        continue;
      }
      const body = await blob.source.openBlob(blob.repository, blob.desc, { signal: opts.signal });
      const what = `blob ${blob.desc.digest} of ${blob.source.description}/${blob.repository}`;
      const verified = body.pipe(new VerifyingStream(blob.desc, what, (n) => progress({ kind: 'bytes', bytes: n })));
      body.on('error', (err) => verified.destroy(err));
      try {
        await writer.addStream(path, blob.desc.size, verified, { compress: !isCompressedMediaType(blob.desc.mediaType) });
      } finally {
        body.destroy();
      }
    }
    result = await writer.finish();
  } catch (err) {
    await writer.abort();
    await removeQuietly(partial);
    throw err;
  }
  const checksumFile = `${opts.output}.sha256`;
  try {
    await writeFileAtomic(checksumFile, Buffer.from(`${result.sha256}  ${basename(opts.output)}\n`));
    await rename(partial, opts.output);
  } catch (err) {
    await removeQuietly(partial);
    throw fromFsError(err, opts.output, 'writing');
  }
  return {
    path: opts.output,
    checksumFile,
    bundleId: sha256Digest(head),
    signed: signature !== undefined,
    ...(signature === undefined ? {} : { keyId: signature.keyId }),
    images: plan.images,
    totals: plan.totals,
    archiveBytes: result.bytes,
    sha256: result.sha256,
  };
}

function bundleManifest(plan: BundlePlan, created: Date): BundleManifest {
  return {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created: created.toISOString().replace('.000Z', 'Z'),
    creator: `airlock/${VERSION}`,
    images: plan.images.map((img) => ({
      name: img.name,
      source: img.source,
      digest: img.digest,
      mediaType: img.mediaType,
      size: img.size,
      platforms: img.platforms,
      bytes: img.bytes,
      ...(img.upstreamDigest === undefined ? {} : { upstreamDigest: img.upstreamDigest }),
    })),
    blobs: plan.blobs.map((b) => ({ digest: b.desc.digest, size: b.desc.size, mediaType: b.desc.mediaType })),
    layout: {
      'oci-layout': { digest: sha256Digest(OCI_LAYOUT_CONTENT), size: OCI_LAYOUT_CONTENT.length },
      'index.json': { digest: sha256Digest(plan.indexJson), size: plan.indexJson.length },
    },
    totals: plan.totals,
  };
}
