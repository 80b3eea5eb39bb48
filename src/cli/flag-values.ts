/** The number and duration flags of the registry commands, checked with a message naming the flag. */
import { AirlockError } from '../errors.js';
import { DEFAULT_MAX_CONCURRENT_BLOBS } from '../registry/limits.js';

/** Blobs in flight per registry by default: the registry client's own default (see registry/limits.ts). */
export const DEFAULT_CONCURRENCY = DEFAULT_MAX_CONCURRENT_BLOBS;

export function parseConcurrency(text: string | undefined, defaultValue = DEFAULT_CONCURRENCY): number {
  if (text === undefined) return defaultValue;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new AirlockError('USAGE', `--concurrency ${text}: must be a whole number from 1 to 64`);
  }
  return n;
}

/** `--chunk-size MIB` in bytes; undefined when not given (one PATCH per blob). */
export function parseChunkSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const mib = Number(text);
  if (!Number.isInteger(mib) || mib < 1 || mib > 1_048_576) {
    throw new AirlockError('USAGE', `--chunk-size ${text}: must be a whole number of MiB from 1 to 1048576`, {
      hint: 'for example --chunk-size 64 behind a proxy that refuses request bodies over 100 MB',
    });
  }
  return mib * 1024 * 1024;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * `--timeout DURATION` in ms, undefined when not given: `90` (seconds), `90s`, `2m`, `500ms`, from
 * 100 ms to 1 h.
 */
export function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = m === null ? NaN : Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? NaN));
  if (!(ms >= 100 && ms <= 3_600_000)) {
    throw new AirlockError('USAGE', `--timeout ${text}: must be a duration from 100ms to 1h`, {
      hint: 'for example --timeout 30s, --timeout 5m, or --timeout 90 (seconds)',
    });
  }
  return ms;
}
