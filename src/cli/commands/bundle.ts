/** `airlock bundle create | verify | inspect`: thin layers over `src/ops/`. */
import { Option, type Command } from 'commander';
import { createBundle } from '../../ops/create.js';
import { verifyBundle } from '../../ops/verify.js';
import { inspectBundle } from '../../ops/inspect.js';
import { expandImages } from '../../copy/expand.js';
import { listedImages } from '../image-args.js';
import { loadSigningKey, loadPublicKeys } from '../../bundle/keys.js';
import { addRegistryOptions, endpointsFrom, type RegistryFlags } from '../registry-options.js';
import { createReporter } from '../progress.js';
import type { CommandContext } from '../main.js';
import { printResult, table } from '../output.js';
import { formatBytes } from '../progress.js';
import { AirlockError } from '../../errors.js';
import { registerImportCommand } from './import.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface CreateFlags extends RegistryFlags {
  file?: string[];
  output: string;
  signKey?: string;
  unsigned: boolean;
  force: boolean;
  platform?: string[];
  level: string;
}

export function registerBundleCommands(program: Command, ctx: CommandContext): void {
  const bundle = program.command('bundle').description('create, verify and inspect image bundles');

  addRegistryOptions(
    bundle
      .command('create')
      .description('pull the listed images into one signed archive (OCI layout in tar + zstd)')
      .argument('[refs...]', 'image references (registry refs, or oci:DIR[:NAME])')
      .addOption(new Option('-f, --file <images.yaml>', 'image list (YAML or JSON); repeatable').argParser(collect))
      .requiredOption('-o, --output <file.tar.zst>', 'archive to write (a .sha256 sidecar is written beside it)')
      .option('--sign-key <file>', 'ed25519 private key (from airlock key generate)')
      .option('--unsigned', 'create an unsigned bundle (verify and import will refuse it unless told otherwise)', false)
      .addOption(new Option('--platform <os/arch[/variant]>', 'only these platforms of multi-arch images; repeatable').argParser(collect))
      .option('--level <n>', 'zstd level for content that is not already compressed (1 is fastest; 3 saves ~12% of that part for 1.8x the CPU)', '1')
      .option('--force', 'replace an existing output file', false),
  ).action(async (refs: string[], flags: CreateFlags) => {
    if (flags.signKey !== undefined && flags.unsigned) {
      throw new AirlockError('USAGE', '--sign-key and --unsigned exclude each other');
    }
    const level = Number(flags.level);
    if (!Number.isInteger(level) || level < 1 || level > 19) throw new AirlockError('USAGE', `--level ${flags.level}: must be 1 to 19`);
    const signingKey = flags.signKey === undefined ? undefined : await loadSigningKey(flags.signKey);
    const listed = await listedImages(refs, flags.file ?? [], flags.platform ?? []);
    const endpoints = endpointsFrom(flags);
    const reporter = createReporter({ quiet: ctx.globals().quiet || ctx.globals().json });
    try {
      const images = await expandImages(listed, endpoints, { signal: ctx.signal });
      const result = await createBundle({
        images,
        output: flags.output,
        ...(signingKey === undefined ? {} : { signingKey }),
        unsigned: flags.unsigned,
        force: flags.force,
        level,
        signal: ctx.signal,
        onProgress: reporter.listener,
      });
      reporter.stop(true);
      const saved = result.totals.referencedBytes - result.totals.bytes;
      printResult(ctx, result, [
        `wrote ${result.path} (${formatBytes(result.archiveBytes)}) and ${result.checksumFile}`,
        `  ${result.totals.images} images, ${result.totals.blobs} blobs, ${formatBytes(result.totals.bytes)} of content (${formatBytes(saved)} saved by storing shared blobs once)`,
        `  bundle id ${result.bundleId}`,
        result.signed ? `  signed with key ${result.keyId}` : '  UNSIGNED: verify and import will refuse it without --allow-unsigned',
      ]);
    } catch (err) {
      reporter.stop(false);
      throw err;
    } finally {
      await endpoints.close();
    }
  });

  bundle
    .command('verify')
    .description('check a bundle offline: signature, schema, every digest and size, completeness')
    .argument('<file>', 'bundle archive (.tar.zst)')
    .addOption(new Option('--trust <key.pub>', 'public key whose signatures are trusted; repeatable').argParser(collect))
    .option('--allow-unsigned', 'accept a bundle without a (trusted) signature', false)
    .action(async (file: string, flags: { trust?: string[]; allowUnsigned: boolean }) => {
      const trusted = await loadPublicKeys(flags.trust ?? []);
      const reporter = createReporter({ quiet: ctx.globals().quiet || ctx.globals().json });
      try {
        const result = await verifyBundle({
          path: file,
          trusted,
          allowUnsigned: flags.allowUnsigned,
          signal: ctx.signal,
          onProgress: reporter.listener,
        });
        reporter.stop(true);
        printResult(ctx, result, [
          `${file}: OK`,
          `  ${result.images} images, ${result.blobs} blobs, ${formatBytes(result.bytes)} verified`,
          result.keyId === undefined ? '  unsigned (accepted because of --allow-unsigned)' : `  signed by trusted key ${result.keyId}`,
          ...(result.checksumFile === undefined ? [] : [`  ${result.checksumFile} matches`]),
        ]);
      } catch (err) {
        reporter.stop(false);
        throw err;
      }
    });

  bundle
    .command('inspect')
    .description('show the images, platforms and sizes of a bundle from its head (reads only the first frames)')
    .argument('<file>', 'bundle archive (.tar.zst), or just its first megabytes')
    .option('--manifest', 'print the signed bundle manifest (bundle.json) exactly as stored', false)
    .action(async (file: string, flags: { manifest: boolean }) => {
      const result = await inspectBundle(file);
      if (flags.manifest) {
        process.stdout.write(result.bundleJson);
        return;
      }
      const m = result.manifest;
      const lines = [
        `bundle ${result.bundleId}`,
        `  created ${m.created} by ${m.creator}, ${result.signed ? `signed by key ${result.keyId ?? '?'} (not checked: run verify)` : 'UNSIGNED'}`,
        `  ${m.totals.images} images, ${m.totals.blobs} blobs, ${formatBytes(m.totals.bytes)} stored; ${formatBytes(m.totals.referencedBytes)} without dedup (${formatBytes(m.totals.referencedBytes - m.totals.bytes)} saved)`,
        '',
        ...table([
          ['IMAGE', 'DIGEST', 'SIZE', 'PLATFORMS'],
          ...m.images.map((img) => [img.name, img.digest, img.bytes === undefined ? '?' : formatBytes(img.bytes), img.platforms.join(',') || '-']),
        ]),
      ];
      printResult(ctx, result.json, lines);
    });

  registerImportCommand(bundle, ctx);
}
