/**
 * The grammar of the strings from a manifest that `bundle create` signs into bundle.json: media
 * types and platforms. A source may serve anything; what does not fit is refused before signing,
 * because the bundle schema (and so verify and import, inside the gap) refuses it later.
 */
import type { Descriptor } from './descriptor.js';

/**
 * A media type as RFC 6838 names it (what the OCI descriptor spec requires): `type/subtype`, each
 * a restricted-name of at most 127 characters, no parameters. The same rule as the `mediaType`
 * pattern of `schemas/bundle.schema.json`.
 */
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/**
 * One part of a platform (os, architecture, variant). Real values are Go's GOOS/GOARCH names and
 * `v5`…`v8` (and `unknown` for attestations); this leaves room for others but not for `/`, white
 * space, control characters or text long enough to flood a terminal. Stricter than the bundle
 * schema's platform pattern, which it implies.
 */
const PLATFORM_PART_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;

/** Why `text` is not a media type airlock signs, or undefined when it is one. */
export function mediaTypeProblem(text: unknown): string | undefined {
  if (typeof text !== 'string') return `media type ${describe(text)} is not a string`;
  return MEDIA_TYPE_RE.test(text) ? undefined : `media type ${describe(text)} is not type/subtype (RFC 6838)`;
}

/**
 * Why a descriptor's `platform` cannot be signed (absent is fine), or undefined.
 *
 * @example
 * platformProblem({ os: 'linux', architecture: 'amd 64' }) // 'platform architecture "amd 64" is not …'
 */
export function platformProblem(platform: unknown): string | undefined {
  if (platform === undefined) return undefined;
  if (platform === null || typeof platform !== 'object' || Array.isArray(platform)) return `platform ${describe(platform)} is not an object`;
  const p = platform as Record<string, unknown>;
  for (const field of ['os', 'architecture', 'variant'] as const) {
    const value = p[field];
    if (value === undefined && field === 'variant') continue;
    if (typeof value !== 'string' || !PLATFORM_PART_RE.test(value)) {
      return `platform ${field} ${describe(value)} is not a name of letters, digits, ".", "_", "+" and "-"`;
    }
  }
  return undefined;
}

/** Why a descriptor's media type or platform cannot be signed, or undefined. */
export function descriptorProblem(d: Descriptor): string | undefined {
  return mediaTypeProblem(d.mediaType) ?? platformProblem(d.platform);
}

/** A short, printable rendering of an untrusted value: JSON, cut at 80 characters. */
function describe(value: unknown): string {
  const text = value === undefined ? 'absent' : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
