/** `airlock key generate`: an ed25519 key pair for signing bundles. */
import type { Command } from 'commander';
import { generateKeyPair } from '../../bundle/keys.js';
import { checkOutputFile } from '../../fs/output-location.js';
import type { CommandContext } from '../main.js';
import { printResult } from '../output.js';
import { withExamples } from '../examples.js';

export function registerKeyCommands(program: Command, ctx: CommandContext): void {
  const key = program.command('key').description('manage bundle signing keys');
  withExamples(key.command('generate'), 'airlock key generate --out /secure/mirror   # writes /secure/mirror.key and /secure/mirror.pub')
    .description('write a new ed25519 key pair: PREFIX.key (private, mode 0600) and PREFIX.pub')
    .requiredOption('--out <prefix>', 'path prefix of the two files')
    .action(async (opts: { out: string }) => {
      await checkOutputFile(`${opts.out}.key`, '--out');
      const result = await generateKeyPair(opts.out);
      printResult(ctx, result, [
        `private key: ${result.privateKeyFile} (keep it on the connected side, readable only by you)`,
        `public key:  ${result.publicKeyFile} (copy it into the air gap; verify and import trust it with --trust)`,
        `key id:      ${result.keyId}`,
      ]);
    });
}
