/**
 * `airlock copy SRC… DST`: a thin layer over `ops/copy.ts`, loaded when the command runs.
 *
 * Sources are what `bundle create` takes (registry references, `oci:DIR[:NAME]`, `-f` image lists
 * with tag filters and platforms); the destination is what `bundle import --to` takes
 * (`HOST[:PORT][/PREFIX]` or `oci:DIR`), with the same name mapping.
 */
import { count, digestCell } from '../../words.js';
import { Option, type Command } from 'commander';
import { AirlockError } from '../../errors.js';
import { checkOutputDirectory } from '../../fs/output-location.js';
import { DEFAULT_IMPORT_CONCURRENCY, SMALL_REQUESTS_IN_FLIGHT } from '../../copy/limits.js';
import { parseImportTarget } from '../../names/import-names.js';
import { addRegistryOptions, endpointsFrom, type RegistryFlags } from '../registry-options.js';
import { parseConcurrency } from '../flag-values.js';
import { commandProgress } from '../network-log.js';
import { printResult, table, transferLine } from '../output.js';
import type { CommandContext } from '../main.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface CopyFlags extends RegistryFlags {
  file?: string[];
  platform?: string[];
  stripHost: boolean;
}

export function registerCopyCommand(program: Command, ctx: CommandContext): void {
  const cmd = addRegistryOptions(
    program
      .command('copy')
      .description('copy images straight from registries or OCI layouts into a registry or an OCI layout, without a bundle')
      .argument('<refs-and-target...>', 'image references (registry refs, or oci:DIR[:NAME]), then the target: HOST[:PORT][/PREFIX] or oci:DIR')
      .addOption(new Option('-f, --file <images.yaml>', 'image list (YAML or JSON); repeatable').argParser(collect))
      .addOption(new Option('--platform <os/arch[/variant]>', 'only these platforms of multi-arch images; repeatable').argParser(collect))
      .option('--strip-host', 'drop the upstream registry host from target names (refused if two images would collide)', false)
      .option('--chunk-size <MiB>', 'send large blobs in PATCH requests of at most this size, for proxies that cap request bodies')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  airlock copy quay.io/coreos/etcd:v3.5.0 oci:/srv/seed          # registry -> layout',
          '  airlock copy oci:/srv/seed registry.lan:5000/mirror            # layout -> registry (every named image)',
          '  airlock copy -f images.yaml registry.lan:5000/mirror           # registries -> registry',
        ].join('\n'),
      ),
    { what: "blob uploads in flight at once (a registry's ingest is CPU-bound: a third upload rarely helps)", defaultValue: DEFAULT_IMPORT_CONCURRENCY },
  );

  cmd.action(async (args: string[], flags: CopyFlags) => {
    const to = args[args.length - 1]!;
    const refs = args.slice(0, -1);
    if (refs.length === 0 && (flags.file ?? []).length === 0) {
      throw new AirlockError('USAGE', `copy ${to}: no images to copy, or no target`, {
        hint: 'write airlock copy SRC... DST (e.g. airlock copy quay.io/coreos/etcd:v3.5.0 oci:/srv/seed), or -f images.yaml DST',
      });
    }
    const target = parseImportTarget(to);
    if (target.kind === 'layout') await checkOutputDirectory(target.dir);
    ctx.onInterruptHint('run the same command again to complete the copy: what already landed is skipped');
    const uploads = parseConcurrency(flags.concurrency, DEFAULT_IMPORT_CONCURRENCY);
    const [{ listedImages }, { expandImages }, { copyImages }] = await Promise.all([
      import('../image-args.js'),
      import('../../copy/expand.js'),
      import('../../ops/copy.js'),
    ]);
    const listed = await listedImages(refs, flags.file ?? [], flags.platform ?? []);
    const sources = listed.flatMap((e) => (e.ref.kind === 'registry' ? [e.ref.ref.registry] : []));
    const hosts = [...sources, ...(target.kind === 'registry' ? [target.host] : [])];
    const g = ctx.globals();
    const { reporter, net } = await commandProgress(g);
    // The clients must allow the small requests the engine runs at once; the engine bounds large uploads.
    const endpoints = await endpointsFrom(
      { ...flags, concurrency: String(Math.max(uploads, SMALL_REQUESTS_IN_FLIGHT)) },
      { hosts, sources, signal: ctx.signal, debug: g.debug, onEvent: net.network },
    );
    try {
      const images = await expandImages(listed, endpoints, { signal: ctx.signal, onProgress: net.listener });
      const sink = target.kind === 'layout' ? endpoints.layout(target.dir) : endpoints.registry(target.host);
      const result = await copyImages({
        images,
        target,
        sink,
        stripHost: flags.stripHost,
        concurrency: uploads,
        signal: ctx.signal,
        onProgress: net.listener,
      });
      reporter.stop(true);
      printResult(ctx, { ...result, retries: net.retries() }, [
        `copied ${count(result.images.length, 'image')} into ${result.target}`,
        transferLine(result.blobs, result.manifests),
        ...net.summary(),
        '',
        ...table([['SOURCE', 'TARGET', 'DIGEST'], ...result.images.map((i) => [i.source, i.reference, digestCell(i.digest, g.wide)])]),
      ]);
    } catch (err) {
      reporter.stop(false);
      throw err;
    } finally {
      await endpoints.close();
    }
  });
}
