/**
 * Finding credentials for a registry the way docker, podman and skopeo do.
 *
 * Order: `--creds USER:PASS`; then each auth file in turn — `--authfile FILE` alone when given (as
 * podman and skopeo read it: it replaces the list, so it wins over `$REGISTRY_AUTH_FILE`), else
 * `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `$DOCKER_CONFIG/config.json` (or
 * `~/.docker/config.json`) — and within a file: `credHelpers[host]`, then the most specific `auths`
 * entry (`host/ns/repo`, `host/ns`, `host`), then `credsStore`. The first hit wins. Docker Hub is
 * found under `https://index.docker.io/v1/`, `index.docker.io`, `registry-1.docker.io` or `docker.io`.
 * Environment, home directory and helper runner are injectable for tests.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AirlockError } from '../errors.js';
import { registerCredentials } from '../redact.js';
import { readOptionalSmallFile } from '../fs/small-file.js';
import { runCredentialHelper, type HelperRunner } from './credential-helper.js';

/** Credentials for one registry. `source` names where they came from, never the secret. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's `identitytoken`), sent to the token realm by POST. */
  identityToken?: string;
  source: string;
}

/** Inputs of {@link resolveCredentials}; everything read from the environment is injectable. */
export interface CredentialOptions {
  /** From `--creds USER:PASS`; wins over every file. */
  creds?: { username: string; password: string };
  /** Replaces the default list of auth files (see {@link defaultAuthFiles}); `--authfile` is one. */
  authFiles?: string[];
  /** Environment to read `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `DOCKER_CONFIG`, `PATH` from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Home directory for `~/.docker/config.json`. Default `os.homedir()`. */
  homeDir?: string;
  /** Runs `docker-credential-NAME get`. Default {@link runCredentialHelper}. */
  runHelper?: HelperRunner;
}

/** The key docker uses for Docker Hub in `auths` and the server URL it hands helpers. */
export const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** The auth files consulted when none are given, in order. */
export function defaultAuthFiles(env: Record<string, string | undefined>, homeDir: string): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  files.push(env.DOCKER_CONFIG ? join(env.DOCKER_CONFIG, 'config.json') : join(homeDir, '.docker', 'config.json'));
  return files;
}

/** `https://index.docker.io/v1/` → `docker.io`; `http://host:5000/` → `host:5000`; paths are kept. */
export function normalizeAuthKey(key: string): string {
  let k = key
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/+$/, '');
  k = k.replace(/\/v[12]$/, '');
  const slash = k.indexOf('/');
  const host = (slash === -1 ? k : k.slice(0, slash)).toLowerCase();
  const rest = slash === -1 ? '' : k.slice(slash);
  return (DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host) + rest;
}

/** Keys to try for `host` and `repository`, most specific first: `h/a/b`, `h/a`, `h`. */
export function authKeyCandidates(host: string, repository?: string): string[] {
  const base = normalizeAuthKey(host);
  const out: string[] = [];
  const parts = repository === undefined || repository === '' ? [] : repository.split('/');
  for (let n = parts.length; n > 0; n--) out.push(`${base}/${parts.slice(0, n).join('/')}`);
  out.push(base);
  return out;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** An auth file holds a login per registry: a few KiB; a thousand logins fit in far less than this. */
export const MAX_AUTH_FILE_BYTES = 4 * 1024 * 1024;

async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  const bytes = await readOptionalSmallFile(path, {
    maxBytes: MAX_AUTH_FILE_BYTES,
    what: 'auth file',
    hint: 'an auth file is the JSON that podman login or docker login writes',
  });
  if (bytes === undefined) return undefined;
  const text = bytes.toString('utf8');
  try {
    const doc = JSON.parse(text) as unknown;
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not an object');
    return doc as AuthFile;
  } catch (err) {
    // Not the parser's error as the cause: its message quotes the text around the fault, and in an
    // auth file that text is a password or its base64, which --debug would print. The position is enough.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new AirlockError('INPUT_INVALID', `auth file ${path} is not valid JSON${at === undefined ? '' : ` (at character ${at})`}`, {
      subject: path,
      hint: 'fix or remove the file, or log in again (docker login / podman login)',
    });
  }
}

function entryCredentials(entry: AuthEntry, source: string, key: string): Credentials | undefined {
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    return { identityToken: entry.identitytoken, source };
  }
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) {
      throw new AirlockError('INPUT_INVALID', `auth entry ${key} in ${source} is not base64 of USER:PASSWORD`, {
        subject: source,
        hint: 'log in again (docker login / podman login) or fix the entry',
      });
    }
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), source };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password, source };
  }
  return undefined; // `{}` entries just list logins kept in a credsStore
}

function findEntry(file: AuthFile, candidates: string[], source: string): Credentials | undefined {
  const auths = file.auths ?? {};
  const byKey = new Map<string, [string, AuthEntry]>();
  for (const [key, entry] of Object.entries(auths)) {
    if (entry !== null && typeof entry === 'object') byKey.set(normalizeAuthKey(key), [key, entry]);
  }
  for (const candidate of candidates) {
    const hit = byKey.get(candidate);
    const creds = hit === undefined ? undefined : entryCredentials(hit[1], source, hit[0]);
    if (creds !== undefined) return creds;
  }
  return undefined;
}

function helperFor(file: AuthFile, host: string): string | undefined {
  const wanted = normalizeAuthKey(host);
  for (const [key, helper] of Object.entries(file.credHelpers ?? {})) {
    if (normalizeAuthKey(key) === wanted && typeof helper === 'string' && helper !== '') return helper;
  }
  return undefined;
}

async function askHelper(helper: string, host: string, opts: Required<Pick<CredentialOptions, 'env' | 'runHelper'>>): Promise<Credentials | undefined> {
  const serverUrl = normalizeAuthKey(host) === 'docker.io' ? DOCKER_HUB_SERVER_URL : host;
  const got = await opts.runHelper(helper, serverUrl, opts.env);
  if (got === undefined) return undefined;
  const source = `docker-credential-${helper}`;
  if (got.username === '<token>') return { identityToken: got.secret, source };
  return { username: got.username, password: got.secret, source };
}

/**
 * Credentials for `host` (as the operator named it) and, optionally, a repository on it, or
 * undefined for anonymous access.
 *
 * @example
 * await resolveCredentials('quay.io', 'coreos/etcd', { env: process.env })
 * // → { username: 'me', password: '…', source: '/home/me/.docker/config.json' }
 */
export async function resolveCredentials(host: string, repository: string | undefined, opts: CredentialOptions = {}): Promise<Credentials | undefined> {
  const found = await findCredentials(host, repository, opts);
  // From here on the secrets may be sent, so from here on they are redacted wherever echoed.
  if (found !== undefined) registerCredentials(found);
  return found;
}

async function findCredentials(host: string, repository: string | undefined, opts: CredentialOptions): Promise<Credentials | undefined> {
  if (opts.creds !== undefined) return { ...opts.creds, source: '--creds' };
  const env = opts.env ?? process.env;
  const files = opts.authFiles ?? defaultAuthFiles(env, opts.homeDir ?? homedir());
  const candidates = authKeyCandidates(host, repository);
  const helperOpts = { env, runHelper: opts.runHelper ?? runCredentialHelper };
  for (const path of files) {
    const file = await readAuthFile(path);
    if (file === undefined) continue;
    const helper = helperFor(file, host);
    if (helper !== undefined) {
      const fromHelper = await askHelper(helper, host, helperOpts);
      if (fromHelper !== undefined) return fromHelper;
    }
    const fromEntry = findEntry(file, candidates, path);
    if (fromEntry !== undefined) return fromEntry;
    if (typeof file.credsStore === 'string' && file.credsStore !== '') {
      const fromStore = await askHelper(file.credsStore, host, helperOpts);
      if (fromStore !== undefined) return fromStore;
    }
  }
  return undefined;
}
