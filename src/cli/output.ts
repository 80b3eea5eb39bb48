/** Printing a command's result: JSON on stdout with --json, human lines on stdout otherwise. */
import type { CommandContext } from './main.js';

export function printResult(ctx: CommandContext, json: unknown, lines: string[]): void {
  if (ctx.globals().json) {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  for (const line of lines) process.stdout.write(`${line}\n`);
}

/** Align columns with two spaces between them; the last column is not padded. */
export function table(rows: string[][], indent = '  '): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}
