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

/**
 * Translate a Node.js file-system error into an AirlockError naming the path and the fix.
 * Anything that is not a recognised system error is returned unchanged.
 */
export function fromFsError(err: unknown, path: string, action: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
      return new AirlockError('IO', `no space left on device while ${action} ${path}`, {
        subject: path,
        hint: 'free disk space or choose another output directory, then run the command again',
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
      return new AirlockError('IO', `permission denied while ${action} ${path}`, {
        subject: path,
        hint: 'check the file and directory permissions, or run as a user who may write there',
        cause: err,
      });
    case 'ENOENT':
      return new AirlockError('INPUT_INVALID', `${path}: no such file or directory`, {
        subject: path,
        hint: 'check the path',
        cause: err,
      });
    case 'EISDIR':
      return new AirlockError('INPUT_INVALID', `${path} is a directory, expected a file`, {
        subject: path,
        cause: err,
      });
    case 'EROFS':
      return new AirlockError('IO', `read-only file system while ${action} ${path}`, {
        subject: path,
        hint: 'choose a writable location',
        cause: err,
      });
    default:
      return err;
  }
}
