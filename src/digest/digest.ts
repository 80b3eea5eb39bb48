/**
 * Content digests (`sha256:<64 hex>`), the only algorithm airlock writes and accepts.
 *
 * A {@link Digest} is a branded string: it can only be made by {@link parseDigest} or
 * {@link sha256Digest}, so any value of that type has been validated once, at the edge.
 */
import { createHash } from 'node:crypto';
import { AirlockError } from '../errors.js';

export type Digest = string & { readonly __digest: unique symbol };

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
/** The general OCI grammar, used only to tell "unsupported algorithm" from "garbage". */
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && SHA256_RE.test(value);
}

/** Validate a digest string; throws REF_INVALID naming the value otherwise. */
export function parseDigest(value: string, what = 'digest'): Digest {
  if (SHA256_RE.test(value)) return value as Digest;
  if (ANY_DIGEST_RE.test(value) && !value.startsWith('sha256:')) {
    throw new AirlockError('UNSUPPORTED', `${what} ${value}: only sha256 digests are supported`, {
      subject: value,
    });
  }
  throw new AirlockError('REF_INVALID', `${what} ${JSON.stringify(value)} is not a valid sha256 digest`, {
    subject: value,
    hint: 'a digest looks like sha256: followed by 64 lower-case hex characters',
  });
}

/** The digest of a buffer held in memory (manifests, configs, signed documents). */
export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** The hex part of a digest: the file name under `blobs/sha256/`. */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** Short form for progress lines: `sha256:0123456789ab`. */
export function shortDigest(digest: string): string {
  return digest.slice(0, 'sha256:'.length + 12);
}
