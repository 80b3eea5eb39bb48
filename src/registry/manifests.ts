/**
 * Manifest steps: GET (with every manifest media type in Accept), HEAD, PUT.
 *
 * Accept lists all four types because distribution otherwise 404s an OCI manifest, serves a
 * Docker v2 manifest as schema 1 (another digest), or rewrites a manifest list to its amd64 child.
 */
import { AirlockError } from '../errors.js';
import { isDigest, sha256Digest, type Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import { MAX_MANIFEST_BYTES, parseManifest, type RawManifest } from '../oci/manifest.js';
import { MANIFEST_MEDIA_TYPES } from '../oci/media-types.js';
import { repositoryScope } from './auth.js';
import { abandon, BodyTooLargeError, discard, readCapped } from './body.js';
import type { Subject } from './errors.js';
import { header, type RegistryHttp, type Response } from './http.js';

const ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/** `repo:tag` or `repo@sha256:…`, as the operator would write it. */
export function manifestName(repository: string, reference: string): string {
  return isDigest(reference) ? `${repository}@${reference}` : `${repository}:${reference}`;
}

function manifestSubject(http: RegistryHttp, repository: string, reference: string): Subject {
  return {
    host: http.host,
    repository,
    what: `manifest ${manifestName(repository, reference)}`,
    notFoundHint: `check the repository and ${isDigest(reference) ? 'digest' : 'tag'} (airlock tags ${http.host}/${repository} lists its tags)`,
  };
}

function manifestPath(repository: string, reference: string): string {
  return `/v2/${repository}/manifests/${reference}`;
}

function tooLarge(what: string, size: number | string): AirlockError {
  return new AirlockError('UNSUPPORTED', `${what}: manifest is ${size} bytes, over the 4 MiB limit`, {
    subject: what,
    hint: 'registries refuse manifests over 4 MiB; this image cannot be mirrored',
  });
}

/** Read a manifest body, at most 4 MiB; a larger announced or actual length fails before parsing. */
async function readManifestBody(res: Response, what: string, windowMs: number): Promise<Buffer> {
  const announced = Number(header(res, 'content-length') ?? NaN);
  if (announced > MAX_MANIFEST_BYTES) {
    abandon(res.body);
    throw tooLarge(what, announced);
  }
  try {
    return await readCapped(res.body, MAX_MANIFEST_BYTES, 'throw', windowMs);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw tooLarge(what, `more than ${MAX_MANIFEST_BYTES}`);
    throw err;
  }
}

/** The served bytes must hash to the digest asked for, or to the one the registry announced. */
function checkDigest(bytes: Buffer, reference: string, announced: string | undefined, what: string): Digest {
  const got = sha256Digest(bytes);
  const expected = isDigest(reference) ? reference : isDigest(announced) ? announced : undefined;
  if (expected !== undefined && got !== expected) {
    throw new AirlockError('INTEGRITY', `${what}: content does not match its digest: expected ${expected}, got ${got} (${bytes.length} bytes)`, {
      subject: what,
      hint: 'the registry or a proxy altered the manifest; fetch it again or report it to the registry operator',
      details: { expected, got, size: bytes.length },
    });
  }
  return got;
}

/** Fetch and verify a manifest or index by tag or digest. */
export async function getManifest(http: RegistryHttp, repository: string, reference: string, signal?: AbortSignal): Promise<RawManifest> {
  const subject = manifestSubject(http, repository, reference);
  const what = `${http.host}/${manifestName(repository, reference)}`;
  return http.call(
    {
      method: 'GET',
      url: manifestPath(repository, reference),
      headers: { accept: ACCEPT },
      scopes: [repositoryScope(repository, false)],
      repository,
      subject,
      expect: [200],
      signal,
    },
    async (res) => {
      const bytes = await readManifestBody(res, what, http.timeouts.bodyMs);
      checkDigest(bytes, reference, header(res, 'docker-content-digest'), what);
      return parseManifest(bytes, header(res, 'content-type'), what);
    },
  );
}

/** HEAD a manifest: its descriptor when present, undefined on 404. */
export async function headManifest(http: RegistryHttp, repository: string, reference: string, signal?: AbortSignal): Promise<Descriptor | undefined> {
  return http.call(
    {
      method: 'HEAD',
      url: manifestPath(repository, reference),
      headers: { accept: ACCEPT },
      scopes: [repositoryScope(repository, false)],
      repository,
      subject: manifestSubject(http, repository, reference),
      expect: [200, 404],
      signal,
    },
    async (res) => {
      await discard(res.body, http.timeouts.bodyMs);
      if (res.statusCode === 404) return undefined;
      const digest = header(res, 'docker-content-digest');
      const mediaType = header(res, 'content-type')?.split(';')[0]?.trim();
      const size = Number(header(res, 'content-length'));
      if (!isDigest(digest) || mediaType === undefined || !Number.isSafeInteger(size)) {
        throw new AirlockError(
          'REGISTRY',
          `registry ${http.host} answered HEAD of manifest ${manifestName(repository, reference)} without digest, type or size`,
          {
            subject: http.host,
          },
        );
      }
      return { mediaType, digest, size };
    },
  );
}

/** PUT a manifest by tag or (tag undefined) by its digest; Content-Type is its media type. */
export async function putManifest(http: RegistryHttp, repository: string, manifest: RawManifest, tag: string | undefined, signal?: AbortSignal): Promise<void> {
  const reference = tag ?? manifest.digest;
  const what = `${http.host}/${manifestName(repository, reference)}`;
  await http.call(
    {
      method: 'PUT',
      url: manifestPath(repository, reference),
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
      scopes: [repositoryScope(repository, true)],
      repository,
      subject: { ...manifestSubject(http, repository, reference), notFoundHint: `check that repository ${repository} may be created on ${http.host}` },
      expect: [200, 201, 202, 204],
      idempotent: true,
      signal,
    },
    async (res) => {
      await discard(res.body, http.timeouts.bodyMs);
      const stored = header(res, 'docker-content-digest');
      if (isDigest(stored) && stored !== manifest.digest) {
        throw new AirlockError('REGISTRY', `${what}: registry stored digest ${stored}, expected ${manifest.digest}`, {
          subject: what,
          hint: 'the registry rewrote the manifest; it cannot hold this image byte for byte',
        });
      }
    },
  );
}
