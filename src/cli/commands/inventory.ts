/**
 * `airlock inventory --registry HOST[:PORT][/PREFIX] | --layout DIR`: a thin layer over
 * `ops/inventory.ts`. The inventory file goes to stdout (for `> have.json`) or, with `-o`, to a
 * file written atomically; progress and the summary go to stderr.
 */
import type { Command } from 'commander';
import { AirlockError } from '../../errors.js';
import { checkOutputFile } from '../../fs/output-location.js';
import { loadSigningKey } from '../../bundle/keys.js';
import { DEFAULT_INVENTORY_CONCURRENCY, makeInventory, type InventoryResult, type InventoryTarget } from '../../ops/inventory.js';
import { parseImportTarget } from '../../names/import-names.js';
import { addRegistryOptions, endpointsFrom, type RegistryFlags } from '../registry-options.js';
import { parseConcurrency } from '../flag-values.js';
import { count, formatBytes } from '../../words.js';
import { commandProgress } from '../network-log.js';
import { printResult } from '../output.js';
import type { CommandContext } from '../main.js';
import { withExamples } from '../examples.js';

interface InventoryFlags extends RegistryFlags {
  registry?: string;
  layout?: string;
  signKey?: string;
  output?: string;
  force: boolean;
}

function summary(r: InventoryResult, retries: number): string {
  const where = r.output === undefined ? '' : ` into ${r.output}`;
  const retried = retries === 0 ? '' : `; ${retries} ${retries === 1 ? 'retry' : 'retries'} after network faults`;
  return `inventory ${r.id} of ${r.target}${where}: ${count(r.images, 'image')}, ${count(r.manifests, 'manifest')}, ${count(r.blobs, 'blob')} (${formatBytes(r.bytes)}), ${r.signed ? `signed with key ${r.keyId}` : 'UNSIGNED'}${retried}`;
}

export function registerInventoryCommand(program: Command, ctx: CommandContext): void {
  const cmd = addRegistryOptions(
    withExamples(
      program.command('inventory'),
      'airlock inventory --registry registry.lan --sign-key gap.key -o have.json',
      'airlock inventory --layout /srv/images > have.json',
    )
      .description('list what a registry (or OCI layout) holds, for bundle create --since on the connected side')
      .option('--registry <HOST[:PORT][/PREFIX]>', 'the registry to list, optionally only repositories under a prefix')
      .option('--layout <dir>', 'the OCI image layout directory to list')
      .option('--sign-key <file>', 'sign the inventory with this ed25519 private key')
      .option('-o, --output <file>', 'write the inventory to this file (atomically) instead of stdout')
      .option('--force', 'replace an existing output file', false),
  );
  const concurrency = cmd.options.find((o) => o.long === '--concurrency');
  if (concurrency !== undefined) concurrency.description = `registry requests in flight at once (default ${DEFAULT_INVENTORY_CONCURRENCY})`;

  cmd.action(async (flags: InventoryFlags) => {
    if ((flags.registry === undefined) === (flags.layout === undefined)) {
      throw new AirlockError('USAGE', 'give exactly one of --registry HOST[/PREFIX] and --layout DIR', {
        hint: 'e.g. airlock inventory --registry registry.lan/mirror > have.json',
      });
    }
    const parsed = flags.registry === undefined ? undefined : parseImportTarget(flags.registry);
    if (parsed?.kind === 'layout') throw new AirlockError('USAGE', `--registry ${flags.registry}: for a layout use --layout DIR`);
    if (flags.output !== undefined) await checkOutputFile(flags.output, '-o');
    const signingKey = flags.signKey === undefined ? undefined : await loadSigningKey(flags.signKey);
    const requests = parseConcurrency(flags.concurrency ?? String(DEFAULT_INVENTORY_CONCURRENCY));
    const g = ctx.globals();
    const { reporter, net } = await commandProgress(g);
    const endpoints = await endpointsFrom(
      { ...flags, concurrency: String(requests) },
      { hosts: parsed === undefined ? [] : [parsed.host], debug: g.debug, onEvent: net.network },
    );
    try {
      let target: InventoryTarget = { kind: 'layout', dir: flags.layout ?? '' };
      if (parsed !== undefined) {
        target = { kind: 'registry', host: parsed.host, prefix: parsed.prefix, registry: endpoints.registry(parsed.host) };
      }
      const result = await makeInventory({
        target,
        ...(signingKey === undefined ? {} : { signingKey }),
        concurrency: requests,
        ...(flags.output === undefined ? {} : { output: flags.output }),
        force: flags.force,
        signal: ctx.signal,
        onProgress: net.listener,
      });
      reporter.stop(true);
      if (result.output === undefined) {
        process.stdout.write(result.file);
        if (!ctx.globals().quiet) process.stderr.write(`${summary(result, net.retries())}\n`);
        return;
      }
      const { file: _, ...rest } = result;
      printResult(ctx, { ...rest, retries: net.retries() }, [summary(result, net.retries())]);
    } catch (err) {
      reporter.stop(false);
      throw err;
    } finally {
      await endpoints.close();
    }
  });
}
