// @ts-check
/**
 * Seed a test registry from an OCI image layout with plain HTTP requests, preserving every digest
 * exactly, Docker media types included (skopeo converts those when reading an `oci:` layout). The
 * tests and the benchmark (`bench/seed.mjs`) both seed with it; plain JavaScript with JSDoc types
 * for that reason (see `registry.js`).
 *
 * Test support, not product code: one request at a time, no retries, every unexpected status throws
 * with the registry's answer. The protocol distribution accepts: blobs go up as POST
 * /blobs/uploads/ then PUT ?digest= with the body; manifests are PUT with Content-Type = their
 * mediaType, an index's children first and into the same repository. Against a token-auth registry
 * it fetches one `pull,push` token per repository from the realm (with the registry's login) before
 * the first request.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Agent, request } from 'undici';

/** @typedef {import('./registry.js').TestRegistry} TestRegistry */

/**
 * Where one layout image ended up in the registry.
 * @typedef {object} SeededImage
 * @property {string} name The name in the layout, e.g. `quay.io/coreos/etcd:v3.3.0`.
 * @property {string} repository Repository path without the upstream host, e.g. `coreos/etcd`.
 * @property {string} tag
 * @property {string} ref The reference in the test registry, e.g. `127.0.0.1:PORT/coreos/etcd:v3.3.0`.
 * @property {string} digest
 * @property {string} mediaType
 */

/**
 * @typedef {object} Descriptor
 * @property {string} mediaType
 * @property {string} digest
 * @property {number} size
 * @property {Record<string, string>} [annotations]
 */

const REF_NAME = 'org.opencontainers.image.ref.name';
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/**
 * Push images (default: every named entry of `index.json`) from `layoutDir` into `reg`, under their
 * repository path without the upstream host. Returns layout name → where it went.
 * @example
 *   const seeded = await seedRegistry(reg, corpus.dir, ['quay.io/coreos/etcd:v3.3.0']);
 *   seeded.get('quay.io/coreos/etcd:v3.3.0')?.ref; // '127.0.0.1:PORT/coreos/etcd:v3.3.0'
 * @param {TestRegistry} reg
 * @param {string} layoutDir
 * @param {string[]} [images]
 * @returns {Promise<Map<string, SeededImage>>}
 */
export async function seedRegistry(reg, layoutDir, images) {
  const index = /** @type {{ manifests: Descriptor[] }} */ (JSON.parse(await readFile(join(layoutDir, 'index.json'), 'utf8')));
  const byName = new Map(index.manifests.map((m) => [m.annotations?.[REF_NAME] ?? '', m]));
  byName.delete('');
  const pusher = new Pusher(reg, layoutDir);
  try {
    /** @type {Map<string, SeededImage>} */
    const seeded = new Map();
    for (const name of images ?? [...byName.keys()]) {
      const entry = byName.get(name);
      if (!entry) throw new Error(`seed: ${name} is not named in ${layoutDir}/index.json`);
      const { repository, tag } = splitName(name);
      await pusher.manifest(repository, entry, tag);
      const { digest, mediaType } = entry;
      seeded.set(name, { name, repository, tag, ref: `${reg.host}/${repository}:${tag}`, digest, mediaType });
    }
    return seeded;
  } finally {
    await pusher.close();
  }
}

/**
 * Split `HOST/PATH:TAG` into the repository path without the host (a first component with a dot or
 * colon, or `localhost`) and the tag: `quay.io/coreos/etcd:v3.3.0` → `coreos/etcd`, `v3.3.0`.
 * @param {string} name
 * @returns {{ repository: string, tag: string }}
 */
export function splitName(name) {
  const colon = name.lastIndexOf(':');
  if (colon <= name.lastIndexOf('/')) throw new Error(`seed: ${name} has no tag`);
  const path = name.slice(0, colon);
  const slash = path.indexOf('/');
  const first = path.slice(0, Math.max(slash, 0));
  const repository = slash > 0 && (/[.:]/.test(first) || first === 'localhost') ? path.slice(slash + 1) : path;
  return { repository, tag: name.slice(colon + 1) };
}

class Pusher {
  /** @type {Agent} */
  #dispatcher;
  /** @type {string | undefined} */
  #basic;
  /** Bearer tokens by repository (token auth only). @type {Map<string, string>} */
  #tokens = new Map();
  /** @type {TestRegistry} */
  #reg;
  /** @type {string} */
  #layoutDir;

  /**
   * @param {TestRegistry} reg
   * @param {string} layoutDir
   */
  constructor(reg, layoutDir) {
    this.#reg = reg;
    this.#layoutDir = layoutDir;
    const caFile = reg.caFile ?? reg.tokenAuth?.caFile;
    this.#dispatcher = new Agent({ connect: caFile ? { ca: readFileSync(caFile, 'utf8') } : {} });
    this.#basic = reg.username ? `Basic ${Buffer.from(`${reg.username}:${reg.password ?? ''}`).toString('base64')}` : undefined;
  }

  /**
   * Push a manifest's blobs (or an index's children), then the manifest under `reference`.
   * @param {string} repository
   * @param {Descriptor} desc
   * @param {string} reference
   */
  async manifest(repository, desc, reference) {
    const bytes = await readFile(this.#blobPath(desc.digest));
    const doc = /** @type {{ manifests?: Descriptor[], config?: Descriptor, layers?: Descriptor[] }} */ (JSON.parse(bytes.toString('utf8')));
    if (INDEX_TYPES.has(desc.mediaType)) {
      for (const child of doc.manifests ?? []) await this.manifest(repository, child, child.digest);
    } else {
      for (const blob of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) await this.blob(repository, blob);
    }
    const res = await this.#send(repository, 'PUT', `/v2/${repository}/manifests/${reference}`, [201], {
      headers: { 'content-type': desc.mediaType },
      body: bytes,
    });
    const stored = res.headers['docker-content-digest'];
    if (stored !== desc.digest) throw new Error(`seed: ${repository}:${reference} stored as ${String(stored)}, wanted ${desc.digest}`);
  }

  /**
   * Upload a blob unless the repository already has it.
   * @param {string} repository
   * @param {Descriptor} desc
   */
  async blob(repository, desc) {
    const head = await this.#send(repository, 'HEAD', `/v2/${repository}/blobs/${desc.digest}`, [200, 404]);
    if (head.status === 200) return;
    const started = await this.#send(repository, 'POST', `/v2/${repository}/blobs/uploads/`, [202]);
    const location = new URL(String(started.headers.location), this.#reg.url);
    location.searchParams.set('digest', desc.digest);
    await this.#send(repository, 'PUT', location, [201], {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: createReadStream(this.#blobPath(desc.digest)),
    });
  }

  async close() {
    await this.#dispatcher.close();
  }

  /** @param {string} digest */
  #blobPath(digest) {
    return join(this.#layoutDir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  }

  /**
   * The Authorization header for requests to `repository`: Basic, a Bearer token, or none.
   * @param {string} repository
   * @returns {Promise<string | undefined>}
   */
  async #authorization(repository) {
    const token = this.#reg.tokenAuth;
    if (!token) return this.#basic;
    const cached = this.#tokens.get(repository);
    if (cached) return `Bearer ${cached}`;
    const url = new URL(token.realm);
    url.searchParams.set('service', token.service);
    url.searchParams.set('scope', `repository:${repository}:pull,push`);
    const headers = this.#basic ? { authorization: this.#basic } : {};
    const res = await request(url, { headers, dispatcher: this.#dispatcher });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`seed: token for ${repository} answered ${res.statusCode}: ${text.slice(0, 2000)}`);
    const body = /** @type {{ token?: string, access_token?: string }} */ (JSON.parse(text));
    const fetched = body.token ?? body.access_token;
    if (!fetched) throw new Error(`seed: token server answered without a token: ${text.slice(0, 2000)}`);
    this.#tokens.set(repository, fetched);
    return `Bearer ${fetched}`;
  }

  /**
   * @param {string} repository
   * @param {'HEAD' | 'POST' | 'PUT'} method
   * @param {string | URL} target
   * @param {number[]} expect
   * @param {{ headers?: Record<string, string>, body?: Buffer | import('node:stream').Readable }} [init]
   * @returns {Promise<{ status: number, headers: Record<string, string | string[] | undefined> }>}
   */
  async #send(repository, method, target, expect, init = {}) {
    const url = new URL(target, this.#reg.url);
    const authorization = await this.#authorization(repository);
    const headers = { ...init.headers, ...(authorization ? { authorization } : {}) };
    const res = await request(url, { method, headers, body: init.body, dispatcher: this.#dispatcher });
    const text = await res.body.text();
    if (!expect.includes(res.statusCode)) {
      throw new Error(`seed: ${method} ${url.pathname} answered ${res.statusCode}: ${text.slice(0, 2000)}`);
    }
    return { status: res.statusCode, headers: res.headers };
  }
}
