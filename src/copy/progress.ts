/**
 * Progress events. The library is silent: it reports what it does through this callback and the
 * CLI decides how to draw it (a spinner on a terminal, plain lines otherwise, JSON lines with
 * `--log-format json`, nothing with --quiet).
 */
export type ProgressEvent =
  /**
   * A new phase begins; `total` bytes are expected to flow through it when known; `items` things of
   * the kind `noun` (singular: `blob`, `image`, `tag`) will be worked on; `detail` says more.
   */
  | { kind: 'phase'; phase: string; total?: number; items?: number; noun?: string; detail?: string }
  /** One image was resolved to its digest. */
  | { kind: 'image'; name: string; digest: string; detail?: string }
  /** Work on one blob begins (`skipped` when it was already there); `image` is the image it is for. */
  | { kind: 'blob'; digest: string; size: number; skipped?: boolean; image?: string }
  /** One image is complete (`action`: `stored` in a bundle, `tagged` in a registry) and its size, when known. */
  | { kind: 'image-done'; name: string; action: string; detail?: string; bytes?: number }
  /** `bytes` more bytes went through the current phase. */
  | { kind: 'bytes'; bytes: number }
  /** Something the operator should know that is not an error. */
  | { kind: 'warning'; message: string }
  /** `what` failed (`reason`) and is tried again: attempt `attempt` of `attempts`. */
  | { kind: 'retry'; what: string; attempt: number; attempts: number; reason: string };

export type ProgressListener = (event: ProgressEvent) => void;

export const silent: ProgressListener = () => undefined;
