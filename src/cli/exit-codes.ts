/**
 * The one place where error codes become process exit codes. Documented in README.md
 * ("Exit codes"); never renumber: scripts depend on them.
 */
import type { ErrorCode } from '../errors.js';

export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  INTERNAL: 1,
  USAGE: 2,
  INPUT_INVALID: 3,
  REF_INVALID: 3,
  NOT_FOUND: 4,
  AUTH: 5,
  NETWORK: 6,
  TLS: 7,
  RATE_LIMITED: 8,
  REGISTRY: 9,
  UNSUPPORTED: 10,
  INTEGRITY: 11,
  SIGNATURE: 12,
  IO: 13,
  POLICY: 14,
  INTERRUPTED: 130,
};
