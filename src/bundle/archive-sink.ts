/**
 * A bundle archive as a {@link Sink}: the file `bundle create` writes, built from the signed plan.
 *
 * The plan fixes everything before the first byte: the head (bundle.json, its signature, the OCI
 * layout marker, index.json: see {@link headEntries}) and every blob, in archive order (manifests
 * and configs first, then layers; docs/FORMAT.md). The sink writes the head when it is made and
 * then takes blobs and manifests strictly in that order, one at a time: a bundle is one sequential
 * stream, whose bytes do not depend on timing. It owns the format's rules: entry paths, which
 * entries are zstd-compressed (everything but gzip/zstd layers, stored as they are in Raw blocks),
 * and the `.sha256` sidecar.
 *
 * Every blob is hashed as it is written and refused (INTEGRITY) unless it has the planned digest
 * and size, so nothing unverified is ever part of a finished archive. The file is written as
 * `OUT.partial` and renamed only by {@link publish}. {@link resume} continues a `.partial` an
 * interrupted run left: the entries found intact are held (`hasBlob` says so), and a blob cut
 * part-way is continued from the offset {@link ArchiveSink.heldBytes} gives.
 *
 * With `split` the file is a split set (split-set.ts): `OUT.partial.part-001`, … while it is
 * written, renamed to `OUT.part-001`, … by {@link publish}, with a sidecar that lists every part
 * and the joined archive. Resume works the same way over the parts (full parts are kept as they
 * are, the unfinished one is continued or cut back).
 */
import { rename, rm, truncate } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { AirlockError, fromFsError, isAirlockError } from '../errors.js';
import { sha256Digest } from '../digest/digest.js';
import { verifiedChunks } from '../digest/verify.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { RawManifest } from '../oci/manifest.js';
import { isCompressedMediaType } from '../oci/media-types.js';
import { blobPath, OCI_LAYOUT_CONTENT } from '../layout/paths.js';
import { writeFileAtomic } from '../layout/atomic.js';
import type { CallOptions, InOrderWriting, Sink } from '../transport/types.js';
import { resumeArchive, type KeptPart, type PlannedEntry } from './archive-resume.js';
import { ArchiveWriter } from './archive-writer.js';
import type { WrittenFile } from './batch-output.js';
import { cutParts, removeParts } from './parted-output.js';
import { findParts, partName, partWidth, splitSidecar } from './split-set.js';
import { BUNDLE_JSON, BUNDLE_SIG, INDEX_JSON, OCI_LAYOUT } from './format.js';

/** What an archive holds, fixed before it is written: the signed head and the blobs in order. */
export interface ArchiveContent {
  /** The exact bundle.json bytes (signed). */
  bundleJson: Buffer;
  /** bundle.json.sig, for a signed bundle. */
  signature?: Buffer;
  /** The OCI image index naming every image. */
  indexJson: Buffer;
  /** Every blob carried (manifests included), each once, in archive order. */
  blobs: readonly Descriptor[];
}

export interface ArchiveSinkOptions {
  /** mtime of every tar entry: the bundle's creation time. */
  mtime: Date;
  /** zstd level for compressed entries. */
  level?: number | undefined;
  /** Write a split set of parts of this many bytes (see the module comment). */
  split?: number | undefined;
}

/** The head entries, in order: bundle.json, bundle.json.sig (signed bundles), oci-layout, index.json. */
export function headEntries(content: ArchiveContent): Array<{ path: string; bytes: Buffer }> {
  return [
    { path: BUNDLE_JSON, bytes: content.bundleJson },
    ...(content.signature === undefined ? [] : [{ path: BUNDLE_SIG, bytes: content.signature }]),
    { path: OCI_LAYOUT, bytes: OCI_LAYOUT_CONTENT },
    { path: INDEX_JSON, bytes: content.indexJson },
  ];
}

/**
 * Whether a blob is zstd-compressed in the archive: everything but gzip and zstd layers, which are
 * stored as they are (in Raw blocks) since compressing them again gains nothing.
 */
export function compressesBlob(desc: Pick<Descriptor, 'mediaType'>): boolean {
  return !isCompressedMediaType(desc.mediaType);
}

/** Every entry of the archive, in order, as {@link resumeArchive} checks them. */
function plannedEntries(content: ArchiveContent): PlannedEntry[] {
  return [
    ...headEntries(content).map((e) => ({ path: e.path, size: e.bytes.length, digest: sha256Digest(e.bytes), compress: true })),
    ...content.blobs.map((b) => ({ path: blobPath(b.digest), size: b.size, digest: b.digest, compress: compressesBlob(b) })),
  ];
}

export class ArchiveSink implements Sink, InOrderWriting {
  readonly description: string;
  /** Capability: content only in plan order (see transport/types.ts). */
  readonly inOrder: InOrderWriting = this;
  /** The `.partial` file being written. */
  readonly path: string;
  readonly #writer: ArchiveWriter;
  readonly #blobs: readonly Descriptor[];
  /** Index into #blobs of the next blob to write. */
  #next: number;
  /** The blob kept in part by {@link resume}, continued from `part.dataBytes`. */
  readonly #part: KeptPart | undefined;
  /** Set once the first blob after the resumed prefix was begun: only that one continues the kept part. */
  #started = false;
  #continuing = false;
  /** Part size of a split set. */
  readonly #split: number | undefined;

  private constructor(path: string, writer: ArchiveWriter, content: ArchiveContent, held: number, part: KeptPart | undefined, split: number | undefined) {
    this.path = path;
    this.#split = split;
    this.description = path;
    this.#writer = writer;
    this.#blobs = content.blobs;
    this.#next = held;
    this.#part = part;
  }

  /** Start a new archive at `path` (replacing any file there) and write its head. */
  static async create(path: string, content: ArchiveContent, opts: ArchiveSinkOptions): Promise<ArchiveSink> {
    const writer = await ArchiveWriter.create(path, { mtime: opts.mtime, level: opts.level, split: opts.split });
    return ArchiveSink.#withHead(path, writer, content, 0, 0, undefined, opts.split);
  }

  /**
   * Continue the archive an interrupted run left at `path`: keep the longest prefix that holds
   * exactly the planned entries (each read back and checked), and the complete Raw blocks of a blob
   * cut part-way; write the rest of the head.
   *
   * @throws what makes the file unusable (it cannot be read, or was started for other content);
   *   the caller then starts over with {@link create}
   */
  static async resume(
    path: string,
    content: ArchiveContent,
    opts: ArchiveSinkOptions & { signal?: AbortSignal; onBytes?: (n: number) => void },
  ): Promise<ArchiveSink> {
    const heads = headEntries(content).length;
    const r = await resumeArchive(path, {
      mtime: opts.mtime,
      level: opts.level,
      split: opts.split,
      planned: plannedEntries(content),
      signal: opts.signal,
      onBytes: opts.onBytes,
      continuePartial: true,
    });
    return ArchiveSink.#withHead(path, r.writer, content, Math.min(r.kept, heads), Math.max(0, r.kept - heads), r.part, opts.split);
  }

  static async #withHead(
    path: string,
    writer: ArchiveWriter,
    content: ArchiveContent,
    headsKept: number,
    blobsKept: number,
    part: KeptPart | undefined,
    split: number | undefined,
  ): Promise<ArchiveSink> {
    try {
      for (const e of headEntries(content).slice(headsKept)) await writer.addBuffer(e.path, e.bytes, { compress: true });
    } catch (err) {
      await writer.abort({ flush: true });
      throw err;
    }
    return new ArchiveSink(path, writer, content, blobsKept, part, split);
  }

  /**
   * Data bytes of `desc` already in the file (a blob a resumed archive kept in part): its source is
   * read from there on. 0 for any other blob.
   */
  heldBytes(desc: Descriptor): number {
    return this.#part !== undefined && this.#blobs[this.#next]?.digest === desc.digest && !this.#started ? this.#part.dataBytes : 0;
  }

  /** True for a blob the file already holds whole: one a resumed archive kept, or one written since. */
  async hasBlob(_repository: string, desc: Descriptor): Promise<boolean> {
    const at = this.#blobs.findIndex((b) => b.digest === desc.digest);
    return at !== -1 && at < this.#next;
  }

  /**
   * Write the next planned blob. `body` yields its bytes from {@link heldBytes} on; they are hashed
   * as they are written and refused unless they have the planned digest and size.
   *
   * @throws INTERNAL for a blob out of plan order; INTEGRITY for content that does not match
   */
  async putBlob(_repository: string, desc: Descriptor, body: Readable, opts: CallOptions = {}): Promise<void> {
    const planned = this.#take(desc);
    const what = `blob ${planned.digest}`;
    const held = this.heldBytes(planned);
    this.#started = true;
    if (held > 0 && this.#part !== undefined) {
      this.#continuing = true;
      await this.#writer.continueStream(
        blobPath(planned.digest),
        planned.size,
        verifiedChunks(body, planned, what, undefined, { bytes: this.#part.dataBytes, hash: this.#part.hash }),
        {
          signal: opts.signal,
        },
      );
      this.#continuing = false;
    } else {
      await this.#writer.addStream(blobPath(planned.digest), planned.size, verifiedChunks(body, planned, what), {
        compress: compressesBlob(planned),
        signal: opts.signal,
      });
    }
    this.#next++;
  }

  /** Write the next planned blob, a manifest or index held in memory (it is never tagged here: index.json names the images). */
  async putManifest(_repository: string, manifest: RawManifest, _tag: string | undefined): Promise<void> {
    const planned = this.#take({ digest: manifest.digest, size: manifest.bytes.length });
    this.#started = true;
    if (sha256Digest(manifest.bytes) !== planned.digest)
      throw new AirlockError('INTEGRITY', `manifest ${planned.digest} does not match its digest`, { subject: planned.digest });
    await this.#writer.addBuffer(blobPath(planned.digest), manifest.bytes, { compress: compressesBlob(planned) });
    this.#next++;
  }

  /** The planned blob `desc` must be next. */
  #take(desc: Pick<Descriptor, 'digest' | 'size'>): Descriptor {
    const planned = this.#blobs[this.#next];
    if (planned === undefined || planned.digest !== desc.digest || planned.size !== desc.size) {
      throw new AirlockError('INTERNAL', `archive ${this.path}: blob ${desc.digest} out of plan order (next is ${planned?.digest ?? 'the end'})`);
    }
    return planned;
  }

  /** Complete the archive: the tar end, the index and the seek table; the file is synced and closed. */
  async complete(): Promise<WrittenFile> {
    if (this.#next !== this.#blobs.length)
      throw new AirlockError('INTERNAL', `archive ${this.path}: ${this.#blobs.length - this.#next} planned blobs were not written`);
    return this.#writer.finish();
  }

  /**
   * Publish a completed archive as `output`: write `OUTPUT.sha256` (the `sha256sum -c` line), then
   * rename the file. If either fails the `.partial` file is removed (it was complete: a rerun makes
   * it again rather than continue it).
   */
  async publish(output: string, written: WrittenFile): Promise<string> {
    const checksumFile = `${output}.sha256`;
    if (written.parts !== undefined) return this.#publishParts(output, written, checksumFile);
    const { sha256 } = written;
    try {
      // The parts of a split set of this name would no longer match the sidecar (create checked that they may go).
      await removeParts(output, 0);
      await writeFileAtomic(checksumFile, Buffer.from(`${sha256}  ${basename(output)}\n`));
      await rename(this.path, output);
    } catch (err) {
      await rm(this.path, { force: true }).catch(() => undefined);
      throw fromFsError(err, output, 'writing');
    }
    return checksumFile;
  }

  /**
   * Publish a completed split set: any older set under the output's name is removed (the caller
   * checked it may be replaced), the sidecar is written, then the parts are renamed to
   * `OUTPUT.part-NNN` (as many digits as the count needs, at least three). If that fails, every
   * part and the sidecar are removed (they were complete: a rerun makes them again).
   */
  async #publishParts(output: string, written: WrittenFile, checksumFile: string): Promise<string> {
    const parts = written.parts!;
    const width = partWidth(parts.length);
    const named = parts.map((p, i) => ({ from: p.path, path: partName(output, i + 1, width), sha256: p.sha256 }));
    try {
      await removeParts(output, 0);
      await rm(output, { force: true });
      await writeFileAtomic(checksumFile, Buffer.from(splitSidecar(output, named, written.sha256)));
      for (const p of named) await rename(p.from, p.path);
    } catch (err) {
      // Neither half a set under the final names nor a sidecar for it: the rerun writes it again.
      for (const p of [...named.map((n) => n.path), checksumFile, ...(await findParts(this.path).catch(() => [])).map((q) => q.path)]) {
        await rm(p, { force: true }).catch(() => undefined);
      }
      throw fromFsError(err, output, 'writing');
    }
    return checksumFile;
  }

  /**
   * After a failure: keep what was written (the next run continues from it). A blob continued from
   * a kept part that then failed its digest check is cut off again: which part was wrong cannot be
   * told, so neither is kept. Never throws.
   */
  async abort(err: unknown): Promise<void> {
    await this.#writer.abort({ flush: true });
    if (this.#continuing && this.#part !== undefined && isAirlockError(err, 'INTEGRITY')) {
      const offset = this.#part.offset;
      await (this.#split === undefined ? truncate(this.path, offset) : cutParts(this.path, this.#split, offset)).catch(() => undefined);
    }
  }
}
