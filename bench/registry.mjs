/**
 * What a target registry holds, for the checks after each import (not timed). The registries
 * themselves are the tests' (`test/support/registry.js`).
 */
import { MANIFEST_TYPES } from '../test/support/registry.js';

const ACCEPT = MANIFEST_TYPES.join(', ');

/**
 * The digest the registry serves `repository:tag` under, or undefined when it has no such tag.
 * @param {string} url @param {string} repository @param {string} tag
 * @returns {Promise<string | undefined>}
 */
export async function manifestDigest(url, repository, tag) {
  const res = await fetch(`${url}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: ACCEPT } });
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw new Error(`HEAD ${repository}:${tag} answered ${res.status}`);
  return res.headers.get('docker-content-digest') ?? undefined;
}

/**
 * The first repositories of the registry's catalog, for error messages.
 * @param {string} url
 * @returns {Promise<string>}
 */
export async function catalog(url) {
  const res = await fetch(`${url}/v2/_catalog?n=10`);
  const body = /** @type {{ repositories?: string[] }} */ (await res.json().catch(() => ({})));
  const repos = body.repositories ?? [];
  return repos.length ? `${repos.join(', ')}${res.headers.get('link') ? ', …' : ''}` : 'no repositories';
}
