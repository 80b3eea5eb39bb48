/**
 * `bundle.json.sig`: a detached ed25519 signature over the exact bytes of `bundle.json`.
 *
 * ```json
 * { "schemaVersion": 1, "algorithm": "ed25519", "keyId": "sha256:…",
 *   "signedDigest": "sha256:<sha256 of bundle.json>", "signature": "<base64, 64 bytes>" }
 * ```
 * `signedDigest` lets a reader say "bundle.json was changed" rather than only "bad signature";
 * the signature itself covers the bundle.json bytes, not the digest string.
 */
import { sign, verify } from 'node:crypto';
import { sha256Digest } from '../digest/digest.js';
import { AirlockError } from '../errors.js';
import type { SigningKey, TrustedKey } from './keys.js';
import { MAX_SIGNATURE_BYTES } from './read-head.js';
import { parseStrictJson } from './strict-json.js';

export type { SigningKey, TrustedKey } from './keys.js';

/** The signature document, as stored in `bundle.json.sig`. */
export interface BundleSignature {
  schemaVersion: 1;
  algorithm: 'ed25519';
  keyId: string;
  signedDigest: string;
  /** Base64 of the 64-byte ed25519 signature. */
  signature: string;
}

/** Why a signature was refused, in `details.reason` of the SIGNATURE error. */
export type SignatureFailure = 'malformed' | 'untrusted' | 'modified' | 'invalid';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const BASE64_SIG_RE = /^[A-Za-z0-9+/]{86}==$/; // 64 bytes

/** Sign the exact bytes of bundle.json; returns the bytes of bundle.json.sig. */
export function signBundle(bundleJson: Buffer, key: SigningKey): { bytes: Buffer; keyId: string } {
  const doc: BundleSignature = {
    schemaVersion: 1,
    algorithm: 'ed25519',
    keyId: key.keyId,
    signedDigest: sha256Digest(bundleJson),
    signature: sign(null, bundleJson, key.privateKey).toString('base64'),
  };
  return { bytes: Buffer.from(JSON.stringify(doc, null, 2) + '\n'), keyId: key.keyId };
}

/** What a signature is over, for messages: a bundle (bundle.json) or an inventory. */
export interface SignedDocument {
  /** `bundle`, `inventory`. */
  name: string;
  /** The signed bytes as an operator knows them: `bundle.json`. */
  file: string;
  /** The signature as an operator knows it: `bundle.json.sig`. */
  signature: string;
  /** What to do with a document whose signature is refused. */
  refusalHint: string;
}

export const BUNDLE_DOCUMENT: SignedDocument = {
  name: 'bundle',
  file: 'bundle.json',
  signature: 'bundle.json.sig',
  refusalHint: 'do not import this bundle; get an intact copy from its creator',
};

export const INVENTORY_DOCUMENT: SignedDocument = {
  name: 'inventory',
  file: 'the inventory',
  signature: 'the inventory signature',
  refusalHint: 'do not use this inventory; make a new one on the secure side (airlock inventory --sign-key KEY)',
};

function refuse(reason: SignatureFailure, message: string, doc: SignedDocument, extra: { hint?: string; keyId?: string } = {}): AirlockError {
  return new AirlockError('SIGNATURE', message, {
    subject: extra.keyId ?? doc.signature,
    details: { reason, ...(extra.keyId === undefined ? {} : { keyId: extra.keyId }) },
    hint: extra.hint ?? doc.refusalHint,
  });
}

/** Parse and check the shape of bundle.json.sig. @throws SIGNATURE (malformed) */
export function parseSignature(sigBytes: Buffer, what: SignedDocument = BUNDLE_DOCUMENT): BundleSignature {
  if (sigBytes.length > MAX_SIGNATURE_BYTES) throw refuse('malformed', `${what.signature} is too large to be a signature`, what);
  let doc: unknown;
  try {
    doc = parseStrictJson(sigBytes);
  } catch (err) {
    throw refuse('malformed', `${what.signature} is not strict JSON: ${(err as Error).message}`, what);
  }
  const d = doc as Partial<Record<keyof BundleSignature, unknown>>;
  const keys = typeof doc === 'object' && doc !== null && !Array.isArray(doc) ? Object.keys(doc).sort().join() : '';
  const ok =
    keys === 'algorithm,keyId,schemaVersion,signature,signedDigest' &&
    d.schemaVersion === 1 &&
    d.algorithm === 'ed25519' &&
    typeof d.keyId === 'string' &&
    DIGEST_RE.test(d.keyId) &&
    typeof d.signedDigest === 'string' &&
    DIGEST_RE.test(d.signedDigest) &&
    typeof d.signature === 'string' &&
    BASE64_SIG_RE.test(d.signature);
  if (!ok) throw refuse('malformed', `${what.signature} is malformed (expected schemaVersion 1, ed25519, keyId, signedDigest, signature)`, what);
  return doc as BundleSignature;
}

/**
 * Check bundle.json.sig against the exact bundle.json bytes and the trusted keys.
 *
 * @returns the id of the trusted key that made the signature
 * @throws SIGNATURE with `details.reason`: `malformed`; `untrusted` (made by a key not among
 *   `trusted`: the message names its key id); `modified` (bundle.json is not what was signed);
 *   `invalid` (the signature does not verify)
 */
export function verifySignature(
  bundleJson: Buffer,
  sigBytes: Buffer,
  trusted: readonly TrustedKey[],
  doc: SignedDocument = BUNDLE_DOCUMENT,
): { keyId: string } {
  const sig = parseSignature(sigBytes, doc);
  const key = trusted.find((k) => k.keyId === sig.keyId);
  if (key === undefined) {
    const known = trusted.length === 0 ? 'no keys are trusted' : `trusted: ${trusted.map((k) => k.keyId).join(', ')}`;
    throw refuse('untrusted', `${doc.name} is signed by key ${sig.keyId}, which is not trusted (${known})`, doc, {
      keyId: sig.keyId,
      hint: `pass the signer's public key with --trust KEY.pub (check its key id with the ${doc.name}'s creator first)`,
    });
  }
  if (sha256Digest(bundleJson) !== sig.signedDigest) {
    throw refuse('modified', `bad signature: ${doc.file} was modified after it was signed by ${sig.keyId}`, doc, { keyId: sig.keyId });
  }
  if (!verify(null, bundleJson, key.publicKey, Buffer.from(sig.signature, 'base64'))) {
    throw refuse('invalid', `bad signature: the signature by ${sig.keyId} does not verify`, doc, { keyId: sig.keyId });
  }
  return { keyId: sig.keyId };
}

/** Same as {@link verifySignature}. */
export const checkSignature = verifySignature;

/** The key id a signature claims, unverified (for `inspect`); undefined when malformed. */
export function signatureKeyId(sigBytes: Buffer): string | undefined {
  try {
    return parseSignature(sigBytes).keyId;
  } catch {
    return undefined;
  }
}
