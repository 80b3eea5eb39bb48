/**
 * The output side of a split set (`bundle create --split SIZE`): positional writes at offsets of
 * the joined archive go to `BASE.part-NNN`, each part exactly `partSize` bytes but the last. A part
 * is created when its first byte is written and fsynced and closed as soon as its last byte is, so
 * at most the part being written (and the one before it, while its last write lands) is open.
 * Nothing is buffered here: the writer's two buffers are all there is (batch-output.ts).
 */
import { open, rm, truncate, type FileHandle } from 'node:fs/promises';
import { fromFsError } from '../errors.js';
import { findParts, partName, type SplitPart, type SplitSet } from './split-set.js';

/** What {@link BatchOutput} needs of its file: a `FileHandle`, or a {@link PartedOutput}. */
export interface OutputFile {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  sync(): Promise<void>;
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export class PartedOutput implements OutputFile {
  readonly base: string;
  readonly partSize: number;
  /** Open parts (0-based), opened on first write. */
  readonly #open = new Map<number, Promise<FileHandle>>();
  /** Bytes written into each part not yet complete. */
  readonly #written = new Map<number, number>();

  private constructor(base: string, partSize: number) {
    this.base = base;
    this.partSize = partSize;
  }

  /** Path of part `i` (0-based) while it is written: `BASE.part-001` for i = 0. */
  partPath(i: number): string {
    return partName(this.base, i + 1);
  }

  /** A new set at `base`: parts of an older set there are removed first. */
  static async create(base: string, partSize: number): Promise<PartedOutput> {
    await removeParts(base, 0);
    return new PartedOutput(base, partSize);
  }

  /**
   * Continue the set at `base` after its first `start` bytes: the part holding byte `start` is cut
   * there, the parts after it removed.
   */
  static async append(base: string, partSize: number, start: number): Promise<PartedOutput> {
    const out = new PartedOutput(base, partSize);
    await cutParts(base, partSize, start);
    const i = Math.floor(start / partSize);
    const within = start - i * partSize;
    if (within > 0) {
      const path = out.partPath(i);
      const h = open(path, 'r+').catch((err: unknown) => {
        throw fromFsError(err, path, 'opening');
      });
      h.catch(() => undefined);
      out.#open.set(i, h);
      out.#written.set(i, within);
    }
    return out;
  }

  async write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    let done = 0;
    while (done < length) {
      const at = position + done;
      const i = Math.floor(at / this.partSize);
      const within = at - i * this.partSize;
      const n = Math.min(length - done, this.partSize - within);
      const fh = await this.#handle(i);
      let wrote = 0;
      try {
        while (wrote < n) {
          const { bytesWritten } = await fh.write(buffer, offset + done + wrote, n - wrote, within + wrote);
          wrote += bytesWritten;
        }
      } catch (err) {
        throw fromFsError(err, this.partPath(i), 'writing');
      }
      done += n;
      const total = (this.#written.get(i) ?? 0) + n;
      this.#written.set(i, total);
      if (total === this.partSize) await this.#finishPart(i, fh);
    }
    return { bytesWritten: length };
  }

  async sync(): Promise<void> {
    await this.#eachOpen((fh) => fh.sync());
  }

  async datasync(): Promise<void> {
    await this.#eachOpen((fh) => fh.datasync());
  }

  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    let failed: unknown;
    for (const h of open) {
      try {
        await (await h).close();
      } catch (err) {
        failed ??= err;
      }
    }
    if (failed !== undefined) throw failed;
  }

  /** A full part: on disk and closed before the writer goes on. */
  async #finishPart(i: number, fh: FileHandle): Promise<void> {
    this.#open.delete(i);
    this.#written.delete(i);
    try {
      await fh.sync();
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async #eachOpen(step: (fh: FileHandle) => Promise<void>): Promise<void> {
    for (const h of [...this.#open.values()]) await step(await h);
  }

  #handle(i: number): Promise<FileHandle> {
    let h = this.#open.get(i);
    if (h === undefined) {
      const path = this.partPath(i);
      h = open(path, 'w', 0o644).catch((err: unknown) => {
        throw fromFsError(err, path, 'creating');
      });
      h.catch(() => undefined);
      this.#open.set(i, h);
    }
    return h;
  }
}

/** Remove every `BASE.part-N` with N > `keep`. */
export async function removeParts(base: string, keep: number): Promise<void> {
  for (const p of await findParts(base)) {
    if (p.index > keep) await rm(p.path, { force: true }).catch((err: unknown) => Promise.reject(fromFsError(err, p.path, 'removing')));
  }
}

/** Cut the set at `base` to its first `bytes` bytes (the partial part truncated, later parts removed). */
export async function cutParts(base: string, partSize: number, bytes: number): Promise<void> {
  const i = Math.floor(bytes / partSize);
  const within = bytes - i * partSize;
  await removeParts(base, within > 0 ? i + 1 : i);
  if (within > 0) {
    const path = partName(base, i + 1);
    try {
      await truncate(path, within);
    } catch (err) {
      throw fromFsError(err, path, 'truncating');
    }
  }
}

/**
 * What an interrupted run left of the set at `base`, as a set to read back (resume): the parts
 * from the first on, each but the last exactly `partSize` bytes. It ends before a gap, after a
 * short part (a crash can leave a later part written before an earlier one's last write landed),
 * and before a part larger than `partSize` (written with another `--split`): what follows is cut
 * off when the writer continues.
 */
export async function keptParts(base: string, partSize: number): Promise<SplitSet> {
  const parts: SplitPart[] = [];
  for (const p of await findParts(base)) {
    if (p.index !== parts.length + 1 || p.size > partSize || p.size === 0) break;
    parts.push(p);
    if (p.size < partSize) break;
  }
  return { path: base, parts, size: parts.reduce((n, p) => n + p.size, 0) };
}
