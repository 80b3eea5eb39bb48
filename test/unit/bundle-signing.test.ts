import { generateKeyPairSync } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair, loadPublicKey, loadPublicKeys, loadSigningKey } from '../../src/bundle/keys.js';
import { parseSignature, signatureKeyId, signBundle, verifySignature } from '../../src/bundle/signing.js';
import { AirlockError, isAirlockError } from '../../src/errors.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('bundle-signing');
});
afterEach(async () => {
  await dir.remove();
});

function caught(fn: () => unknown): AirlockError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AirlockError) return err;
    throw err;
  }
  throw new Error('expected an error');
}

async function caughtAsync(p: Promise<unknown>): Promise<AirlockError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof AirlockError) return err;
  throw new Error(`expected an AirlockError, got ${String(err)}`);
}

const BUNDLE_JSON = Buffer.from('{"schemaVersion":1}\n');

describe('key files', () => {
  it('generates a 0600 private key and a public key with the same key id', async () => {
    const prefix = join(dir.path, 'signer');
    const pair = await generateKeyPair(prefix);
    expect(pair).toMatchObject({ privateKeyFile: `${prefix}.key`, publicKeyFile: `${prefix}.pub` });
    expect(pair.keyId).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect((await stat(pair.privateKeyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(pair.privateKeyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(await readFile(pair.publicKeyFile, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect((await loadSigningKey(pair.privateKeyFile)).keyId).toBe(pair.keyId);
    expect((await loadPublicKey(pair.publicKeyFile)).keyId).toBe(pair.keyId);
  });

  it('refuses to overwrite an existing key file', async () => {
    const prefix = join(dir.path, 'signer');
    await writeFile(`${prefix}.pub`, 'old');
    const err = await caughtAsync(generateKeyPair(prefix));
    expect(err.code).toBe('USAGE');
    expect(err.message).toMatch(/already exists/);
    expect(await readFile(`${prefix}.pub`, 'utf8')).toBe('old');
    await expect(stat(`${prefix}.key`)).rejects.toThrow(); // the half-made pair was removed
  });

  it('explains missing, swapped and non-ed25519 key files', async () => {
    const pair = await generateKeyPair(join(dir.path, 'k'));
    const missing = await caughtAsync(loadSigningKey(join(dir.path, 'nope.key')));
    expect([missing.code, missing.message]).toEqual(['INPUT_INVALID', expect.stringMatching(/no such file/)]);
    expect((await caughtAsync(loadSigningKey(pair.publicKeyFile))).message).toMatch(/it is a public key/);
    expect((await caughtAsync(loadPublicKey(pair.privateKeyFile))).message).toMatch(/it is a private key/);
    const rsa = join(dir.path, 'rsa.pub');
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    await writeFile(rsa, publicKey.export({ type: 'spki', format: 'pem' }));
    const notEd = await caughtAsync(loadPublicKeys([pair.publicKeyFile, rsa]));
    expect([notEd.code, notEd.message]).toEqual(['INPUT_INVALID', expect.stringMatching(/not an ed25519 public key: it is a rsa key/)]);
    await writeFile(join(dir.path, 'junk.key'), 'hello');
    expect((await caughtAsync(loadSigningKey(join(dir.path, 'junk.key')))).code).toBe('INPUT_INVALID');
  });
});

describe('bundle signatures', () => {
  it('round-trips and names the key', async () => {
    const pair = await generateKeyPair(join(dir.path, 'k'));
    const sig = signBundle(BUNDLE_JSON, await loadSigningKey(pair.privateKeyFile));
    expect(sig.keyId).toBe(pair.keyId);
    expect(parseSignature(sig.bytes)).toMatchObject({ schemaVersion: 1, algorithm: 'ed25519', keyId: pair.keyId });
    expect(signatureKeyId(sig.bytes)).toBe(pair.keyId);
    expect(verifySignature(BUNDLE_JSON, sig.bytes, [await loadPublicKey(pair.publicKeyFile)])).toEqual({ keyId: pair.keyId });
  });

  it('fails for a tampered bundle.json, an unknown key, a forged signature and garbage', async () => {
    const a = await generateKeyPair(join(dir.path, 'a'));
    const b = await generateKeyPair(join(dir.path, 'b'));
    const trustA = [await loadPublicKey(a.publicKeyFile)];
    const sig = signBundle(BUNDLE_JSON, await loadSigningKey(a.privateKeyFile));

    const tampered = caught(() => verifySignature(Buffer.from('{"schemaVersion":2}\n'), sig.bytes, trustA));
    expect([tampered.code, tampered.details?.['reason']]).toEqual(['SIGNATURE', 'modified']);

    const byB = signBundle(BUNDLE_JSON, await loadSigningKey(b.privateKeyFile));
    const unknown = caught(() => verifySignature(BUNDLE_JSON, byB.bytes, trustA));
    expect([unknown.code, unknown.details?.['reason']]).toEqual(['SIGNATURE', 'untrusted']);
    expect(unknown.message).toContain(b.keyId);
    expect(unknown.hint).toContain('--trust KEY.pub');

    // B's signature relabelled with A's key id: the digest matches, the signature does not.
    const forged = JSON.parse(byB.bytes.toString()) as Record<string, unknown>;
    forged['keyId'] = a.keyId;
    const bad = caught(() => verifySignature(BUNDLE_JSON, Buffer.from(JSON.stringify(forged)), trustA));
    expect([bad.code, bad.details?.['reason']]).toEqual(['SIGNATURE', 'invalid']);

    for (const junk of ['nope', '{}', '[]', JSON.stringify({ ...forged, extra: 1 })]) {
      const err = caught(() => verifySignature(BUNDLE_JSON, Buffer.from(junk), trustA));
      expect(isAirlockError(err, 'SIGNATURE') && err.details?.['reason']).toBe('malformed');
    }
  });
});
