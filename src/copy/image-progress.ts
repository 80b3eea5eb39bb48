/**
 * Which image a blob is for, and when an image is complete, for a copy that moves blobs rather than
 * images. A blob shared by several images is counted for each of them: an image is complete when
 * the last of its own blobs has landed, whichever image first brought the others.
 */
import type { Digest } from '../digest/digest.js';

/** An image as progress knows it: its name, and every digest (manifests and blobs) it needs. */
export interface TrackedImage {
  name: string;
  digests: Iterable<Digest>;
  /** Said beside its completion line: its platforms, say. */
  detail?: string;
  /** Its size, every distinct blob counted once, as if it were alone. */
  bytes?: number;
}

export class ImageProgress {
  private readonly images: Array<{ image: TrackedImage; left: Set<Digest> }>;
  private readonly byDigest = new Map<Digest, number[]>();

  /**
   * @param images in the order they were listed: a shared blob is said to be for the first of them
   *   that is not complete yet
   * @param carried the digests this copy moves; the rest (a delta's, delivered earlier) are not waited for
   */
  constructor(images: readonly TrackedImage[], carried: ReadonlySet<Digest>) {
    this.images = images.map((image, i) => {
      const left = new Set([...image.digests].filter((d) => carried.has(d)));
      for (const d of left) {
        const list = this.byDigest.get(d);
        if (list === undefined) this.byDigest.set(d, [i]);
        else list.push(i);
      }
      return { image, left };
    });
  }

  /** Images that need nothing from this copy: complete before it starts. */
  alreadyComplete(): TrackedImage[] {
    return this.images.filter((e) => e.left.size === 0).map((e) => e.image);
  }

  /** The name of the first image still waiting for `digest`, if any. */
  imageOf(digest: Digest): string | undefined {
    for (const i of this.byDigest.get(digest) ?? []) if (this.images[i]!.left.size > 0) return this.images[i]!.image.name;
    return undefined;
  }

  /** `digest` landed: the images it completed, in list order. */
  landed(digest: Digest): TrackedImage[] {
    const done: TrackedImage[] = [];
    for (const i of this.byDigest.get(digest) ?? []) {
      const entry = this.images[i]!;
      if (entry.left.delete(digest) && entry.left.size === 0) done.push(entry.image);
    }
    return done;
  }
}
