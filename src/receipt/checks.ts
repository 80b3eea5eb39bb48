/**
 * What `bundle verify` checks, by the names a receipt records (docs/FORMAT.md section 14). A module
 * of its own so that verify names its checks without loading the receipt's validators.
 *
 * `signature` is left out when the bundle was accepted without a trusted signature, `expiry` when it
 * was accepted expired, `sidecar` when there was no `.sha256` sidecar to check.
 */
export const VERIFY_CHECKS = ['signature', 'manifest', 'expiry', 'structure', 'content', 'completeness', 'references', 'sidecar'] as const;
export type VerifyCheck = (typeof VERIFY_CHECKS)[number];
