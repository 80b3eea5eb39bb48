/**
 * Seed the source registry from the corpus layout, every digest preserved.
 *
 * OCI images of the main set go up with `skopeo copy --all --preserve-digests`. Docker-media-type
 * images cannot (skopeo's `oci:` reader ignores them) and the tiny images would cost one
 * skopeo process each, so those are pushed with plain HTTP, as `test/support/seed.ts` does: blobs as
 * POST then PUT `?digest=`, manifests PUT with Content-Type = mediaType, an index's children first.
 * Seeding is not measured.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';

const run = promisify(execFile);
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const OCI_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json']);
/** Manifests are at most 4 MiB; skopeo prints little. */
const MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * Push `images` from the layout `dir` into the registry at `reg`.
 * @param {{ host: string, url: string }} reg
 * @param {string} dir
 * @param {import('./corpus.mjs').BenchImage[]} images
 * @param {{ skopeo: boolean }} opts use skopeo for OCI images (else HTTP for all)
 */
export async function seedRegistry(reg, dir, images, opts) {
  const pusher = new Pusher(reg.url, dir);
  try {
    for (const image of images) {
      if (opts.skopeo && OCI_TYPES.has(image.mediaType)) {
        const args = ['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', `oci:${dir}:${image.name}`,
          `docker://${reg.host}/${image.repository}:${image.tag}`];
        try {
          await run('skopeo', args, { maxBuffer: MAX_OUTPUT });
        } catch (err) {
          const e = /** @type {Error & { stderr?: string }} */ (err);
          throw new Error(`seed: skopeo ${args.join(' ')} failed: ${e.stderr || e.message}`);
        }
      } else {
        await pusher.manifest(image.repository, { digest: image.digest, mediaType: image.mediaType }, image.tag);
      }
    }
  } finally {
    await pusher.close();
  }
}

class Pusher {
  /** @param {string} url @param {string} dir */
  constructor(url, dir) {
    this.url = url;
    this.dir = dir;
    this.dispatcher = new Agent();
  }

  /** @param {string} repository @param {{ digest: string, mediaType: string }} desc @param {string} reference */
  async manifest(repository, desc, reference) {
    const bytes = await readFile(this.blobPath(desc.digest));
    const doc = JSON.parse(bytes.toString('utf8'));
    if (INDEX_TYPES.has(desc.mediaType)) {
      for (const child of doc.manifests ?? []) await this.manifest(repository, child, child.digest);
    } else {
      for (const blob of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) await this.blob(repository, blob);
    }
    const res = await this.send('PUT', `/v2/${repository}/manifests/${reference}`, [201], {
      headers: { 'content-type': desc.mediaType },
      body: bytes,
    });
    const stored = res.headers['docker-content-digest'];
    if (stored !== desc.digest) throw new Error(`seed: ${repository}:${reference} stored as ${String(stored)}, wanted ${desc.digest}`);
  }

  /** @param {string} repository @param {{ digest: string, size: number }} desc */
  async blob(repository, desc) {
    const head = await this.send('HEAD', `/v2/${repository}/blobs/${desc.digest}`, [200, 404]);
    if (head.statusCode === 200) return;
    const started = await this.send('POST', `/v2/${repository}/blobs/uploads/`, [202]);
    const location = new URL(String(started.headers.location), this.url);
    location.searchParams.set('digest', desc.digest);
    await this.send('PUT', location, [201], {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: createReadStream(this.blobPath(desc.digest)),
    });
  }

  /**
   * @param {string} method @param {string | URL} path @param {number[]} expect
   * @param {{ headers?: Record<string, string>, body?: any }} [opts]
   */
  async send(method, path, expect, opts = {}) {
    const url = new URL(path, this.url);
    const res = await request(url, { method, dispatcher: this.dispatcher, ...opts });
    const text = await res.body.text();
    if (!expect.includes(res.statusCode)) {
      throw new Error(`seed: ${method} ${url.pathname} answered ${res.statusCode}: ${text.slice(0, 2000)}`);
    }
    return res;
  }

  /** @param {string} digest */
  blobPath(digest) {
    return join(this.dir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  }

  async close() {
    await this.dispatcher.close();
  }
}
