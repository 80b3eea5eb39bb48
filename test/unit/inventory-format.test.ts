import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyIdOf } from '../../src/bundle/keys.js';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import { parseInventory, writeInventory, type InventoryPayload } from '../../src/inventory/format.js';

function key() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(publicKey);
  return { signing: { privateKey, keyId }, trusted: { publicKey, keyId, path: 'test.pub' } };
}

const payload: InventoryPayload = {
  schemaVersion: 1,
  created: '2026-11-28T00:00:00Z',
  target: 'registry.lan',
  images: [{ name: 'registry.lan/quay.io/coreos/etcd:v3.3.0', digest: sha256Digest('m') }],
  blobs: [{ digest: sha256Digest('a') as Digest, size: 1 }],
};

describe('inventory files', () => {
  it('round-trips unsigned and signed, with a stable id', () => {
    const k = key();
    const plain = parseInventory(writeInventory(payload), 'have.json');
    expect(plain.payload).toEqual(payload);
    expect(plain.signed).toBe(false);
    const signed = parseInventory(writeInventory(payload, k.signing), 'have.json', [k.trusted]);
    expect(signed.keyId).toBe(k.trusted.keyId);
    expect(signed.id).toBe(plain.id);
  });

  it('refuses a changed payload, an unknown signer, and an unsigned file when keys are given', () => {
    const k = key();
    const other = key();
    const file = writeInventory(payload, k.signing);
    const doc = JSON.parse(file.toString()) as { inventory: string };
    doc.inventory = doc.inventory.replace('"size":1', '"size":2');
    const codes = [
      () => parseInventory(Buffer.from(JSON.stringify(doc)), 'x', [k.trusted]),
      () => parseInventory(file, 'x', [other.trusted]),
      () => parseInventory(writeInventory(payload), 'x', [k.trusted]),
    ].map((f) => {
      try {
        f();
        return 'ok';
      } catch (e) {
        return isAirlockError(e) ? e.code : 'other';
      }
    });
    expect(codes).toEqual(['SIGNATURE', 'SIGNATURE', 'SIGNATURE']);
  });

  it('names the inventory, not a bundle, when its signature is refused', () => {
    const k = key();
    const file = writeInventory(payload, k.signing);
    expect(() => parseInventory(file, 'x', [key().trusted])).toThrow(new RegExp(`^inventory is signed by key ${k.signing.keyId}, which is not trusted`));
    const doc = JSON.parse(file.toString()) as { inventory: string };
    doc.inventory = doc.inventory.replace('"size":1', '"size":2');
    expect(() => parseInventory(Buffer.from(JSON.stringify(doc)), 'x', [k.trusted])).toThrow(/^bad signature: the inventory was modified after it was signed/);
  });

  it('refuses what is not an inventory', () => {
    for (const text of ['{}', 'nope', JSON.stringify({ mediaType: 'application/vnd.airlock.inventory.v1+json', inventory: '{"schemaVersion":2}' })]) {
      expect(() => parseInventory(Buffer.from(text), 'x')).toThrow(/not a valid airlock inventory/);
    }
  });
});
