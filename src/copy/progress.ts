/**
 * Progress events. The library is silent: it reports what it does through this callback and the
 * CLI decides how to draw it (a spinner on a terminal, plain lines otherwise, nothing with --quiet).
 */
export type ProgressEvent =
  /** A new phase begins; `total` bytes are expected to flow through it when known. */
  | { kind: 'phase'; phase: string; total?: number; items?: number }
  /** One image was resolved to its digest. */
  | { kind: 'image'; name: string; digest: string; detail?: string }
  /** Work on one blob begins (`skipped` when it was already there). */
  | { kind: 'blob'; digest: string; size: number; skipped?: boolean }
  /** `bytes` more bytes went through the current phase. */
  | { kind: 'bytes'; bytes: number }
  /** Something the operator should know that is not an error. */
  | { kind: 'warning'; message: string }
  /** `what` failed (`reason`) and is tried again: attempt `attempt` of `attempts`. */
  | { kind: 'retry'; what: string; attempt: number; attempts: number; reason: string };

export type ProgressListener = (event: ProgressEvent) => void;

export const silent: ProgressListener = () => undefined;
