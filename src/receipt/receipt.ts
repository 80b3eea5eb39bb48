/**
 * The verification receipt (`bundle verify --receipt FILE`): a record that a bundle was verified,
 * where, when, against which files and with what result, for the auditors who ask for evidence that
 * the media was checked before import, and for `bundle import --receipt`, which accepts only a
 * receipt for the exact bytes it reads.
 *
 * Like an inventory, the file is an envelope around the exact bytes of the receipt, so a signature
 * over those bytes survives any JSON tool that only reads the envelope:
 *
 * ```json
 * { "mediaType": "application/vnd.airlock.receipt.v1+json",
 *   "receipt": "<the receipt JSON, as a string>",
 *   "signature": { …bundle.json.sig format… } | null }
 * ```
 * Schema: `schemas/receipt.schema.json` (the envelope, and the receipt as `#/$defs/payload`).
 *
 * The signature is the one bundles and inventories use (ed25519 over the exact bytes), made with the
 * verifying side's key. The receipt's own `mediaType` is inside the signed bytes and checked after
 * the signature: a bundle.json and its signature wrapped up as a receipt are refused (their
 * mediaType is the bundle's), and a receipt's bytes fail the bundle schema, so no signature over one
 * kind of document is ever accepted as one over the other, even when one key signed both.
 */
// schemas/receipt.schema.json, compiled at build time (scripts/compile-schemas.mjs).
import validateReceiptFile from '../generated/receipt-file-validate.js';
import validateReceiptPayload from '../generated/receipt-validate.js';
import { sha256Digest, type Digest } from '../digest/digest.js';
import { AirlockError, isAirlockError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import { signBundle, verifySignature, type SignedDocument, type SigningKey, type TrustedKey } from '../bundle/signing.js';
import { parseStrictJson, valueAt } from '../bundle/strict-json.js';
import type { Problem } from '../bundle/problems.js';
import type { VerifyCheck } from './checks.js';

export { VERIFY_CHECKS, type VerifyCheck } from './checks.js';

export const RECEIPT_MEDIA_TYPE = 'application/vnd.airlock.receipt.v1+json';

/** Largest receipt file read: 32 MiB (a receipt of 100,000 parts is ~15 MiB; one archive's, ~1 KiB). */
export const MAX_RECEIPT_BYTES = 32 << 20;

/** What a receipt's signature is over, for messages. */
export const RECEIPT_DOCUMENT: SignedDocument = {
  name: 'receipt',
  file: 'the receipt',
  signature: 'the receipt signature',
  refusalHint: 'do not rely on this receipt; verify the bundle again where it was verified (airlock bundle verify FILE --receipt RECEIPT --sign-key GAP.key)',
};

/** One file verify read, as sha256sum would name it. */
export interface ReceiptFile {
  /** The name (no directory) it had when verified; informative only: files are matched by size and sha256. */
  name: string;
  size: number;
  /** Lower-case hex sha256 of the whole file. */
  sha256: string;
}

/** The bundle a receipt is about, from its signed bundle.json. */
export interface ReceiptBundle {
  id: Digest;
  created?: string;
  /** The trusted key that signed the bundle (a passed receipt of a signed bundle). */
  keyId?: string;
  sequence?: number;
  expires?: string;
}

/** The receipt (the envelope's `receipt` string, parsed). */
export interface Receipt {
  schemaVersion: 1;
  mediaType: typeof RECEIPT_MEDIA_TYPE;
  /** Absent only in a failed receipt for a file whose head could not be read. */
  bundle?: ReceiptBundle;
  files: ReceiptFile[];
  checks: VerifyCheck[];
  result: 'passed' | 'failed';
  /** What verify was told to accept: a bundle without a trusted signature, an expired one. */
  accepted?: Array<'unsigned' | 'expired'>;
  /** Failed receipts: the first problems found. */
  problems?: Problem[];
  omittedProblems?: number;
  /** When verification ended (RFC 3339 UTC). */
  verified: string;
  /** `airlock/0.1.0`. */
  verifier: string;
  host?: string;
}

/** A receipt read back and checked. */
export interface ReadReceipt {
  receipt: Receipt;
  /** sha256 of the receipt bytes: what its signature covers. */
  id: Digest;
  /** The trusted key that signed it, when signed and checked. */
  keyId?: string;
  signed: boolean;
}

/** Serialise a receipt file, signed when `key` is given. */
export function writeReceipt(receipt: Receipt, key?: SigningKey): Buffer {
  // One field order whatever order the receipt was built in: what it is about and its result first.
  const { schemaVersion, mediaType, bundle, result, ...rest } = receipt;
  const inner = Buffer.from(JSON.stringify({ schemaVersion, mediaType, bundle, result, ...rest }, null, 2));
  const signature = key === undefined ? null : (JSON.parse(signBundle(inner, key).bytes.toString('utf8')) as unknown);
  return Buffer.from(JSON.stringify({ mediaType: RECEIPT_MEDIA_TYPE, receipt: inner.toString('utf8'), signature }, null, 2) + '\n');
}

/** The hint for a file that is not a usable receipt. */
const REMAKE_HINT = 'pass the receipt airlock bundle verify --receipt wrote for this bundle, unchanged';

function invalid(source: string, problems: string[]): AirlockError {
  return new AirlockError('INPUT_INVALID', `${source}: not a valid airlock receipt: ${problems.join('; ')}`, {
    subject: source,
    details: { problems },
    hint: REMAKE_HINT,
  });
}

/**
 * Parse a receipt file. With `trusted` keys the receipt must be signed by one of them, and the
 * signature is checked before anything inside the receipt is believed; without, the signature is
 * not checked (the caller decides whether that is acceptable: import never accepts it).
 *
 * @throws INPUT_INVALID (not a receipt: every schema problem named), SIGNATURE (unsigned while keys
 *   are given, untrusted key, modified, invalid, or a signed document that is not a receipt)
 */
export function parseReceipt(bytes: Buffer, source: string, trusted: readonly TrustedKey[] = []): ReadReceipt {
  if (bytes.length > MAX_RECEIPT_BYTES) throw invalid(source, [`${bytes.length} bytes, more than ${MAX_RECEIPT_BYTES}`]);
  let envelope: { receipt: string; signature: Record<string, unknown> | null };
  try {
    envelope = parseStrictJson(bytes) as typeof envelope;
  } catch (err) {
    throw invalid(source, [(err as Error).message]);
  }
  if (!validateReceiptFile(envelope)) throw invalid(source, schemaProblems(envelope, validateReceiptFile.errors));
  const inner = Buffer.from(envelope.receipt, 'utf8');
  let keyId: string | undefined;
  if (trusted.length > 0) {
    if (envelope.signature === null) {
      throw new AirlockError('SIGNATURE', `${source}: the receipt is not signed, but receipt keys were given`, {
        subject: source,
        details: { reason: 'unsigned' },
        hint: 'sign receipts where bundles are verified: airlock bundle verify FILE --receipt RECEIPT --sign-key GAP.key',
      });
    }
    keyId = checkReceiptSignature(inner, envelope.signature, trusted, source);
  }
  let doc: unknown;
  try {
    doc = parseStrictJson(inner);
  } catch (err) {
    throw invalid(source, [`receipt: ${(err as Error).message}`]);
  }
  const mediaType = (doc as { mediaType?: unknown } | null)?.mediaType;
  if (keyId !== undefined && mediaType !== RECEIPT_MEDIA_TYPE) {
    // A signature over another kind of document (a bundle.json, an inventory) wrapped up as a receipt.
    throw new AirlockError('SIGNATURE', `${source}: the signed document is ${JSON.stringify(mediaType ?? null)}, not a receipt`, {
      subject: source,
      details: { reason: 'wrong-document', keyId },
      hint: RECEIPT_DOCUMENT.refusalHint,
    });
  }
  if (!validateReceiptPayload(doc)) throw invalid(source, schemaProblems(doc, validateReceiptPayload.errors, '/receipt'));
  const receipt = doc as Receipt;
  const dates = [receipt.verified, receipt.bundle?.created, receipt.bundle?.expires].filter((d): d is string => d !== undefined && !isRealDate(d));
  if (dates.length > 0)
    throw invalid(
      source,
      dates.map((d) => `${d} is not a valid date`),
    );
  return { receipt, id: sha256Digest(inner), ...(keyId === undefined ? {} : { keyId }), signed: envelope.signature !== null };
}

/** Check the envelope's signature over the receipt bytes; untrusted names the receipt option, not --trust. */
function checkReceiptSignature(inner: Buffer, signature: Record<string, unknown>, trusted: readonly TrustedKey[], source: string): string {
  try {
    return verifySignature(inner, Buffer.from(JSON.stringify(signature)), trusted, RECEIPT_DOCUMENT).keyId;
  } catch (err) {
    if (!isAirlockError(err, 'SIGNATURE')) throw err;
    const untrusted = err.details?.reason === 'untrusted';
    throw new AirlockError('SIGNATURE', `${source}: ${err.message}`, {
      subject: err.subject ?? source,
      ...(err.details === undefined ? {} : { details: err.details }),
      hint: untrusted
        ? 'pass the public key of the host that verified the bundle with --receipt-key GAP.pub (check its key id there first)'
        : (err.hint ?? RECEIPT_DOCUMENT.refusalHint),
      cause: err,
    });
  }
}

/** Read and parse a receipt file (a regular file of at most {@link MAX_RECEIPT_BYTES}). */
export async function loadReceipt(path: string, trusted: readonly TrustedKey[]): Promise<ReadReceipt> {
  const bytes = await readSmallFile(path, { maxBytes: MAX_RECEIPT_BYTES, what: 'receipt', hint: REMAKE_HINT });
  return parseReceipt(bytes, path, trusted);
}

/**
 * A receipt `import` may rely on: it is about `bundleId` and says verification passed.
 *
 * @throws INPUT_INVALID (a receipt for another bundle), POLICY (a receipt recording a failure)
 */
export function checkReceiptFor(read: ReadReceipt, source: string, bundlePath: string, bundleId: Digest): void {
  const { receipt } = read;
  if (receipt.bundle?.id !== bundleId) {
    throw new AirlockError(
      'INPUT_INVALID',
      `${source} is a receipt for bundle ${receipt.bundle?.id ?? '(unknown)'}, not for ${bundlePath} (bundle ${bundleId})`,
      {
        subject: source,
        details: { receiptBundle: receipt.bundle?.id ?? null, bundle: bundleId },
        hint: `pass the receipt written when ${bundlePath} was verified, or verify it: airlock bundle verify ${bundlePath} --receipt RECEIPT --sign-key GAP.key`,
      },
    );
  }
  if (receipt.result !== 'passed') {
    const first = receipt.problems?.[0]?.message;
    throw new AirlockError('POLICY', `${source} records that ${bundlePath} FAILED verification${first === undefined ? '' : `: ${first}`}`, {
      subject: source,
      details: { problems: receipt.problems ?? [] },
      hint: 'do not import this bundle; copy it again from the source media, verify it again, and import with the new receipt',
    });
  }
}

/**
 * The files import read must be the files the receipt lists, in order, by size and sha256 (names may
 * change on the way: copying media renames files).
 *
 * @throws INTEGRITY naming the first file that differs
 */
export function checkReceiptFiles(read: ReadReceipt, source: string, actual: readonly ReceiptFile[]): void {
  const listed = read.receipt.files;
  const differ = (message: string, details: Record<string, unknown>): AirlockError =>
    new AirlockError('INTEGRITY', `${message}: these are not the bytes that were verified`, {
      subject: source,
      details,
      hint: 'copy the bundle again from the verified media (or verify this copy and use its receipt); do not import bytes nobody verified',
    });
  if (listed.length !== actual.length) {
    throw differ(`${source} lists ${listed.length} file${listed.length === 1 ? '' : 's'}, the bundle has ${actual.length}`, {
      receiptFiles: listed.length,
      files: actual.length,
    });
  }
  for (let i = 0; i < listed.length; i++) {
    const want = listed[i]!;
    const got = actual[i]!;
    if (want.size !== got.size || want.sha256 !== got.sha256) {
      throw differ(`${got.name} has sha256 ${got.sha256} (${got.size} bytes), ${source} recorded ${want.sha256} (${want.size} bytes) for ${want.name}`, {
        file: got.name,
        sha256: got.sha256,
        size: got.size,
        receiptSha256: want.sha256,
        receiptSize: want.size,
      });
    }
  }
}

/** One schema error as a line naming where, what and why, as for bundle.json. */
function schemaProblems(
  doc: unknown,
  errors: ReadonlyArray<{ instancePath: string; keyword: string; message?: string | undefined; params: Record<string, unknown> }> | null | undefined,
  prefix = '',
): string[] {
  // `if` and `oneOf` only repeat what the errors under them say.
  const shown = (errors ?? []).filter((e) => e.keyword !== 'if' && e.keyword !== 'oneOf');
  return shown.slice(0, 20).map((e) => {
    const where = `${prefix}${e.instancePath}` || '/';
    if (e.keyword === 'additionalProperties') return `${where}: unknown field ${JSON.stringify(String(e.params['additionalProperty']))}`;
    if (e.keyword === 'required') return `${where}: missing field ${JSON.stringify(String(e.params['missingProperty']))}`;
    if (e.keyword === 'false schema') return `${where}: not allowed here`;
    const value = valueAt(doc, e.instancePath);
    const text = value === undefined ? 'absent' : (JSON.stringify(value) ?? String(value));
    return `${where}: ${text.length > 80 ? `${text.slice(0, 77)}...` : text} ${e.message ?? `fails schema rule "${e.keyword}"`}`;
  });
}

/** True when an RFC 3339 UTC timestamp names a real instant (no 31 February). */
function isRealDate(text: string): boolean {
  const t = new Date(text);
  return !Number.isNaN(t.getTime()) && t.toISOString().slice(0, 19) === text.slice(0, 19);
}
