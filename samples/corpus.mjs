/**
 * Deterministic corpus of small container images, generated without any network.
 *
 * `writeCorpus(dir, spec)` writes an OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/<hex>`) and describes what it wrote. Every byte is a pure function of the spec and
 * its seed (layers: see `corpus-layer.mjs`; configs and manifests: compact JSON with a fixed
 * `created`). Two layers with the same `id` are the same blob, which is how images share a base
 * layer. Each index.json entry carries `org.opencontainers.image.ref.name` and
 * `io.containerd.image.name`, both the full reference (`quay.io/coreos/etcd:v3.3.0`).
 *
 * Plain JavaScript (JSDoc types) so that `node samples/...` and the benchmarks can run it unbuilt.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { EPOCH, writeLayerBlob } from './corpus-layer.mjs';

/** Media types the corpus writes. */
export const MEDIA_TYPES = Object.freeze({
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
});
const MT = MEDIA_TYPES;

/** Default seed; change it and every digest changes. */
export const DEFAULT_SEED = 'airlock-corpus-v1';
/** `created` of every config: the layers' fixed mtime, 2020-01-01T00:00:00Z. */
const CREATED = new Date(EPOCH * 1000).toISOString().replace('.000', '');
const KiB = 1024;

/**
 * @typedef {{ os: string, architecture: string, variant?: string }} Platform
 * @typedef {{ mediaType: string, digest: string, size: number, platform?: Platform }} Descriptor
 * @typedef {import('./corpus-layer.mjs').LayerSpec} LayerSpec
 * @typedef {object} ImageSpec
 * @property {string} name Full reference, e.g. `quay.io/coreos/etcd:v3.3.0`.
 * @property {'oci'|'docker'} [format] Media-type family (default `oci`).
 * @property {LayerSpec[]} [layers] Layers of a single-platform image.
 * @property {Platform} [platform] Platform of a single-platform image (default linux/amd64).
 * @property {Array<{ platform: Platform, layers: LayerSpec[] }>} [platforms] Makes it an OCI index
 *   (format `oci`) or a Docker manifest list (format `docker`).
 * @typedef {object} CorpusSpec
 * @property {string} [seed] PRNG seed (default {@link DEFAULT_SEED}).
 * @property {ImageSpec[]} [images] Images to write (default: {@link defaultSpec}'s; `[]` for none).
 * @property {number} [tinyImages] Extra tiny images `example.com/tiny/img-N:v1.0.0`, N from 0.
 * @typedef {object} CorpusImage
 * @property {string} name Full reference, as in the index.json annotations.
 * @property {string} repository Reference without the tag, e.g. `quay.io/coreos/etcd`.
 * @property {string} tag
 * @property {string} digest Digest of the top manifest or index.
 * @property {string} mediaType
 * @property {number} size
 * @property {Platform[]} platforms
 * @property {Descriptor[]} children Child manifests of an index or list, with platforms; else [].
 * @property {Descriptor[]} blobs Everything it references: child manifests, configs, layers.
 * @typedef {object} Corpus
 * @property {string} dir The layout directory.
 * @property {CorpusImage[]} images In spec order, tiny images last.
 * @property {Map<string, Descriptor>} blobs Every blob by digest (manifests included); the media
 *   type is that of its first use (a base layer can be both an OCI and a Docker layer).
 */

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
const BASE_AMD64 = { id: 'base-amd64', size: 96 * KiB, files: 4 };
const BASE_ARM64 = { id: 'base-arm64', size: 96 * KiB, files: 4 };

/**
 * The test corpus: etcd tags sharing a base layer (one with an uncompressed layer), tags a semver
 * filter must leave out (`v3.4.1-arm64`, `v3.5.0-rc.0`, `latest`), a multi-arch OCI index also
 * tagged `latest`, a Docker v2 schema 2 image and a Docker manifest list.
 * @returns {CorpusSpec}
 */
export function defaultSpec() {
  const etcd350 = [
    { platform: AMD64, layers: [BASE_AMD64, { id: 'etcd-v3.5.0-amd64', size: 48 * KiB }] },
    { platform: ARM64, layers: [BASE_ARM64, { id: 'etcd-v3.5.0-arm64', size: 48 * KiB }] },
  ];
  const etcd = 'quay.io/coreos/etcd';
  return {
    seed: DEFAULT_SEED,
    images: [
      { name: 'docker.io/library/busybox:musl', layers: [{ id: 'busybox-musl', size: 64 * KiB }] },
      { name: `${etcd}:v3.3.0`, layers: [BASE_AMD64, { id: 'etcd-v3.3.0', size: 48 * KiB }] },
      {
        name: `${etcd}:v3.4.1`,
        layers: [BASE_AMD64, { id: 'etcd-v3.4.1', size: 48 * KiB }, { id: 'etcd-v3.4.1-data', size: 16 * KiB, uncompressed: true, files: 2 }],
      },
      { name: `${etcd}:v3.4.1-arm64`, platform: ARM64, layers: [BASE_ARM64, { id: 'etcd-v3.4.1-arm64', size: 48 * KiB }] },
      { name: `${etcd}:v3.5.0-rc.0`, layers: [BASE_AMD64, { id: 'etcd-v3.5.0-rc.0', size: 48 * KiB }] },
      { name: `${etcd}:v3.5.0`, platforms: etcd350 },
      { name: `${etcd}:latest`, platforms: etcd350 },
      { name: `${etcd}:v2.3.8`, format: 'docker', layers: [BASE_AMD64, { id: 'etcd-v2.3.8', size: 40 * KiB }] },
      {
        name: 'docker.io/library/alpine:3.18',
        format: 'docker',
        platforms: [
          { platform: AMD64, layers: [BASE_AMD64] },
          { platform: ARM64, layers: [BASE_ARM64] },
        ],
      },
    ],
  };
}

/**
 * The README's offline demo: busybox:musl and three etcd v3 tags (same digests as the test corpus).
 * @returns {CorpusSpec}
 */
export function demoSpec() {
  const keep = ['docker.io/library/busybox:musl', 'quay.io/coreos/etcd:v3.3.0', 'quay.io/coreos/etcd:v3.4.1', 'quay.io/coreos/etcd:v3.5.0'];
  const spec = defaultSpec();
  return { ...spec, images: (spec.images ?? []).filter((i) => keep.includes(i.name)) };
}

/**
 * Write the corpus as an OCI image layout into `dir` (created if missing) and describe it.
 * @example
 *   const corpus = await writeCorpus('/tmp/layout');
 *   const big = await writeCorpus('/tmp/big', { images: [{ name: 'bench.local/big:v1', layers: [{ id: 'big', size: 200 * 1024 * 1024 }] }] });
 * @param {string} dir
 * @param {CorpusSpec} [spec]
 * @returns {Promise<Corpus>}
 */
export async function writeCorpus(dir, spec = defaultSpec()) {
  const seed = spec.seed ?? DEFAULT_SEED;
  const images = [...(spec.images ?? defaultSpec().images ?? []), ...tinyImages(spec.tinyImages ?? 0)];
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const w = new LayoutWriter(dir, seed);
  /** @type {CorpusImage[]} */
  const out = [];
  for (const image of images) out.push(await w.image(image));
  await w.json({ imageLayoutVersion: '1.0.0' }, '', 'oci-layout');
  const manifests = out.map((i) => ({
    mediaType: i.mediaType,
    digest: i.digest,
    size: i.size,
    annotations: { 'io.containerd.image.name': i.name, 'org.opencontainers.image.ref.name': i.name },
  }));
  await w.json({ schemaVersion: 2, mediaType: MT.ociIndex, manifests }, '', 'index.json');
  return { dir, images: out, blobs: w.blobs };
}

/** @param {number} count @returns {ImageSpec[]} */
function tinyImages(count) {
  const base = { id: 'tiny-base', size: 4 * KiB, files: 1 };
  return Array.from({ length: count }, (_, n) => ({
    name: `example.com/tiny/img-${n}:v1.0.0`,
    layers: [base, { id: `tiny-${n}`, size: 512, files: 1 }],
  }));
}

class LayoutWriter {
  /** @param {string} dir @param {string} seed */
  constructor(dir, seed) {
    this.dir = dir;
    this.seed = seed;
    /** @type {Map<string, Descriptor>} */
    this.blobs = new Map();
    /** @type {Map<string, { spec: string, result: Promise<{ digest: string, size: number, diffId: string }> }>} */
    this.layers = new Map();
    this.tmpCount = 0;
  }

  /** @param {ImageSpec} spec @returns {Promise<CorpusImage>} */
  async image(spec) {
    const format = spec.format ?? 'oci';
    const at = spec.name.lastIndexOf(':');
    if (at <= spec.name.lastIndexOf('/')) throw new Error(`corpus image ${spec.name} needs a tag`);
    const named = { name: spec.name, repository: spec.name.slice(0, at), tag: spec.name.slice(at + 1) };
    if (!spec.platforms) {
      const platform = spec.platform ?? AMD64;
      const m = await this.manifest(format, platform, spec.layers ?? []);
      return { ...named, ...m.desc, platforms: [platform], children: [], blobs: m.blobs };
    }
    /** @type {Map<string, Descriptor>} */
    const blobs = new Map();
    /** @type {Descriptor[]} */
    const children = [];
    for (const { platform, layers } of spec.platforms) {
      const m = await this.manifest(format, platform, layers);
      children.push({ ...m.desc, platform });
      for (const d of [m.desc, ...m.blobs]) blobs.set(d.digest, d);
    }
    const mediaType = format === 'docker' ? MT.dockerList : MT.ociIndex;
    const desc = await this.json({ schemaVersion: 2, mediaType, manifests: children }, mediaType);
    const platforms = spec.platforms.map((p) => p.platform);
    return { ...named, ...desc, platforms, children, blobs: [...blobs.values()] };
  }

  /**
   * @param {'oci'|'docker'} format @param {Platform} platform @param {LayerSpec[]} layers
   * @returns {Promise<{ desc: Descriptor, blobs: Descriptor[] }>}
   */
  async manifest(format, platform, layers) {
    const docker = format === 'docker';
    /** @type {Descriptor[]} */
    const layerDescs = [];
    const diffIds = [];
    for (const l of layers) {
      if (docker && l.uncompressed) throw new Error(`layer ${l.id}: Docker images have no uncompressed layer type`);
      const r = await this.layer(l);
      const mediaType = l.uncompressed ? MT.ociLayerTar : docker ? MT.dockerLayerGzip : MT.ociLayerGzip;
      layerDescs.push(descriptor(docker, mediaType, r.digest, r.size));
      if (!this.blobs.has(r.digest)) this.blobs.set(r.digest, { mediaType, digest: r.digest, size: r.size });
      diffIds.push(r.diffId);
    }
    const config = await this.json(
      {
        created: CREATED,
        architecture: platform.architecture,
        os: platform.os,
        ...(platform.variant ? { variant: platform.variant } : {}),
        config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: layers.map((l) => ({ created: CREATED, created_by: `/bin/sh -c #(nop) ADD dir:${l.id} in /` })),
      },
      docker ? MT.dockerConfig : MT.ociConfig,
    );
    const mediaType = docker ? MT.dockerManifest : MT.ociManifest;
    const body = { schemaVersion: 2, mediaType, config: descriptor(docker, config.mediaType, config.digest, config.size), layers: layerDescs };
    return { desc: await this.json(body, mediaType), blobs: [config, ...layerDescs] };
  }

  /** Generate a layer once per id; a second spec for the same id must be identical. @param {LayerSpec} l */
  layer(l) {
    const key = JSON.stringify(l);
    const seen = this.layers.get(l.id);
    if (seen && seen.spec !== key) throw new Error(`layer id ${l.id} used with two different specs`);
    if (seen) return seen.result;
    const result = this.streamLayer(l);
    this.layers.set(l.id, { spec: key, result });
    return result;
  }

  /** @param {LayerSpec} l */
  async streamLayer(l) {
    const tmp = this.tmpPath();
    try {
      return await writeLayerBlob(join(this.dir, 'blobs', 'sha256'), tmp, this.seed, l);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Write a JSON document as a blob (no `mediaType`) or as a layout file (`file`).
   * @param {unknown} doc @param {string} mediaType @param {string} [file] @returns {Promise<Descriptor>}
   */
  async json(doc, mediaType, file) {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const target = file ? join(this.dir, file) : join(this.dir, 'blobs', 'sha256', digest.slice(7));
    const tmp = this.tmpPath();
    try {
      await writeFile(tmp, bytes, { flag: 'wx' });
      await rename(tmp, target);
    } finally {
      await rm(tmp, { force: true });
    }
    const desc = { mediaType, digest, size: bytes.length };
    if (!file && !this.blobs.has(digest)) this.blobs.set(digest, desc);
    return desc;
  }

  tmpPath() {
    return join(this.dir, `.corpus-tmp-${process.pid}-${++this.tmpCount}`);
  }
}

/** Docker writes `mediaType, size, digest`; OCI tools write `mediaType, digest, size`. */
function descriptor(/** @type {boolean} */ docker, /** @type {string} */ mediaType, /** @type {string} */ digest, /** @type {number} */ size) {
  return docker ? { mediaType, size, digest } : { mediaType, digest, size };
}
