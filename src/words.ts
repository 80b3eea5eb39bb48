/**
 * The words and numbers every command prints the same way: sizes, durations, counts with their
 * nouns, digests in tables.
 */

/** `0 B`, `512 B`, `1.5 KiB`, `19.4 MiB`, `120 GiB`: binary units, three significant figures. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** `40s`, `2m10s`, `3h05m`; `?` when unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The plural of a noun of ours: `blobs`, `repositories`. */
export function plural(noun: string): string {
  return /[^aeiou]y$/.test(noun) ? `${noun.slice(0, -1)}ies` : `${noun}s`;
}

/** `1 image`, `2 images`: a count and its noun, singular or plural. */
export function count(n: number, noun: string, nouns = plural(noun)): string {
  return `${n} ${n === 1 ? noun : nouns}`;
}

/**
 * A digest as a table or a progress line shows it: `sha256:` and 12 hex digits (what `docker
 * images` shows, and unique in any registry an operator will meet), or whole with `--wide`.
 * `--json` always carries it whole.
 */
export function digestCell(digest: string, wide: boolean): string {
  if (wide) return digest;
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*:)([0-9a-f]{12})[0-9a-f]{20,}$/.exec(digest);
  return m === null ? digest : `${m[1]}${m[2]}`;
}
