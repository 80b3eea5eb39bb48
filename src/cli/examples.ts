/** The `Examples:` block every command's `--help` ends with: two or three commands as an operator types them. */
import type { Command } from 'commander';

export function withExamples(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', ['', 'Examples:', ...lines.map((l) => `  ${l}`)].join('\n'));
}
