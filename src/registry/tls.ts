/**
 * TLS settings for one registry: extra CAs (`--ca-file`, `certs.d` directories), a client
 * certificate for mTLS, or no verification at all (`--insecure-skip-tls-verify`).
 *
 * `certs.d` follows docker's layout: `DIR/HOST[:PORT]/*.crt` are CA certificates, and each
 * `NAME.cert` with its `NAME.key` is a client certificate pair (`client.cert` / `client.key`).
 * Extra CAs are added to Node's bundled roots, not put in their place, so public registries keep
 * working when a private CA is configured.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates, type ConnectionOptions } from 'node:tls';
import { AirlockError, fromFsError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';

/** Where docker and podman look for per-registry certificates. */
export const DEFAULT_CERTS_DIRS: readonly string[] = ['/etc/docker/certs.d', '/etc/containers/certs.d'];

/** The operator's TLS choices for one registry. */
export interface TlsSettings {
  /** Skip certificate verification entirely. */
  insecureSkipTlsVerify?: boolean;
  /** PEM files with extra CA certificates (`--ca-file`). */
  caFiles?: string[];
  /** Directories laid out as `DIR/HOST[:PORT]/…`. Default {@link DEFAULT_CERTS_DIRS}. */
  certsDirs?: readonly string[];
}

/** The TLS part of undici's `connect` options. */
export type TlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;

/** A CA bundle: the system's whole bundle (about 200 KiB on Debian) fits many times over. */
export const MAX_PEM_BYTES = 4 * 1024 * 1024;

async function readPem(path: string): Promise<string> {
  const hint = "pass a PEM file (-----BEGIN CERTIFICATE----- …), such as the registry CA's ca.crt";
  return (await readSmallFile(path, { maxBytes: MAX_PEM_BYTES, what: 'PEM file', hint })).toString('utf8');
}

/** Names in a directory; a missing directory is empty (most hosts have no certs.d entry). */
async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw fromFsError(err, dir, 'reading');
  }
}

interface CertsDirContent {
  cas: string[];
  client?: { cert: string; key: string };
}

/** CAs and the first client pair in one `DIR/HOST` directory. */
async function readHostCertsDir(dir: string): Promise<CertsDirContent> {
  const names = await listDir(dir);
  const out: CertsDirContent = { cas: [] };
  for (const name of names) {
    if (name.endsWith('.crt')) out.cas.push(await readPem(join(dir, name)));
  }
  for (const name of names.filter((n) => n.endsWith('.cert'))) {
    const keyName = `${name.slice(0, -'.cert'.length)}.key`;
    if (!names.includes(keyName)) {
      throw new AirlockError('TLS', `client certificate ${join(dir, name)} has no key ${keyName}`, {
        subject: join(dir, name),
        hint: `put the private key next to it as ${join(dir, keyName)}, or remove the certificate`,
      });
    }
    out.client ??= { cert: await readPem(join(dir, name)), key: await readPem(join(dir, keyName)) };
  }
  return out;
}

/**
 * Build the TLS options for `host` (`HOST[:PORT]`, as named in certs.d).
 *
 * @example
 * await loadTlsOptions('registry.local:5000', { caFiles: ['/etc/pki/local-ca.pem'] })
 * // → { ca: [...node roots, '-----BEGIN CERTIFICATE-----…'], rejectUnauthorized: true }
 */
export async function loadTlsOptions(host: string, settings: TlsSettings): Promise<TlsOptions> {
  const extraCas: string[] = [];
  for (const file of settings.caFiles ?? []) extraCas.push(await readPem(file));
  let client: CertsDirContent['client'];
  for (const dir of settings.certsDirs ?? DEFAULT_CERTS_DIRS) {
    const content = await readHostCertsDir(join(dir, host));
    extraCas.push(...content.cas);
    client ??= content.client;
  }
  const options: TlsOptions = { rejectUnauthorized: settings.insecureSkipTlsVerify !== true };
  if (extraCas.length > 0) options.ca = [...rootCertificates, ...extraCas];
  if (client !== undefined) {
    options.cert = client.cert;
    options.key = client.key;
  }
  return options;
}
