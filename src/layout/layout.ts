/**
 * An OCI image layout directory as a {@link Source} and a {@link Sink}.
 *
 * Names: an image is found by its `org.opencontainers.image.ref.name` annotation. The engine asks
 * for `repository` + `reference`; the layout looks for the name `repository:reference` (or
 * `repository@digest`), and, when `repository` is empty, for `reference` alone — so both
 * `oci:DIR:quay.io/coreos/etcd:v3.3` and skopeo-style `oci:DIR:v1` work.
 *
 * Blobs are content-addressed and written atomically after verification; `index.json` is updated
 * atomically, and an import names all its images in one update ({@link Layout.putTags}), so a
 * failed import leaves the previous `index.json` as it was. Several bundles can be imported into one
 * directory; a rerun is safe.
 */
import { createReadStream } from 'node:fs';
import { access, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { AirlockError, fromFsError } from '../errors.js';
import { makeDirectory } from '../fs/output-location.js';
import { readSmallFile } from '../fs/small-file.js';
import { isDigest, sha256Digest, type Digest } from '../digest/digest.js';
import { VerifyingStream } from '../digest/verify.js';
import type { Descriptor } from '../oci/descriptor.js';
import { MAX_MANIFEST_BYTES, parseManifest, type RawManifest } from '../oci/manifest.js';
import type { AtomicNaming, CallOptions, OpenBlobOptions, Preparation, Sink, Source, TagJob } from '../transport/types.js';
import { withByteCount } from '../transport/counting.js';
import { streamToFileAtomic, writeFileAtomic } from './atomic.js';
import { findByName, readIndex, updateIndex, upsertEntry } from './index-file.js';
import { blobFile, BLOBS_DIR, CONTAINERD_NAME_ANNOTATION, OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, REF_NAME_ANNOTATION } from './paths.js';

/** Join a repository and a tag or digest into the name stored in `index.json`. */
export function layoutName(repository: string, reference: string): string {
  if (repository === '') return reference;
  return isDigest(reference) ? `${repository}@${reference}` : `${repository}:${reference}`;
}

export class Layout implements Source, Sink, AtomicNaming, Preparation {
  readonly dir: string;
  readonly description: string;
  // Capabilities (see transport/types.ts): one blob store for all names, so no mounting.
  readonly naming: AtomicNaming = this;
  readonly preparation: Preparation = this;
  readonly readBack: Source = this;
  /** What {@link init} created, so that {@link discard} removes exactly that and nothing older. */
  #created: string[] = [];

  constructor(dir: string) {
    this.dir = dir;
    this.description = `oci:${dir}`;
  }

  /** Create the directory skeleton (`oci-layout`, `blobs/sha256/`) if it does not exist yet. */
  async init(): Promise<void> {
    try {
      const marker = join(this.dir, OCI_LAYOUT_FILE);
      const wasLayout = await exists(marker);
      // makeDirectory reports the first directory it had to create: the layout itself, a parent of
      // it, or only `blobs` inside a directory that was there already. (Not mkdir({ recursive: true }):
      // under /proc that never returns, see fs/output-location.ts.)
      const first = await makeDirectory(join(this.dir, BLOBS_DIR));
      if (wasLayout) return;
      const madeDir = first !== undefined && !isInside(this.dir, first);
      this.#created = madeDir ? [first] : [marker, ...(first === undefined ? [] : [first])];
      await writeFileAtomic(marker, OCI_LAYOUT_CONTENT);
    } catch (err) {
      throw fromFsError(err, this.dir, 'creating');
    }
  }

  /**
   * Undo a failed import into a layout this run created: remove the directory (or, in a directory
   * that existed without being a layout, the `oci-layout` and `blobs` it added). A layout that
   * existed before is left alone: its `index.json` was never touched by the failed run, and the
   * blobs it gained are content-addressed, verified and harmless.
   */
  async discard(): Promise<void> {
    const created = this.#created;
    this.#created = [];
    for (const path of created) await rm(path, { recursive: true, force: true });
  }

  async getManifest(repository: string, reference: string, _opts?: CallOptions): Promise<RawManifest> {
    const what = `${this.description}:${layoutName(repository, reference)}`;
    let desc: Descriptor | undefined;
    if (isDigest(reference)) {
      const index = await readIndex(this.dir);
      desc = index.manifests.find((d) => d.digest === reference);
      const bytes = await this.#readSmallBlob(reference, what);
      return parseManifest(bytes, desc?.mediaType, what);
    }
    const index = await readIndex(this.dir);
    const candidates = [layoutName(repository, reference)];
    const matches = candidates.flatMap((name) => findByName(index, name));
    desc = matches[matches.length - 1];
    if (desc === undefined) {
      throw new AirlockError('NOT_FOUND', `${what}: no image with that name in the layout`, {
        subject: what,
        hint: `names in ${this.dir}/index.json: ${listNames(index.manifests).slice(0, 5).join(', ') || '(none)'}`,
      });
    }
    const bytes = await this.#readSmallBlob(desc.digest, what);
    return parseManifest(bytes, desc.mediaType, what);
  }

  async openBlob(_repository: string, desc: Descriptor, opts: OpenBlobOptions = {}): Promise<Readable> {
    const file = blobFile(this.dir, desc.digest);
    if (!(await exists(file))) {
      throw new AirlockError('NOT_FOUND', `blob ${desc.digest} is missing from ${this.description}`, {
        subject: desc.digest,
        hint: 'the layout is incomplete; recreate it',
      });
    }
    return withByteCount(createReadStream(file, { highWaterMark: 1 << 20, start: opts.offset ?? 0 }), opts);
  }

  async listTags(repository: string, _opts?: CallOptions): Promise<string[]> {
    const index = await readIndex(this.dir);
    const prefix = repository === '' ? '' : `${repository}:`;
    return listNames(index.manifests)
      .filter((n) => n.startsWith(prefix) && !n.slice(prefix.length).includes('@'))
      .map((n) => n.slice(prefix.length))
      .filter((t) => !t.includes('/') && !t.includes(':'));
  }

  async hasBlob(_repository: string, desc: Descriptor, _opts?: CallOptions): Promise<boolean> {
    try {
      const s = await stat(blobFile(this.dir, desc.digest));
      return s.size === desc.size;
    } catch {
      return false;
    }
  }

  async putBlob(_repository: string, desc: Descriptor, body: Readable, opts?: CallOptions): Promise<void> {
    if (await this.hasBlob('', desc)) {
      body.resume();
      return;
    }
    await streamToFileAtomic(blobFile(this.dir, desc.digest), opts?.signal, body, new VerifyingStream(desc, `blob ${desc.digest}`));
  }

  async putManifest(repository: string, manifest: RawManifest, tag: string | undefined): Promise<void> {
    const desc = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
    if (!(await this.hasBlob('', desc))) await writeFileAtomic(blobFile(this.dir, manifest.digest), manifest.bytes);
    if (tag === undefined) return;
    const name = layoutName(repository, tag);
    const entry: Descriptor = { ...desc, annotations: { [REF_NAME_ANNOTATION]: name, [CONTAINERD_NAME_ANNOTATION]: name } };
    await updateIndex(this.dir, (index) => upsertEntry(index, entry));
  }

  /**
   * Name every image of an import in one atomic `index.json` update, in the given order: all the
   * names land, or (on any failure) none and the old index stays.
   */
  async putTags(tags: readonly TagJob[], _opts?: CallOptions): Promise<void> {
    const entries: Descriptor[] = [];
    for (const { repository, manifest, reference } of tags) {
      const desc = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length };
      if (!(await this.hasBlob('', desc))) await writeFileAtomic(blobFile(this.dir, manifest.digest), manifest.bytes);
      const name = layoutName(repository, reference);
      entries.push({ ...desc, annotations: { [REF_NAME_ANNOTATION]: name, [CONTAINERD_NAME_ANNOTATION]: name } });
    }
    await updateIndex(this.dir, (index) => entries.reduce(upsertEntry, index));
  }

  async #readSmallBlob(digest: Digest, what: string): Promise<Buffer> {
    const file = blobFile(this.dir, digest);
    try {
      const s = await stat(file);
      if (s.size > MAX_MANIFEST_BYTES) {
        throw new AirlockError('UNSUPPORTED', `${what}: manifest ${digest} is over 4 MiB`, { subject: digest });
      }
      const bytes = await readSmallFile(file, { maxBytes: MAX_MANIFEST_BYTES, what: 'manifest blob' });
      if (sha256Digest(bytes) !== digest) {
        throw new AirlockError('INTEGRITY', `${what}: blob ${digest} in the layout does not match its digest`, {
          subject: digest,
          hint: 'the layout is damaged; recreate it',
        });
      }
      return bytes;
    } catch (err) {
      if (err instanceof AirlockError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new AirlockError('NOT_FOUND', `${what}: manifest blob ${digest} is missing from the layout`, {
          subject: digest,
        });
      }
      throw fromFsError(err, file, 'reading');
    }
  }
}

function listNames(descs: Descriptor[]): string[] {
  return descs.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter((n): n is string => n !== undefined);
}

/** True when `path` is `dir` itself or below it. */
function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
