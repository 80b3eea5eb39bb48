/**
 * RegistryClient against the real Debian docker-registry (distribution 2.8.2): blob upload (one PUT
 * and PATCH chunks), cross-repository mount, OCI and Docker manifests and indexes byte for byte,
 * tags, 404s, and Basic auth over TLS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/digest/digest.js';
import { AirlockError } from '../../src/errors.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { parseManifest, type RawManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { RegistryClient, type RegistryOptions } from '../../src/registry/client.js';
import { listenLocal } from '../support/listen.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';

const clients: RegistryClient[] = [];

function client(host: string, options: Partial<RegistryOptions> = {}): RegistryClient {
  const c = new RegistryClient(host, { userAgent: 'airlock-test', certsDirs: [], authFiles: [], ...options });
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<AirlockError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AirlockError);
  return err as AirlockError;
}

/** A 1 MiB base piece per seed; piece N is the base with N written over its first bytes. */
function basePiece(seed: string): Buffer {
  const piece = Buffer.alloc(1024 * 1024);
  for (let off = 0; off < piece.length; off += 32) createHash('sha256').update(`${seed}:${off}`).digest().copy(piece, off);
  return piece;
}

/** A deterministic blob of `size` bytes, produced in 1 MiB pieces (never held whole). */
function* pseudoRandom(size: number, seed: string): Generator<Buffer> {
  const base = basePiece(seed);
  for (let n = 0, left = size; left > 0; n++) {
    const piece = Buffer.from(base.subarray(0, Math.min(left, base.length)));
    piece.write(`${seed}:${n}:`, 0);
    left -= piece.length;
    yield piece;
  }
}

/**
 * A TCP proxy to `target` that cuts the first connection once it has carried `cutAfter` bytes
 * towards the client, and records whether the client then sent a Range request.
 */
async function cuttingProxy(target: string, cutAfter: number): Promise<{ host: string; cuts: () => number; sawRange: () => boolean; close(): Promise<void> }> {
  const [targetHost, targetPort] = target.split(':') as [string, string];
  let cuts = 0;
  let sawRange = false;
  const server = createServer((downstream) => {
    const upstream = connect(Number(targetPort), targetHost);
    for (const s of [downstream, upstream]) s.on('error', () => {});
    downstream.on('data', (d: Buffer) => {
      if (/^range: bytes=\d+-/im.test(d.toString('latin1'))) sawRange = true;
      upstream.write(d);
    });
    let carried = 0;
    upstream.on('data', (d: Buffer) => {
      carried += d.length;
      if (cuts === 0 && carried > cutAfter) {
        cuts++;
        downstream.destroy();
        upstream.destroy();
        return;
      }
      downstream.write(d);
    });
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  const { host, close } = await listenLocal(server);
  return { host, cuts: () => cuts, sawRange: () => sawRange, close };
}

function describeGenerated(size: number, seed: string, mediaType: string): Descriptor {
  const hash = createHash('sha256');
  for (const piece of pseudoRandom(size, seed)) hash.update(piece);
  return { mediaType, digest: `sha256:${hash.digest('hex')}` as Descriptor['digest'], size };
}

async function sha256OfStream(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

function manifestOf(doc: unknown, mediaType: string): RawManifest {
  return parseManifest(Buffer.from(JSON.stringify(doc)), mediaType, 'test');
}

afterAll(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('plain HTTP registry', () => {
  let reg: TestRegistry;
  let c: RegistryClient;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256Digest(config), size: config.length };
  const large = describeGenerated(20 * 1024 * 1024 + 12345, 'large', MediaType.OciLayerGzip);
  let image: RawManifest;

  beforeAll(async () => {
    reg = await startRegistry();
    // 8 MiB chunks: the 20 MiB layer goes in three PATCHes.
    c = client(reg.host, { plainHttp: true, upload: { chunkSize: 8 * 1024 * 1024 } });
    image = manifestOf({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [large] }, MediaType.OciManifest);
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('answers the API check', async () => {
    await c.ping();
  });

  it('uploads a small blob in one PUT and a large one in PATCH chunks', async () => {
    expect(await c.hasBlob('app/one', configDesc)).toBe(false);
    await c.putBlob('app/one', configDesc, Readable.from([config]));
    await c.putBlob('app/one', large, Readable.from(pseudoRandom(large.size, 'large')));
    expect(await c.hasBlob('app/one', configDesc)).toBe(true);
    expect(await c.hasBlob('app/one', large)).toBe(true);
  });

  it('reads the blobs back byte for byte', async () => {
    expect(await sha256OfStream(await c.openBlob('app/one', large))).toEqual({ digest: large.digest, size: large.size });
    expect(await sha256OfStream(await c.openBlob('app/one', configDesc))).toEqual({ digest: configDesc.digest, size: configDesc.size });
  });

  it('refuses content that does not match its digest (INTEGRITY)', async () => {
    const wrong = { ...configDesc, digest: sha256Digest('something else') };
    expect((await failure(c.putBlob('app/one', wrong, Readable.from([config])))).code).toBe('INTEGRITY');
    expect(await c.hasBlob('app/one', wrong)).toBe(false);
  });

  it('mounts a blob across repositories, and says so when it cannot', async () => {
    expect(await c.hasBlob('app/two', large)).toBe(false);
    expect(await c.mountBlob('app/two', large, 'app/one')).toBe(true);
    expect(await c.hasBlob('app/two', large)).toBe(true);
    const absent = { ...configDesc, digest: sha256Digest('absent') };
    expect(await c.mountBlob('app/two', absent, 'app/one')).toBe(false);
  });

  it('pushes an OCI manifest and an index and pulls them back identical', async () => {
    await c.putManifest('app/one', image, 'v1');
    const index = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ mediaType: MediaType.OciManifest, digest: image.digest, size: image.bytes.length, platform: { os: 'linux', architecture: 'amd64' } }],
      },
      MediaType.OciIndex,
    );
    await c.putManifest('app/one', index, 'multi');
    await c.putManifest('app/one', index, undefined);
    for (const [ref, want] of [
      ['v1', image],
      [image.digest, image],
      ['multi', index],
      [index.digest, index],
    ] as const) {
      const got = await c.getManifest('app/one', ref);
      expect(got.bytes.equals(want.bytes)).toBe(true);
      expect([got.kind, got.mediaType, got.digest]).toEqual([want.kind, want.mediaType, want.digest]);
    }
    expect(await c.headManifest('app/one', 'multi')).toEqual({ mediaType: MediaType.OciIndex, digest: index.digest, size: index.bytes.length });
    expect(await c.headManifest('app/one', 'nope')).toBeUndefined();
  });

  it('pushes a Docker v2 manifest and manifest list unchanged', async () => {
    const docker = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MediaType.DockerManifest,
        config: { ...configDesc, mediaType: MediaType.DockerConfig },
        layers: [{ ...large, mediaType: MediaType.DockerLayerGzip }],
      },
      MediaType.DockerManifest,
    );
    await c.putManifest('app/one', docker, 'docker');
    const list = manifestOf(
      {
        schemaVersion: 2,
        mediaType: MediaType.DockerManifestList,
        manifests: [
          { mediaType: MediaType.DockerManifest, digest: docker.digest, size: docker.bytes.length, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      },
      MediaType.DockerManifestList,
    );
    await c.putManifest('app/one', list, 'dockerlist');
    expect((await c.getManifest('app/one', 'docker')).bytes.equals(docker.bytes)).toBe(true);
    const got = await c.getManifest('app/one', 'dockerlist');
    expect([got.digest, got.mediaType]).toEqual([list.digest, MediaType.DockerManifestList]);
  });

  it('refuses a manifest whose blobs are missing, with the push-children-first hint', async () => {
    const orphan = manifestOf({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [] }, MediaType.OciManifest);
    const err = await failure(c.putManifest('app/empty', orphan, 'x'));
    expect(err.code).toBe('REGISTRY');
    expect(err.message).toContain('MANIFEST_BLOB_UNKNOWN');
    expect(err.hint).toContain('push the blobs');
  });

  it('lists tags', async () => {
    expect((await c.listTags('app/one')).sort()).toEqual(['docker', 'dockerlist', 'multi', 'v1']);
  });

  it('reports a missing manifest, repository and blob as NOT_FOUND', async () => {
    const m = await failure(c.getManifest('app/one', 'missing'));
    expect([m.code, m.message]).toEqual(['NOT_FOUND', `manifest app/one:missing not found on ${reg.host}: MANIFEST_UNKNOWN: manifest unknown`]);
    expect(m.hint).toBeTruthy();
    expect((await failure(c.listTags('no/such'))).code).toBe('NOT_FOUND');
    expect((await failure(c.openBlob('app/one', { ...configDesc, digest: sha256Digest('gone') }))).code).toBe('NOT_FOUND');
    expect(await c.hasBlob('app/one', { ...configDesc, digest: sha256Digest('gone') })).toBe(false);
  });

  it('resumes a download whose connection is cut mid-body, with a Range request', async () => {
    const proxy = await cuttingProxy(reg.host, 5 * 1024 * 1024);
    try {
      const viaProxy = client(proxy.host, { plainHttp: true, retry: { sleep: async () => {} } });
      expect(await sha256OfStream(await viaProxy.openBlob('app/one', large))).toEqual({ digest: large.digest, size: large.size });
      expect([proxy.cuts(), proxy.sawRange()]).toEqual([1, true]);
    } finally {
      await proxy.close();
    }
  });
});

describe('TLS registry with Basic auth', () => {
  let reg: TestRegistry;
  const creds = { username: 'mirror', password: 's3cret:with=odd chars' };
  const blob = randomBytes(4096);
  const desc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: sha256Digest(blob), size: blob.length };

  beforeAll(async () => {
    reg = await startRegistry({ tls: true, basicAuth: creds });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pushes and pulls with the CA file and the right password', async () => {
    const c = client(reg.host, { caFiles: [reg.caFile as string], credentials: creds });
    await c.putBlob('secure/app', desc, Readable.from([blob]));
    expect(await sha256OfStream(await c.openBlob('secure/app', desc))).toEqual({ digest: desc.digest, size: desc.size });
  });

  it('reports a wrong password as AUTH without leaking it', async () => {
    const c = client(reg.host, { caFiles: [reg.caFile as string], credentials: { username: 'mirror', password: 'wrong-password' } });
    const err = await failure(c.hasBlob('secure/app', desc));
    expect(err.code).toBe('AUTH');
    expect(err.message).toBe(`registry ${reg.host} refused the credentials for secure/app (from --creds)`);
    expect(JSON.stringify(err.toJSON())).not.toContain('wrong-password');
  });

  it('reports missing credentials as AUTH', async () => {
    const err = await failure(client(reg.host, { caFiles: [reg.caFile as string] }).getManifest('secure/app', 'v1'));
    expect([err.code, err.message]).toEqual(['AUTH', `registry ${reg.host} requires authentication for secure/app`]);
  });

  it('reports an untrusted certificate as TLS with the --ca-file hint', async () => {
    const err = await failure(client(reg.host, { credentials: creds }).ping());
    expect(err.code).toBe('TLS');
    expect(err.message).toContain(reg.host);
    expect(err.hint).toContain('--ca-file');
  });

  it('says HTTPS is expected when --plain-http meets TLS', async () => {
    const err = await failure(client(reg.host, { plainHttp: true, credentials: creds }).ping());
    expect([err.code, err.hint]).toEqual(['TLS', 'drop --plain-http']);
  });
});
