/**
 * ed25519 key files for bundle signing: `PREFIX.key` (PKCS#8 PEM, mode 0600) and `PREFIX.pub`
 * (SPKI PEM). A key is named by its key id, `sha256:` + the hex sha256 of its SPKI DER encoding,
 * which is what a signature records and what `--trust` files are matched by.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { link, open, unlink } from 'node:fs/promises';
import { AirlockError, fromFsError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';

/** A private key ready to sign with. */
export interface SigningKey {
  keyId: string;
  privateKey: KeyObject;
  /** The file it was loaded from, when it was. */
  path?: string;
}

/** A public key whose signatures are accepted. */
export interface TrustedKey {
  keyId: string;
  publicKey: KeyObject;
  /** The file it was loaded from (named in messages). */
  path: string;
}

/** What {@link generateKeyPair} wrote. */
export interface GeneratedKeyPair {
  privateKeyFile: string;
  publicKeyFile: string;
  keyId: string;
}

/** Largest key file read: 64 KiB (an ed25519 PEM is ~120 bytes). */
const MAX_KEY_FILE_BYTES = 64 << 10;

/** The key id of an ed25519 public key: `sha256:<hex of sha256(SPKI DER)>`. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}

/**
 * Write a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`. Each file appears complete
 * or not at all (written to a temporary name, then hard-linked into place, which fails rather
 * than replace an existing file).
 *
 * @throws USAGE when either file already exists
 */
export async function generateKeyPair(prefix: string): Promise<GeneratedKeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const privateKeyFile = `${prefix}.key`;
  const publicKeyFile = `${prefix}.pub`;
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const spki = publicKey.export({ type: 'spki', format: 'pem' }) as string;
  await createExclusive(privateKeyFile, pkcs8, 0o600);
  try {
    await createExclusive(publicKeyFile, spki, 0o644);
  } catch (err) {
    await unlink(privateKeyFile).catch(() => undefined);
    throw err;
  }
  return { privateKeyFile, publicKeyFile, keyId: keyIdOf(publicKey) };
}

async function createExclusive(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    const fh = await open(temp, 'wx', mode);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await link(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AirlockError('USAGE', `${path} already exists; refusing to overwrite a key`, {
        subject: path,
        hint: 'choose another --out prefix, or move the old key pair away first',
      });
    }
    throw fromFsError(err, path, 'writing');
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function readKeyFile(path: string, what: string): Promise<string> {
  const hint = 'airlock uses ed25519 keys in PEM files made by: airlock key generate --out PREFIX (PREFIX.key signs, PREFIX.pub verifies)';
  return (await readSmallFile(path, { maxBytes: MAX_KEY_FILE_BYTES, what, hint })).toString('utf8');
}

function notAKey(path: string, what: string, why: string): AirlockError {
  return new AirlockError('INPUT_INVALID', `${path} is not an ed25519 ${what}: ${why}`, {
    subject: path,
    hint: 'airlock uses ed25519 keys in PEM files made by: airlock key generate --out PREFIX (PREFIX.key signs, PREFIX.pub verifies)',
  });
}

/** Load `PREFIX.key` for signing. */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  const pem = await readKeyFile(path, 'private key');
  if (!/-----BEGIN PRIVATE KEY-----/.test(pem)) {
    throw notAKey(path, 'private key', /PUBLIC KEY/.test(pem) ? 'it is a public key (use the .key file to sign)' : 'no PKCS#8 PEM block');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw notAKey(path, 'private key', (err as Error).message);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw notAKey(path, 'private key', `it is a ${privateKey.asymmetricKeyType} key`);
  return { keyId: keyIdOf(createPublicKey(privateKey)), privateKey, path };
}

/** Load one `PREFIX.pub` to trust. */
export async function loadPublicKey(path: string): Promise<TrustedKey> {
  const pem = await readKeyFile(path, 'public key');
  if (!/-----BEGIN PUBLIC KEY-----/.test(pem)) {
    throw notAKey(path, 'public key', /PRIVATE KEY/.test(pem) ? 'it is a private key (trust the .pub file; keep the .key secret)' : 'no SPKI PEM block');
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw notAKey(path, 'public key', (err as Error).message);
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') throw notAKey(path, 'public key', `it is a ${publicKey.asymmetricKeyType} key`);
  return { keyId: keyIdOf(publicKey), publicKey, path };
}

/** Load every `--trust` file, in order. */
export async function loadPublicKeys(paths: readonly string[]): Promise<TrustedKey[]> {
  const keys: TrustedKey[] = [];
  for (const path of paths) keys.push(await loadPublicKey(path));
  return keys;
}
