/**
 * Printing a command's result: JSON on stdout with --json, human lines on stdout otherwise.
 *
 * Results carry untrusted text (image and tag names from a registry or a bundle, annotations), so
 * human lines pass through `cleanText`: no escape sequence or bidi control reaches the terminal, and
 * no known secret. JSON keeps the data exact: `JSON.stringify` already escapes C0 controls (ESC is
 * written `\u001b`), and {@link toJson} escapes the C1 and bidi controls it leaves raw, so the bytes
 * on stdout are inert while a JSON parser still reads the same strings.
 */
import { cleanText } from '../redact.js';
import type { CommandContext } from './main.js';
import type { TransferCounts } from '../copy/transfer.js';
import { count, digestCell, formatBytes } from '../words.js';
import type { BundleContents } from '../bundle/manifest.js';

/** Characters JSON may carry raw that a terminal would act on: DEL, C1 controls, line separators, bidi controls. */
const JSON_UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `JSON.stringify` with every terminal-active character written as a `\uXXXX` escape. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printResult(ctx: CommandContext, json: unknown, lines: string[]): void {
  if (ctx.globals().json) {
    process.stdout.write(`${toJson(json, 2)}\n`);
    return;
  }
  for (const line of lines) process.stdout.write(`${cleanText(line)}\n`);
}

/**
 * Align columns with two spaces between them; the last column is not padded. Cells are cleaned
 * first, so the widths are those of what the terminal shows.
 */
export function table(rows: string[][], indent = '  '): string[] {
  const clean = rows.map((row) => row.map((cell) => cleanText(cell)));
  const widths: number[] = [];
  for (const row of clean) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return clean.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

/** `  13 distinct blobs; per repository 13 uploaded (19.4 MiB), 5 mounted, 0 already there; 6 manifests` (import, copy). */
export function transferLine(b: TransferCounts, manifests: number): string {
  return `  ${count(b.distinct, 'distinct blob')}; per repository ${b.uploaded} uploaded (${formatBytes(b.uploadedBytes)}), ${b.mounted} mounted, ${b.present} already there; ${count(manifests, 'manifest')}`;
}

/** `4 images, 6 manifests, 13 blobs, 256 KiB` */
export function contentsLine(c: BundleContents): string {
  return `${count(c.images, 'image')}, ${count(c.manifests, 'manifest')}, ${count(c.blobs, 'blob')}, ${formatBytes(c.bytes)}`;
}

/** The images of a bundle, one row each: create's summary and inspect's listing. */
export function imageTable(images: readonly { name: string; platforms: string[]; bytes?: number; digest: string }[], wide: boolean): string[] {
  return table([
    ['IMAGE', 'PLATFORMS', 'SIZE', 'DIGEST'],
    ...images.map((i) => [i.name, i.platforms.join(',') || '-', i.bytes === undefined ? '?' : formatBytes(i.bytes), digestCell(i.digest, wide)]),
  ]);
}
