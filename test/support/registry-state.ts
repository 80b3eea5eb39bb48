/**
 * What a test registry serves under a repository prefix, read over plain HTTP: every tag, the
 * digest it points at, and whether everything below it (child manifests, configs, layers) is
 * there. Tests use it to check after a kill -9 that no tag points at incomplete content, and that
 * a rerun ends in the same state as an uninterrupted run.
 */
import { request } from 'undici';
import { MANIFEST_TYPES, type TestRegistry } from './registry.js';
import { isStateRepository } from '../../src/rollback/import-state.js';

const ACCEPT = MANIFEST_TYPES.join(', ');

interface ManifestDoc {
  manifests?: Array<{ digest: string }>;
  config?: { digest: string };
  layers?: Array<{ digest: string }>;
}

/** Tags under a prefix: `REPO:TAG` (without the prefix) → digest, and what is missing below them. */
export interface RegistryState {
  tags: Map<string, string>;
  /** `REPO:TAG → missing DIGEST` for every tag whose content is not all there (should be empty). */
  incomplete: string[];
}

async function get(reg: TestRegistry, path: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`${reg.url}${path}`, { method, headers: { accept: ACCEPT } });
  const body = method === 'HEAD' ? '' : await res.body.text();
  if (method === 'HEAD') await res.body.dump();
  return { status: res.statusCode, body, digest: res.headers['docker-content-digest'] as string | undefined };
}

/** Walk every repository under `prefix/` (from the catalog) and every tag in it. */
export async function registryState(reg: TestRegistry, prefix: string): Promise<RegistryState> {
  const catalog = await get(reg, '/v2/_catalog?n=1000');
  const repositories = (JSON.parse(catalog.body) as { repositories: string[] }).repositories.filter((r) => r.startsWith(`${prefix}/`));
  const tags = new Map<string, string>();
  const incomplete: string[] = [];
  for (const repo of repositories) {
    const list = await get(reg, `/v2/${repo}/tags/list`);
    if (list.status === 404) continue;
    for (const tag of (JSON.parse(list.body) as { tags: string[] | null }).tags ?? []) {
      const name = `${repo.slice(prefix.length + 1)}:${tag}`;
      const top = await get(reg, `/v2/${repo}/manifests/${tag}`);
      if (top.status !== 200) {
        incomplete.push(`${name} → manifest (${top.status})`);
        continue;
      }
      // airlock's own import record is checked for completeness like any tag, but is bookkeeping
      // whose bytes change with every import (its time stamp), not content that converges.
      if (!isStateRepository(repo)) tags.set(name, top.digest ?? '');
      const pending: ManifestDoc[] = [JSON.parse(top.body) as ManifestDoc];
      while (pending.length > 0) {
        const doc = pending.pop()!;
        for (const child of doc.manifests ?? []) {
          const m = await get(reg, `/v2/${repo}/manifests/${child.digest}`);
          if (m.status === 200) pending.push(JSON.parse(m.body) as ManifestDoc);
          else incomplete.push(`${name} → ${child.digest}`);
        }
        for (const blob of [...(doc.config === undefined ? [] : [doc.config]), ...(doc.layers ?? [])]) {
          if ((await get(reg, `/v2/${repo}/blobs/${blob.digest}`, 'HEAD')).status !== 200) incomplete.push(`${name} → ${blob.digest}`);
        }
      }
    }
  }
  return { tags, incomplete };
}
