/**
 * Crafted content for create-side checks: push hand-made blobs and manifests into a REAL test
 * registry (distribution stores a manifest whose layer descriptor claims another size than the
 * blob has, and indexes that list one child many times). What distribution refuses to store (a tag
 * such as `.` or `../x`) is served by the hostile registry in front of it (`hostile-registry.ts`).
 *
 * Test support, not product code: plain HTTP, no auth, every unexpected status throws.
 */
import { createHash } from 'node:crypto';
import { request } from 'undici';
import type { TestRegistry } from './registry.js';

export interface CraftedDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Record<string, unknown>;
  annotations?: Record<string, string>;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Upload `content` as a blob of `repository` (POST, then PUT ?digest=); returns its descriptor. */
export async function pushBlob(reg: TestRegistry, repository: string, content: Buffer | string, mediaType: string): Promise<CraftedDescriptor> {
  const bytes = Buffer.from(content);
  const digest = sha256(bytes);
  const started = await request(`${reg.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  await started.body.dump();
  if (started.statusCode !== 202) throw new Error(`crafted: POST upload answered ${started.statusCode}`);
  const location = new URL(String(started.headers.location), reg.url);
  location.searchParams.set('digest', digest);
  const put = await request(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
  const text = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`crafted: PUT blob answered ${put.statusCode}: ${text}`);
  return { mediaType, digest, size: bytes.length };
}

/** PUT `doc` (serialised as is) as a manifest of `repository` under `reference`; returns its descriptor. */
export async function pushManifest(
  reg: TestRegistry,
  repository: string,
  reference: string | undefined,
  doc: { mediaType: string },
): Promise<CraftedDescriptor> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const digest = sha256(bytes);
  const res = await request(`${reg.url}/v2/${repository}/manifests/${reference ?? digest}`, {
    method: 'PUT',
    headers: { 'content-type': doc.mediaType },
    body: bytes,
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`crafted: PUT manifest ${repository}:${reference ?? digest} answered ${res.statusCode}: ${text}`);
  return { mediaType: doc.mediaType, digest, size: bytes.length };
}
