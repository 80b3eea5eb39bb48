import type { Digest } from '../digest/digest.js';

/** OCI platform (image-spec `image-index.md`). */
export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** OCI content descriptor (image-spec `descriptor.md`). */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

/** `linux/arm64/v8` style, as users type it on the command line. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((s) => s !== undefined && s !== '').join('/');
}

/** Parse `os/arch[/variant]`. Returns undefined for anything else. */
export function parsePlatform(text: string): Platform | undefined {
  const parts = text.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) return undefined;
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/**
 * True when `candidate` satisfies the wanted platform. A wanted platform without a variant matches
 * every variant; `arm64` with no variant also matches `v8`, the only arm64 variant in use.
 */
export function platformMatches(wanted: Platform, candidate: Platform | undefined): boolean {
  if (candidate === undefined) return false;
  if (wanted.os !== candidate.os || wanted.architecture !== candidate.architecture) return false;
  if (wanted.variant === undefined || wanted.variant === candidate.variant) return true;
  return wanted.architecture === 'arm64' && wanted.variant === 'v8' && candidate.variant === undefined;
}
