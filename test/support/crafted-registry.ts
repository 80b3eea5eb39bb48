/**
 * Crafted content for create-side checks: push hand-made blobs and manifests into a REAL test
 * registry (distribution stores a manifest whose layer descriptor claims another size than the
 * blob has, and indexes that list one child many times), and a recording proxy in front of it that
 * logs every request and can add entries to tag lists (distribution refuses to store a tag such as
 * `.` or `../x`, so a hostile tag list has to be served).
 *
 * Test support, not product code: plain HTTP, no auth, every unexpected status throws.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { request, type Dispatcher } from 'undici';
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
export async function pushManifest(reg: TestRegistry, repository: string, reference: string | undefined, doc: { mediaType: string }): Promise<CraftedDescriptor> {
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

/** A proxy in front of a registry that records every request. */
export interface RecordingProxy {
  /** `127.0.0.1:PORT`: what goes into references instead of the registry's host. */
  host: string;
  /** `METHOD PATH` of every request, in order. */
  requests: string[];
  /** Extra tags served in `GET /v2/REPO/tags/list` answers, by repository. */
  extraTags: Map<string, string[]>;
  close(): Promise<void>;
}

/**
 * Start a proxy forwarding everything to `reg` (plain HTTP), recording each request line and
 * adding {@link RecordingProxy.extraTags} to tag lists.
 */
export async function startRecordingProxy(reg: TestRegistry): Promise<RecordingProxy> {
  const requests: string[] = [];
  const extraTags = new Map<string, string[]>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method ?? '?'} ${req.url ?? ''}`);
    void forward(reg, req, res, extraTags).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    extraTags,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const TAGS_LIST = /^\/v2\/(.+)\/tags\/list(?:\?.*)?$/;

async function forward(reg: TestRegistry, req: IncomingMessage, res: ServerResponse, extraTags: Map<string, string[]>): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || k === 'host' || k === 'connection' || k === 'content-length') continue;
    headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  const method = (req.method ?? 'GET') as Dispatcher.HttpMethod;
  const up = await request(`${reg.url}${req.url ?? '/'}`, { method, headers, ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) });
  let body = Buffer.from(await up.body.arrayBuffer());
  const repo = TAGS_LIST.exec(req.url ?? '')?.[1];
  const extra = repo === undefined ? undefined : extraTags.get(repo);
  if (extra !== undefined && up.statusCode === 200) {
    const doc = JSON.parse(body.toString('utf8')) as { name: string; tags: string[] | null };
    body = Buffer.from(JSON.stringify({ ...doc, tags: [...(doc.tags ?? []), ...extra] }));
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(up.headers)) {
    if (v === undefined || k === 'content-length' || k === 'transfer-encoding' || k === 'connection') continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  if (method !== 'HEAD') out['content-length'] = String(body.length);
  else if (up.headers['content-length'] !== undefined) out['content-length'] = String(up.headers['content-length']);
  res.writeHead(up.statusCode, out);
  res.end(method === 'HEAD' ? undefined : body);
}
