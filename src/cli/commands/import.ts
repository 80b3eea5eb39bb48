/**
 * `airlock bundle import FILE --to HOST[:PORT][/PREFIX] | oci:DIR`: a thin layer over `ops/import.ts`,
 * loaded when the command runs (see commands/bundle.ts).
 */
import { digestCell } from '../../words.js';
import { Option, type Command } from 'commander';
import { checkOutputDirectory } from '../../fs/output-location.js';
import { loadPublicKeys } from '../../bundle/keys.js';
import { DEFAULT_IMPORT_CONCURRENCY, SMALL_REQUESTS_IN_FLIGHT } from '../../copy/limits.js';
import { describeTarget, parseImportTarget, type ImportTarget } from '../../names/import-names.js';
import { AirlockError } from '../../errors.js';
import type { MirrorConfigResult } from '../../ops/mirror-config.js';
import { mirrorConfigLines } from './mirror-config.js';
import { addRegistryOptions, endpointsFrom, plainHttpFor, type RegistryFlags } from '../registry-options.js';
import { parseConcurrency } from '../flag-values.js';
import { commandProgress } from '../network-log.js';
import { printResult, table, transferLine } from '../output.js';
import type { CommandContext } from '../main.js';
import { withExamples } from '../examples.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface ImportFlags extends RegistryFlags {
  to: string;
  trust?: string[];
  allowUnsigned: boolean;
  policy?: string;
  stripHost: boolean;
  allowDowngrade: boolean;
  allowExpired: boolean;
  mirrorConfig?: string;
  receipt?: string;
  receiptKey?: string[];
}

/**
 * Add `import` under `bundle`. `--concurrency` (from the shared registry options) means uploads in
 * flight here, default {@link DEFAULT_IMPORT_CONCURRENCY}.
 */
export function registerImportCommand(bundle: Command, ctx: CommandContext): void {
  const cmd = addRegistryOptions(
    withExamples(
      bundle.command('import'),
      'airlock bundle import mirror-2026-11-28.tar.zst --to registry.lan --trust mirror.pub',
      'airlock bundle import mirror-2026-11-28.tar.zst --to oci:/srv/images --trust mirror.pub',
      'airlock bundle import mirror-2026-11-28.tar.zst --to registry.lan/mirror --trust mirror.pub --mirror-config mirror-config/',
      'airlock bundle import mirror-2026-11-28.tar.zst --to registry.lan --trust mirror.pub --receipt mirror-2026-11-28.receipt.json --receipt-key gap.pub',
    )
      .description('push the images of a bundle into a registry or an OCI layout directory; signature and manifest are checked before anything is sent')
      .argument('<file...>', 'bundle archive (.tar.zst); of a split one, its first part (NAME.part-001) or every part')
      .requiredOption('--to <HOST[:PORT][/PREFIX]|oci:DIR>', 'target registry and optional repository prefix, or an OCI image layout directory')
      .addOption(new Option('--trust <key.pub>', 'public key whose signatures are trusted; repeatable').argParser(collect))
      .option('--allow-unsigned', 'accept a bundle without a (trusted) signature', false)
      .option('--allow-downgrade', "move tags back to an older bundle's content of the same signer (a rollback on purpose)", false)
      .option('--allow-expired', 'import a bundle whose expiry has passed', false)
      .option('--policy <file>', 'import policy (YAML or JSON, see schemas/policy.schema.json): allowed registries, repositories, signers')
      .option('--strip-host', 'drop the upstream registry host from target names (refused if two images would collide)', false)
      .option(
        '--chunk-size <MiB>',
        'send large blobs in PATCH requests of at most this size, for proxies that cap request bodies (default: one request per blob, as docker push does)',
      )
      .option('--mirror-config <dir>', 'after the import, write the client configuration for the mirror into DIR (as airlock mirror-config -o DIR)')
      .option(
        '--receipt <file>',
        'a receipt from bundle verify --receipt: required to be for these exact bytes, passed, and signed by a --receipt-key (all checks still run)',
      )
      .addOption(new Option('--receipt-key <gap.pub>', 'with --receipt: public key whose receipt signatures are trusted; repeatable').argParser(collect)),
    { what: "blob uploads in flight at once (a registry's ingest is CPU-bound: a third upload rarely helps)", defaultValue: DEFAULT_IMPORT_CONCURRENCY },
  );

  cmd.action(async (files: string[], flags: ImportFlags) => {
    const file = files[0]!;
    const target = parseImportTarget(flags.to);
    if (target.kind === 'layout') await checkOutputDirectory(target.dir);
    if (flags.mirrorConfig !== undefined) await checkMirrorConfigTarget(target, flags.mirrorConfig);
    ctx.onInterruptHint('run the same command again to complete the import: what already landed is skipped');
    const uploads = parseConcurrency(flags.concurrency, DEFAULT_IMPORT_CONCURRENCY);
    const trusted = await loadPublicKeys(flags.trust ?? []);
    if (flags.receiptKey !== undefined && flags.receipt === undefined) throw new AirlockError('USAGE', '--receipt-key only applies with --receipt FILE');
    if (flags.receipt !== undefined && flags.receiptKey === undefined) {
      throw new AirlockError('USAGE', `--receipt ${flags.receipt} needs --receipt-key: an unsigned or unchecked receipt is evidence of nothing`, {
        hint: 'pass the public key of the host that verified the bundle: --receipt-key GAP.pub',
      });
    }
    const receiptKeys = await loadPublicKeys(flags.receiptKey ?? []);
    const { importBundle } = await import('../../ops/import.js');
    const policy = flags.policy === undefined ? undefined : await (await import('../../policy/load.js')).loadPolicy(flags.policy);
    // The client must allow the small requests the engine runs at once; the engine bounds large uploads.
    const g = ctx.globals();
    const { reporter, net } = await commandProgress(g);
    const endpoints = await endpointsFrom(
      { ...flags, concurrency: String(Math.max(uploads, SMALL_REQUESTS_IN_FLIGHT)) },
      { hosts: target.kind === 'registry' ? [target.host] : [], debug: g.debug, onEvent: net.network },
    );
    try {
      const sink = target.kind === 'layout' ? endpoints.layout(target.dir) : endpoints.registry(target.host);
      const result = await importBundle({
        path: file,
        ...(files.length > 1 ? { parts: files } : {}),
        target,
        sink,
        trusted,
        allowUnsigned: flags.allowUnsigned,
        ...(policy === undefined ? {} : { policy }),
        stripHost: flags.stripHost,
        allowDowngrade: flags.allowDowngrade,
        allowExpired: flags.allowExpired,
        concurrency: uploads,
        ...(flags.receipt === undefined ? {} : { receipt: { path: flags.receipt, trusted: receiptKeys } }),
        signal: ctx.signal,
        onProgress: net.listener,
      });
      reporter.stop(true);
      const mirror = flags.mirrorConfig === undefined ? undefined : await mirrorConfigAfterImport(file, target, flags, flags.mirrorConfig);
      printResult(ctx, { ...result, retries: net.retries(), ...(mirror === undefined ? {} : { mirrorConfig: mirror }) }, [
        `imported ${file} into ${result.target}`,
        `  recorded in ${result.record} (rollback protection)`,
        `  bundle id ${result.bundleId}, ${result.keyId === undefined ? 'UNSIGNED or untrusted (accepted because of --allow-unsigned)' : `signed by trusted key ${result.keyId}`}`,
        ...(result.receipt === undefined
          ? []
          : [
              `  receipt ${result.receipt.path}: verified ${result.receipt.verified}${result.receipt.host === undefined ? '' : ` on ${result.receipt.host}`}, signed by receipt key ${result.receipt.keyId}; ${result.receipt.files.length === 1 ? "the archive's sha256 matches" : `the sha256 of each of its ${result.receipt.files.length} parts matches`}`,
            ]),
        transferLine(result.blobs, result.manifests),
        ...net.summary(),
        '',
        ...table([['IMAGE', 'TARGET', 'DIGEST'], ...result.images.map((i) => [i.name, i.reference, digestCell(i.digest, g.wide)])]),
        ...(mirror === undefined ? [] : ['', ...mirrorConfigLines(mirror)]),
      ]);
    } catch (err) {
      reporter.stop(false);
      throw err;
    } finally {
      await endpoints.close();
    }
  });
}

/** `--mirror-config DIR` needs a registry target and a writable DIR: checked before the import. */
async function checkMirrorConfigTarget(target: ImportTarget, dir: string): Promise<void> {
  if (target.kind !== 'registry') throw new AirlockError('USAGE', '--mirror-config needs --to HOST[:PORT][/PREFIX], not a layout');
  await checkOutputDirectory(dir);
}

/** The mirror configuration for the bundle just imported, with the import's TLS settings. */
async function mirrorConfigAfterImport(file: string, target: ImportTarget, flags: ImportFlags, dir: string): Promise<MirrorConfigResult> {
  const { writeMirrorConfig } = await import('../../ops/mirror-config.js');
  try {
    return await writeMirrorConfig({
      dir,
      target,
      bundles: [file],
      stripHost: flags.stripHost,
      // The mirror is plain HTTP when the import talked plain HTTP to it.
      plainHttp: target.kind === 'registry' && plainHttpFor(flags, target.host),
      caFiles: flags.caFile ?? [],
    });
  } catch (err) {
    // The images landed: say so, so that only mirror-config is run again.
    if (!(err instanceof AirlockError)) throw err;
    throw new AirlockError(err.code, `the import succeeded, but --mirror-config failed: ${err.message}`, {
      ...(err.subject === undefined ? {} : { subject: err.subject }),
      hint: `${err.hint === undefined ? '' : `${err.hint}; then `}run airlock mirror-config ${file} --to ${describeTarget(target)} -o ${dir}`,
      cause: err,
    });
  }
}
