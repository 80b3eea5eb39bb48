/** Printing a command's result: JSON on stdout with --json, human lines on stdout otherwise. */
import type { CommandContext } from './main.js';

export function printResult(ctx: CommandContext, json: unknown, lines: string[]): void {
  if (ctx.globals().json) {
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  for (const line of lines) process.stdout.write(`${line}\n`);
}
