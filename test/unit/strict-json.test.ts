/**
 * Strict JSON for signed documents: every case here was accepted before (JSON.parse keeps the last
 * of two keys, turns bad UTF-8 into U+FFFD and keeps lone surrogates), except the BOM and trailing
 * data, which JSON.parse refused without naming them (regression guards with a clearer message).
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyIdOf } from '../../src/bundle/keys.js';
import { BUNDLE_MEDIA_TYPE, parseBundleManifest, serializeBundleManifest, type BundleManifest } from '../../src/bundle/manifest.js';
import { parseSignature, signBundle } from '../../src/bundle/signing.js';
import { MAX_JSON_DEPTH, parseStrictJson } from '../../src/bundle/strict-json.js';
import { decodeIndex } from '../../src/bundle/airlock-index.js';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import { parseInventory, writeInventory, INVENTORY_MEDIA_TYPE } from '../../src/inventory/format.js';

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('parseStrictJson', () => {
  it('accepts what airlock writes, escapes and surrogate pairs included', () => {
    expect(parseStrictJson(Buffer.from('{\n  "a": [1, {"b": "\\u00e9\\ud83d\\ude00"}],\n  "c": null\n}\n'))).toEqual({ a: [1, { b: 'é😀' }], c: null });
    // the same key in different objects is fine; a value equal to a key is not a key
    expect(parseStrictJson(Buffer.from('[{"k":1},{"k":"k"},{"x":{"k":2}}]'))).toEqual([{ k: 1 }, { k: 'k' }, { x: { k: 2 } }]);
    expect(parseStrictJson(Buffer.from('{"a":"}{\\"","b":"[\\\\"}'))).toEqual({ a: '}{"', b: '[\\' });
  });

  it.each([
    ['a duplicate key at the top', '{"images":[],"images":[1]}', 'duplicate key "images"'],
    ['a duplicate key deep inside', '{"a":[{"b":{"c":1,"d":2,"c":3}}]}', 'duplicate key "c"'],
    ['a duplicate spelled with an escape', '{"ab":1,"\\u0061b":2}', 'duplicate key "ab"'],
    ['a byte order mark', '\ufeff{"a":1}', 'byte order mark'],
    ['trailing data', '{"a":1}\n{"a":2}', 'data after the JSON value'],
    ['trailing garbage', '{"a":1} x', 'data after the JSON value'],
    ['a lone high surrogate', '{"a":"\\ud800"}', 'lone surrogate'],
    ['a lone low surrogate', '{"a":"x\\udc00y"}', 'lone surrogate'],
    ['a high surrogate before a non-surrogate escape', '{"a":"\\ud800\\u0041"}', 'lone surrogate'],
    ['a lone surrogate in a key', '{"\\ud800":1}', 'lone surrogate'],
    ['too deep', `${'['.repeat(MAX_JSON_DEPTH + 1)}${']'.repeat(MAX_JSON_DEPTH + 1)}`, 'nested deeper'],
    ['not JSON', '{"a":', 'not JSON'],
  ])('refuses %s', (_name, text, message) => {
    expect(caught(() => parseStrictJson(Buffer.from(text))).message).toContain(message);
  });

  it('refuses bytes that are not UTF-8 (JSON.parse would read U+FFFD)', () => {
    const bytes = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    expect(caught(() => parseStrictJson(bytes)).message).toContain('not valid UTF-8');
    // an encoded surrogate (CESU-8 style) is not UTF-8 either
    const cesu = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]);
    expect(caught(() => parseStrictJson(cesu)).message).toContain('not valid UTF-8');
  });

  it('accepts nesting up to the limit', () => {
    expect(() => parseStrictJson(Buffer.from(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`))).not.toThrow();
  });
});

const d = (s: string): Digest => sha256Digest(s);
function manifest(): BundleManifest {
  return {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created: '2024-05-01T12:00:00Z',
    creator: 'airlock/0.1.0',
    images: [
      { name: 'quay.io/a/b:1', source: 'quay.io/a/b:1', digest: d('m'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, platforms: [] },
    ],
    blobs: [{ digest: d('m'), size: 1, mediaType: 'application/vnd.oci.image.manifest.v1+json' }],
    layout: { 'oci-layout': { digest: d('l'), size: 1 }, 'index.json': { digest: d('i'), size: 1 } },
    totals: { images: 1, blobs: 1, bytes: 1, referencedBytes: 1 },
  };
}

describe('signed documents are parsed strictly', () => {
  it('bundle.json: duplicate "images", BOM, trailing data, bad UTF-8 are INTEGRITY naming the problem', () => {
    const good = serializeBundleManifest(manifest());
    expect(parseBundleManifest(good, 'b.tar.zst').images).toHaveLength(1);
    const text = good.toString('utf8');
    const cases: Array<[Buffer, string]> = [
      [Buffer.from(text.replace('"images": [', '"images": [],\n  "images": [')), 'duplicate key "images"'],
      [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), good]), 'byte order mark'],
      [Buffer.from(`${text}{}`), 'data after the JSON value'],
      [Buffer.from(text.replace('"creator": "airlock/0.1.0"', '"creator": "airlock/0.1.0\\udfff"')), 'lone surrogate'],
      [Buffer.concat([good.subarray(0, 20), Buffer.from([0xff]), good.subarray(20)]), 'not valid UTF-8'],
    ];
    for (const [bytes, message] of cases) {
      const err = caught(() => parseBundleManifest(bytes, 'b.tar.zst'));
      expect(err, message).toBeInstanceOf(AirlockError);
      expect((err as AirlockError).code).toBe('INTEGRITY');
      expect(err.message).toContain(message);
    }
  });

  it('bundle.json.sig: a duplicate key is SIGNATURE (malformed) naming it', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const sig = signBundle(Buffer.from('{}'), { privateKey, keyId: keyIdOf(publicKey) }).bytes.toString('utf8');
    expect(parseSignature(Buffer.from(sig)).algorithm).toBe('ed25519');
    const twice = sig.replace('"algorithm": "ed25519"', '"algorithm": "ed25519", "algorithm": "ed25519"');
    const err = caught(() => parseSignature(Buffer.from(twice))) as AirlockError;
    expect(err.code).toBe('SIGNATURE');
    expect(err.details?.reason).toBe('malformed');
    expect(err.message).toContain('duplicate key "algorithm"');
  });

  it('inventory: a duplicate key in the envelope or in the signed payload is refused', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const keyId = keyIdOf(publicKey);
    const payload = { schemaVersion: 1 as const, created: '2026-11-28T00:00:00Z', target: 'r.lan', images: [], blobs: [{ digest: d('a'), size: 1 }] };
    const ok = writeInventory(payload, { privateKey, keyId });
    expect(parseInventory(ok, 'have.json', [{ publicKey, keyId, path: 'k.pub' }]).payload.target).toBe('r.lan');
    const envelope = ok
      .toString('utf8')
      .replace(`"mediaType": "${INVENTORY_MEDIA_TYPE}"`, `"mediaType": "${INVENTORY_MEDIA_TYPE}", "mediaType": "${INVENTORY_MEDIA_TYPE}"`);
    expect(caught(() => parseInventory(Buffer.from(envelope), 'have.json')).message).toContain('duplicate key "mediaType"');
    // the payload signed with a key twice: the signature verifies, strictness refuses it
    const inner = '{"schemaVersion":1,"created":"2026-11-28T00:00:00Z","target":"r.lan","target":"evil","images":[],"blobs":[]}';
    const signature = JSON.parse(signBundle(Buffer.from(inner), { privateKey, keyId }).bytes.toString('utf8')) as unknown;
    const file = Buffer.from(JSON.stringify({ mediaType: INVENTORY_MEDIA_TYPE, inventory: inner, signature }));
    const err = caught(() => parseInventory(file, 'have.json', [{ publicKey, keyId, path: 'k.pub' }]));
    expect(err.message).toContain('duplicate key "target"');
  });

  it('the archive index: a duplicate key is INTEGRITY naming it', () => {
    const index = '{"schemaVersion":1,"entries":[{"path":"a","size":1,"offset":0,"frames":1,"dataOffset":512,"encoding":"raw","encoding":"zstd"}]}';
    const err = caught(() => decodeIndex(Buffer.from(index), 'b.tar.zst')) as AirlockError;
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toContain('duplicate key "encoding"');
  });
});
