/**
 * Blobs for a sequential writer, opened ahead of need.
 *
 * An archive is written one blob after another, but each blob's request costs a round trip
 * before its first byte arrives; against a remote registry that wait, paid per blob, dominates
 * for small blobs. The feed opens the next `ahead` blobs while the current one is copied: their
 * responses wait, paused, in the socket (flow control bounds the memory to the socket buffers),
 * and each is ready the moment the writer wants it. Nothing is spooled to disk or memory.
 */
import type { Readable } from 'node:stream';
import type { PlannedBlob } from './plan.js';

/**
 * Blobs opened ahead of the one being copied by default: 3, so with the current one at most four
 * requests per registry are open, the registry client's default concurrency.
 */
export const DEFAULT_OPEN_AHEAD = 3;

interface Opening {
  blob: PlannedBlob;
  body: Promise<Readable>;
}

export class BlobFeed {
  readonly #blobs: readonly PlannedBlob[];
  readonly #ahead: number;
  readonly #signal: AbortSignal | undefined;
  readonly #offsets: ReadonlyMap<PlannedBlob, number>;
  readonly #onBytes: ((n: number) => void) | undefined;
  readonly #open: Opening[] = [];
  #next = 0;

  /**
   * @param blobs the blobs to read, in the order they will be asked for (manifests excluded)
   * @param ahead how many to open before they are asked for (0: open each when asked)
   * @param offsets blobs to read from a byte offset on (a blob a resumed create wrote in part)
   * @param onBytes hears of every piece of every blob as it is read (progress)
   */
  constructor(
    blobs: readonly PlannedBlob[],
    ahead = DEFAULT_OPEN_AHEAD,
    signal?: AbortSignal,
    offsets: ReadonlyMap<PlannedBlob, number> = new Map(),
    onBytes?: (n: number) => void,
  ) {
    this.#blobs = blobs;
    this.#ahead = ahead;
    this.#signal = signal;
    this.#offsets = offsets;
    this.#onBytes = onBytes;
  }

  /** The next blob and its (unverified) body. Resolves in the order of `blobs`. */
  async next(): Promise<{ blob: PlannedBlob; body: Readable } | undefined> {
    this.#fill(this.#ahead + 1);
    const opening = this.#open.shift();
    if (opening === undefined) return undefined;
    this.#fill(this.#ahead + 1);
    return { blob: opening.blob, body: await opening.body };
  }

  /** Close every stream opened ahead and not handed out. */
  async close(): Promise<void> {
    const pending = this.#open.splice(0);
    await Promise.all(pending.map(async (o) => (await o.body.catch(() => undefined))?.destroy()));
  }

  #fill(target: number): void {
    while (this.#open.length < target && this.#next < this.#blobs.length) {
      const blob = this.#blobs[this.#next++]!;
      const offset = this.#offsets.get(blob);
      const body = blob.source.openBlob(blob.repository, blob.desc, {
        signal: this.#signal,
        ...(offset === undefined ? {} : { offset }),
        ...(this.#onBytes === undefined ? {} : { onBytes: this.#onBytes }),
      });
      // A failure surfaces when this blob is asked for; until then it must not be unhandled.
      body.catch(() => undefined);
      this.#open.push({ blob, body });
    }
  }
}
