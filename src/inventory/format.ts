/**
 * The inventory file (`airlock inventory … > have.json`): what a target on the secure side holds,
 * carried back to the connected side so `bundle create --since have.json` ships exactly what is
 * missing, even when the chain of earlier bundles was broken.
 *
 * The file is an envelope around the exact bytes of the payload, so a signature over those bytes
 * survives any JSON tool that only reads the envelope:
 *
 * ```json
 * { "mediaType": "application/vnd.airlock.inventory.v1+json",
 *   "inventory": "<the payload JSON, as a string>",
 *   "signature": { …bundle.json.sig format… } | null }
 * ```
 * Payload: `{ schemaVersion: 1, created, target, images: [{ name, digest }], blobs: [{ digest, size }] }`.
 * The inventory id is the sha256 of the payload bytes; it stands in for a bundle id in the
 * `external` list of a delta made from it.
 */
import { AirlockError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from '../digest/digest.js';
import { INVENTORY_DOCUMENT, signBundle, verifySignature, type SigningKey, type TrustedKey } from '../bundle/signing.js';
import { parseStrictJson } from '../bundle/strict-json.js';

export const INVENTORY_MEDIA_TYPE = 'application/vnd.airlock.inventory.v1+json';
/** An inventory of a very large registry (a million blobs) stays far below this. */
export const MAX_INVENTORY_BYTES = 256 * 1024 * 1024;

export interface InventoryPayload {
  schemaVersion: 1;
  /** RFC 3339 UTC. */
  created: string;
  /** What was listed: `registry.lan/mirror` or `oci:/srv/layout`. */
  target: string;
  /** Tagged images found, by target name. */
  images: Array<{ name: string; digest: Digest }>;
  /** Every blob (manifests, configs, layers) the target holds. */
  blobs: Array<{ digest: Digest; size: number }>;
}

export interface Inventory {
  payload: InventoryPayload;
  /** sha256 of the payload bytes. */
  id: Digest;
  /** Key id of the signer, when signed and the signature was checked. */
  keyId?: string;
  signed: boolean;
}

/** Serialise an inventory file, signed when `key` is given. */
export function writeInventory(payload: InventoryPayload, key?: SigningKey): Buffer {
  const inner = JSON.stringify(payload);
  const signature = key === undefined ? null : (JSON.parse(signBundle(Buffer.from(inner), key).bytes.toString('utf8')) as unknown);
  return Buffer.from(JSON.stringify({ mediaType: INVENTORY_MEDIA_TYPE, inventory: inner, signature }, null, 2) + '\n');
}

/** True when `doc` (parsed JSON) looks like an inventory envelope. */
export function isInventoryDocument(doc: unknown): boolean {
  return typeof doc === 'object' && doc !== null && (doc as { mediaType?: unknown }).mediaType === INVENTORY_MEDIA_TYPE;
}

/**
 * Parse an inventory file. With `trusted` keys the signature must be present and made by one of
 * them; without, a signature is not checked (the caller warns).
 */
export function parseInventory(bytes: Buffer, source: string, trusted: readonly TrustedKey[] = []): Inventory {
  const bad = (why: string): AirlockError =>
    new AirlockError('INPUT_INVALID', `${source}: not a valid airlock inventory: ${why}`, {
      subject: source,
      hint: 'make it on the secure side with: airlock inventory --registry HOST > have.json',
    });
  if (bytes.length > MAX_INVENTORY_BYTES) throw bad('larger than 256 MiB');
  let envelope: { mediaType?: unknown; inventory?: unknown; signature?: unknown };
  try {
    envelope = parseStrictJson(bytes) as typeof envelope;
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (!isInventoryDocument(envelope) || typeof envelope.inventory !== 'string') throw bad('no inventory payload');
  const inner = Buffer.from(envelope.inventory, 'utf8');
  let keyId: string | undefined;
  if (trusted.length > 0) {
    if (envelope.signature === null || envelope.signature === undefined) {
      throw new AirlockError('SIGNATURE', `${source}: the inventory is not signed, but --trust keys were given`, {
        subject: source,
        hint: 'sign it on the secure side with: airlock inventory --sign-key KEY, or drop --trust',
      });
    }
    keyId = verifySignature(inner, Buffer.from(JSON.stringify(envelope.signature)), trusted, INVENTORY_DOCUMENT).keyId;
  }
  let payload: InventoryPayload;
  try {
    payload = parseStrictJson(inner) as InventoryPayload;
  } catch (err) {
    throw bad(`payload: ${(err as Error).message}`);
  }
  if (payload.schemaVersion !== 1 || typeof payload.target !== 'string' || !Array.isArray(payload.blobs) || !Array.isArray(payload.images)) {
    throw bad('payload lacks schemaVersion 1, target, images or blobs');
  }
  for (const b of payload.blobs) {
    if (!isDigest(b?.digest) || !Number.isSafeInteger(b.size) || b.size < 0) throw bad(`blob entry ${JSON.stringify(b)} is invalid`);
  }
  return {
    payload,
    id: sha256Digest(inner),
    ...(keyId === undefined ? {} : { keyId }),
    signed: envelope.signature !== null && envelope.signature !== undefined,
  };
}
