/**
 * Typed errors with stable codes.
 *
 * Every failure airlock reports is an {@link AirlockError}: a stable `code` that scripts can match
 * on, a one-line `message` that names the thing (image, blob, file, registry), and a `hint` telling
 * the operator what to do next. The CLI maps codes to exit codes in exactly one place
 * (`src/cli/exit-codes.ts`); library code never exits and never prints.
 */

/** Stable error codes. Never rename one: operators script against them. */
export const ErrorCodes = [
  /** Wrong flags, arguments or combination of options. */
  'USAGE',
  /** An input file (image list, policy, key) is missing, unreadable or invalid. */
  'INPUT_INVALID',
  /** A reference could not be parsed. */
  'REF_INVALID',
  /** The registry does not have the image, tag, manifest or blob asked for. */
  'NOT_FOUND',
  /** The registry refused the credentials (401) or the action (403). */
  'AUTH',
  /** The registry could not be reached (DNS, refused, reset, timeout). */
  'NETWORK',
  /** TLS handshake or certificate verification failed. */
  'TLS',
  /** The registry kept answering 429 after all retries. */
  'RATE_LIMITED',
  /** The registry answered something the protocol does not allow, or kept failing with 5xx. */
  'REGISTRY',
  /** Content airlock deliberately does not handle (schema1, oversized manifest, unknown media type). */
  'UNSUPPORTED',
  /** Bytes do not match their digest or size, or an archive is damaged or hostile. */
  'INTEGRITY',
  /** A bundle signature is missing, invalid, or made by a key that is not trusted. */
  'SIGNATURE',
  /** Local file system failure (disk full, permission denied). */
  'IO',
  /** The operation was cancelled (Ctrl-C, AbortSignal). */
  'INTERRUPTED',
  /** The operator's import policy refuses an image or a signer. */
  'POLICY',
  /** A bug in airlock. */
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

export interface AirlockErrorOptions {
  /** What the operator should do next, one sentence. */
  hint?: string;
  /** The thing the error is about: an image reference, blob digest, file path or registry host. */
  subject?: string;
  /** Structured details for `--json` output (never secrets). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class AirlockError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly subject: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: AirlockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AirlockError';
    this.code = code;
    this.hint = options.hint;
    this.subject = options.subject;
    this.details = options.details;
  }

  /** Plain-object form for `--json` output. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.subject === undefined ? {} : { subject: this.subject }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/** True when `err` is an AirlockError, optionally with one of the given codes. */
export function isAirlockError(err: unknown, ...codes: ErrorCode[]): err is AirlockError {
  return err instanceof AirlockError && (codes.length === 0 || codes.includes(err.code));
}

/** Verbs of {@link fromFsError} for files airlock reads: a missing one is a bad input (INPUT_INVALID). */
const READ_ACTIONS = new Set(['reading', 'opening']);

/** What each file-system error means to an operator, and what to do. */
const FS_ERRORS: Readonly<Record<string, { what: string; hint: string }>> = {
  ENOSPC: { what: 'no space left on device', hint: 'free disk space or choose another output directory, then run the command again' },
  EDQUOT: { what: 'disk quota exceeded', hint: 'free space within your quota or choose another output directory, then run the command again' },
  EFBIG: { what: 'file too large for this file system', hint: 'choose an output directory on a file system that takes large files (not FAT32)' },
  EACCES: { what: 'permission denied', hint: 'check the file and directory permissions, or run as a user who may write there' },
  EPERM: { what: 'operation not permitted', hint: 'check the file and directory permissions, or choose another location' },
  EROFS: { what: 'read-only file system', hint: 'choose a writable location' },
  ENOTDIR: { what: 'a part of the path is not a directory', hint: 'check the path: a file stands where a directory is expected' },
  EISDIR: { what: 'a directory is in the way', hint: 'check the path: a directory stands where a file is expected' },
  EEXIST: { what: 'something already exists there', hint: 'choose another name or remove what is there' },
  ELOOP: { what: 'too many levels of symbolic links (a link loop)', hint: 'check the symbolic links on the path' },
  ENAMETOOLONG: { what: 'file name too long', hint: 'choose a shorter path' },
  EIO: { what: 'input/output error', hint: 'the disk or medium is failing: check it (dmesg) and copy to another one' },
  EMFILE: { what: 'too many open files', hint: 'raise the open-file limit (ulimit -n)' },
  ENFILE: { what: 'too many open files in the system', hint: 'raise the system open-file limit' },
  ENXIO: { what: 'no such device or address (a FIFO or socket, not a regular file)', hint: 'pass a regular file' },
  ENODEV: { what: 'no such device', hint: 'pass a regular file' },
  EBUSY: { what: 'device or resource busy', hint: 'wait until nothing else uses it, or choose another location' },
  ETXTBSY: { what: 'text file busy', hint: 'choose another location' },
  EINVAL: { what: 'invalid argument (the file system refuses this operation)', hint: 'choose an output location on an ordinary disk file system' },
  EXDEV: { what: 'cross-device link', hint: 'keep the output and its temporary files on one file system' },
};

/**
 * Translate a Node.js file-system error into an AirlockError naming the path and the fix: the one
 * place errno codes get their meaning. A missing file that airlock was to read (`action` reading or
 * opening) is INPUT_INVALID, like any other bad input file; every other file-system failure, a
 * missing output directory included, is IO. Anything that is not a system error is returned unchanged.
 */
export function fromFsError(err: unknown, path: string, action: string): unknown {
  if (err instanceof AirlockError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return err;
  if (code === 'ENOENT') {
    if (READ_ACTIONS.has(action)) {
      return new AirlockError('INPUT_INVALID', `${path}: no such file or directory`, { subject: path, hint: 'check the path', cause: err });
    }
    return new AirlockError('IO', `no such file or directory while ${action} ${path}`, {
      subject: path,
      hint: 'create the directory first (mkdir -p), or choose an existing one',
      cause: err,
    });
  }
  if (code === 'EISDIR' && READ_ACTIONS.has(action)) {
    return new AirlockError('INPUT_INVALID', `${path} is a directory, expected a file`, { subject: path, cause: err });
  }
  const known = FS_ERRORS[code];
  if (known !== undefined) {
    return new AirlockError('IO', `${known.what} while ${action} ${path}`, { subject: path, hint: known.hint, cause: err });
  }
  // Some other system error from a file operation (it names its syscall): still IO, with Node's words.
  const syscall = (err as NodeJS.ErrnoException).syscall;
  if (typeof syscall === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    const words = /^E[A-Z0-9]+: ([^,]+)/.exec((err as Error).message)?.[1] ?? code;
    return new AirlockError('IO', `${words} (${code}) while ${action} ${path}`, { subject: path, cause: err });
  }
  return err;
}
