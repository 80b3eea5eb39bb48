/**
 * `airlock mirror-config [BUNDLE...] --to HOST[:PORT][/PREFIX] -o DIR`: a thin layer over
 * `ops/mirror-config.ts`. Prints the files written and what each client cannot do.
 */
import { Option, type Command } from 'commander';
import { parseImportTarget } from '../../names/import-names.js';
import { printResult, table } from '../output.js';
import type { MirrorConfigResult } from '../../ops/mirror-config.js';
import type { CommandContext } from '../main.js';
import { withExamples } from '../examples.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface MirrorConfigFlags {
  to: string;
  output: string;
  host?: string[];
  stripHost: boolean;
  plainHttp: boolean;
  caFile?: string[];
  upstreamFallback: boolean;
  allowUpstream: boolean;
}

/** The human lines of a result (import --mirror-config prints them too). */
export function mirrorConfigLines(result: MirrorConfigResult): string[] {
  return [
    `client configuration for the mirror ${result.mirror} (${result.upstreams.join(', ')}):`,
    ...table(result.files.map((f) => [f.client, f.path])),
    ...result.notes.map((n) => `  note: ${n}`),
  ];
}

export function registerMirrorConfigCommand(program: Command, ctx: CommandContext): void {
  withExamples(
    program.command('mirror-config'),
    'airlock mirror-config mirror-2026-11-28.tar.zst --to registry.lan --ca-file /etc/pki/mirror-ca.pem -o mirror-config/',
    'airlock mirror-config --host docker.io --host quay.io --to registry.lan:5000/mirror --plain-http -o mirror-config/',
  )
    .description(
      'write the containerd, podman/CRI-O, k3s and Docker configuration that makes nodes pull upstream names from an imported mirror (same names as bundle import)',
    )
    .argument('[bundles...]', 'bundles imported into the mirror: their image names give the upstream hosts')
    .requiredOption('--to <HOST[:PORT][/PREFIX]>', 'the mirror, as given to bundle import --to')
    .requiredOption('-o, --output <dir>', 'directory to write into, laid out like /etc (made if missing; files in it are replaced)')
    .addOption(new Option('--host <host>', 'an upstream host to configure (e.g. docker.io, quay.io); repeatable').argParser(collect))
    .option('--strip-host', 'the images were imported with --strip-host', false)
    .option('--plain-http', 'the mirror speaks plain HTTP', false)
    .addOption(new Option('--ca-file <file>', "the mirror's CA certificate (PEM), at this path on the nodes too; repeatable").argParser(collect))
    .option('--upstream-fallback', 'containerd: keep the upstream as server, tried when the mirror lacks an image (default: the mirror only)', false)
    .option('--allow-upstream', 'podman/CRI-O: do not block the upstream registries (default: blocked, only the mirror is asked)', false)
    .action(async (bundles: string[], flags: MirrorConfigFlags) => {
      const target = parseImportTarget(flags.to);
      const { writeMirrorConfig } = await import('../../ops/mirror-config.js');
      const result = await writeMirrorConfig({
        dir: flags.output,
        target,
        bundles,
        hosts: flags.host ?? [],
        stripHost: flags.stripHost,
        plainHttp: flags.plainHttp,
        caFiles: flags.caFile ?? [],
        upstreamFallback: flags.upstreamFallback,
        allowUpstream: flags.allowUpstream,
      });
      printResult(ctx, result, mirrorConfigLines(result));
    });
}
