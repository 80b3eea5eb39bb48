/**
 * `airlock bundle create | verify | inspect | diff`: thin layers over `src/ops/`. Each action loads
 * its operation when it runs (dynamic import): a command pays only for the modules it uses, and
 * `--help` loads none (startup was ~0.35 s for every command when all were loaded up front).
 */
import { Option, type Command } from 'commander';
import type { DiffResult } from '../../ops/diff.js';
import type { BundleParent } from '../../bundle/manifest.js';
import { loadSigningKey, loadPublicKeys } from '../../bundle/keys.js';
import { addRegistryOptions, endpointsFrom, type RegistryFlags } from '../registry-options.js';
import { commandProgress } from '../network-log.js';
import type { CommandContext } from '../main.js';
import { contentsLine, imageTable, printResult, table } from '../output.js';
import { count, digestCell, formatBytes } from '../../words.js';
import { AirlockError } from '../../errors.js';
import { checkOutputFile } from '../../fs/output-location.js';
import { checkOutputFree, PARTIAL_SUFFIX } from '../../fs/output-file.js';
import { registerImportCommand } from './import.js';
import { withExamples } from '../examples.js';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

interface CreateFlags extends RegistryFlags {
  file?: string[];
  resume: boolean;
  output: string;
  signKey?: string;
  unsigned: boolean;
  force: boolean;
  platform?: string[];
  level: string;
  since?: string[];
  trust?: string[];
  maxInventoryAge?: string;
  sequence?: string;
  expires?: string;
  split?: string;
}

/**
 * `sequence 1764590000, expires 2026-12-31T00:00:00Z (in 30 days)`; a bundle made before airlock
 * wrote sequences says so, since import orders it before every sequenced bundle of its signer.
 */
function stampLine(m: { created: string; sequence?: number; expires?: string }, now?: Date): string {
  const sequence =
    m.sequence === undefined || m.sequence === 0
      ? 'no sequence (made by an older airlock: import treats it as 0, older than any bundle of its signer that has one)'
      : `sequence ${m.sequence}`;
  if (m.expires === undefined) return `${sequence}, no expiry`;
  if (now === undefined) return `${sequence}, expires ${m.expires}`;
  const left = Date.parse(m.expires) - now.getTime();
  return `${sequence}, expires ${m.expires} (${left <= 0 ? `EXPIRED ${formatAge(-left)} ago` : `in ${formatAge(left)}`})`;
}

/** `3 days`, `5 hours`, `12 minutes`, `40 seconds`: the largest whole unit. */
function formatAge(ms: number): string {
  const units: Array<[string, number]> = [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1000],
  ];
  for (const [name, size] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? '' : 's'}`;
  }
  return 'less than a second';
}

/**
 * `; 19.4 MiB without dedup (1.2 MiB saved)` when storing shared blobs once saved anything. Not for a
 * delta: its images also share blobs it does not carry, which it saved nothing on.
 */
function dedupSaving(t: { bytes: number; referencedBytes: number; externalBytes?: number }, delta: boolean): string {
  const saved = t.referencedBytes - t.bytes - (t.externalBytes ?? 0);
  return delta || saved <= 0 ? '' : `; ${formatBytes(t.referencedBytes)} without dedup (${formatBytes(saved)} saved)`;
}

/** `  delta of 2 parents: sha256:… (bundle, 2026-…), …` */
function parentsLine(parents: readonly BundleParent[]): string {
  return `  delta of ${parents.length} parent${parents.length === 1 ? '' : 's'}: ${parents.map((p) => `${p.id} (${p.kind}, ${p.created})`).join(', ')}`;
}

export function registerBundleCommands(program: Command, ctx: CommandContext): void {
  const bundle = program.command('bundle').description('create, verify and inspect image bundles');

  addRegistryOptions(
    withExamples(
      bundle.command('create'),
      'airlock bundle create -f images.yaml --sign-key mirror.key -o mirror-2026-11-28.tar.zst',
      'airlock bundle create quay.io/coreos/etcd:v3.5.0 docker://busybox:musl --unsigned -o test.tar.zst',
      'airlock bundle create -f images.yaml --sign-key mirror.key --since mirror-2026-11-28.tar.zst -o delta.tar.zst',
    )
      .description('pull the listed images into one signed archive (OCI layout in tar + zstd)')
      .argument('[refs...]', 'image references (registry refs, or oci:DIR[:NAME])')
      .addOption(new Option('-f, --file <images.yaml>', 'image list (YAML or JSON); repeatable').argParser(collect))
      .requiredOption('-o, --output <file.tar.zst>', 'archive to write (a .sha256 sidecar is written beside it)')
      .option('--sign-key <file>', 'ed25519 private key (from airlock key generate)')
      .option('--unsigned', 'create an unsigned bundle (verify and import will refuse it unless told otherwise)', false)
      .addOption(new Option('--platform <os/arch[/variant]>', 'only these platforms of multi-arch images; repeatable').argParser(collect))
      .option('--level <n>', 'zstd level for content that is not already compressed (1 is fastest; 3 saves ~12% of that part for 1.8x the CPU)', '1')
      .option('--force', 'replace an existing output file', false)
      .option('--no-resume', 'start over instead of continuing OUT.partial left by an interrupted run')
      .addOption(
        new Option(
          '--since <file>',
          'make a delta: ship only blobs this earlier bundle (or its first megabytes, or its bundle.json) or target inventory did not deliver; repeatable',
        ).argParser(collect),
      )
      .addOption(new Option('--trust <key.pub>', 'with --since INVENTORY: public key whose inventory signatures are accepted; repeatable').argParser(collect))
      .option('--max-inventory-age <days>', 'with --since INVENTORY: oldest inventory accepted, in days (default 30)')
      .option('--expires <duration>', 'the bundle expires this long after it is made (30d, 12h, 1w, 1d12h): verify and import then refuse it')
      .option('--sequence <n>', "this bundle's sequence instead of the next one (must be above the last one of the key, kept in KEY.sequence)")
      .option('--split <size>', 'write parts of this size (4GiB, 4.7GB, 700MB): OUT.part-001, … (cat them in order to join)'),
  ).action(async (refs: string[], flags: CreateFlags) => {
    if (flags.signKey !== undefined && flags.unsigned) {
      throw new AirlockError('USAGE', '--sign-key and --unsigned exclude each other');
    }
    const level = Number(flags.level);
    if (!Number.isInteger(level) || level < 1 || level > 19) throw new AirlockError('USAGE', `--level ${flags.level}: must be 1 to 19`);
    const maxAgeDays = flags.maxInventoryAge === undefined ? undefined : Number(flags.maxInventoryAge);
    if (maxAgeDays !== undefined && !(maxAgeDays > 0))
      throw new AirlockError('USAGE', `--max-inventory-age ${flags.maxInventoryAge}: must be a number of days above 0`);
    if ((flags.trust !== undefined || maxAgeDays !== undefined) && flags.since === undefined) {
      throw new AirlockError('USAGE', '--trust and --max-inventory-age only apply with --since');
    }
    const sequence = flags.sequence === undefined ? undefined : Number(flags.sequence);
    if (sequence !== undefined && !(/^[0-9]+$/.test(flags.sequence!) && Number.isSafeInteger(sequence) && sequence >= 1)) {
      throw new AirlockError('USAGE', `--sequence ${flags.sequence}: must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}`);
    }
    const { parseDuration } = await import('../../rollback/sequence.js');
    const expiresInMs = flags.expires === undefined ? undefined : parseDuration(flags.expires);
    const split = flags.split === undefined ? undefined : (await import('../../bundle/split-size.js')).parseSplitSize(flags.split);
    // Before any network work: an hour of copying must not end at an output that cannot be written.
    await checkOutputFile(flags.output, '-o');
    await checkOutputFree(flags.output, flags.force);
    ctx.onInterruptHint(`run the same command again to continue from ${flags.output}${PARTIAL_SUFFIX}${flags.split === undefined ? '' : '.part-*'} (kept)`);
    const signingKey = flags.signKey === undefined ? undefined : await loadSigningKey(flags.signKey);
    const inventoryTrust = await loadPublicKeys(flags.trust ?? []);
    const [{ listedImages }, { expandImages }, { createBundle }] = await Promise.all([
      import('../image-args.js'),
      import('../../copy/expand.js'),
      import('../../ops/create.js'),
    ]);
    const listed = await listedImages(refs, flags.file ?? [], flags.platform ?? []);
    const hosts = listed.flatMap((e) => (e.ref.kind === 'registry' ? [e.ref.ref.registry] : []));
    const g = ctx.globals();
    const { reporter, net } = await commandProgress(g);
    const endpoints = await endpointsFrom(flags, { hosts, sources: hosts, signal: ctx.signal, debug: g.debug, onEvent: net.network });
    try {
      const images = await expandImages(listed, endpoints, { signal: ctx.signal, onProgress: reporter.listener });
      const result = await createBundle({
        images,
        output: flags.output,
        ...(signingKey === undefined ? {} : { signingKey }),
        unsigned: flags.unsigned,
        force: flags.force,
        resume: flags.resume,
        level,
        since: flags.since ?? [],
        inventoryTrust,
        ...(maxAgeDays === undefined ? {} : { maxInventoryAgeMs: maxAgeDays * 86_400_000 }),
        ...(sequence === undefined ? {} : { sequence }),
        ...(expiresInMs === undefined ? {} : { expiresInMs }),
        ...(split === undefined ? {} : { split }),
        signal: ctx.signal,
        onProgress: net.listener,
      });
      reporter.stop(true);
      const delta = result.delta;
      const saved = result.totals.referencedBytes - result.totals.bytes - (delta?.externalBytes ?? 0);
      printResult(ctx, { ...result, retries: net.retries() }, [
        result.parts === undefined
          ? `wrote ${result.path} (${formatBytes(result.archiveBytes)}) and ${result.checksumFile}`
          : `wrote ${result.path} as ${count(result.parts.length, 'part')} (${result.parts[0]!.path} …, ${formatBytes(result.archiveBytes)}) and ${result.checksumFile}`,
        `  ${contentsLine(result.contents)} of content${saved > 0 && delta === undefined ? ` (${formatBytes(saved)} saved by storing shared blobs once)` : ''}`,
        ...(delta === undefined
          ? []
          : [
              parentsLine(delta.parents),
              `  not carried: ${count(delta.externalBlobs, 'blob')} (${formatBytes(delta.externalBytes)}) the target must already hold`,
            ]),
        `  bundle id ${result.bundleId}`,
        `  ${stampLine(result)}`,
        result.signed ? `  signed with key ${result.keyId}` : '  UNSIGNED: verify and import will refuse it without --allow-unsigned',
        ...net.summary(),
        '',
        ...imageTable(result.images, g.wide),
      ]);
    } catch (err) {
      reporter.stop(false);
      throw err;
    } finally {
      await endpoints.close();
    }
  });

  withExamples(
    bundle.command('verify'),
    'airlock bundle verify mirror-2026-11-28.tar.zst --trust mirror.pub',
    'airlock bundle verify mirror-2026-11-28.tar.zst --trust mirror.pub --json > verified.json',
    'airlock bundle verify mirror-2026-11-28.tar.zst --trust mirror.pub --receipt mirror-2026-11-28.receipt.json --sign-key gap.key',
  )
    .description('check a bundle offline: signature, schema, every digest and size, completeness')
    .argument('<file...>', 'bundle archive (.tar.zst); of a split one, its first part (NAME.part-001) or every part')
    .addOption(new Option('--trust <key.pub>', 'public key whose signatures are trusted; repeatable').argParser(collect))
    .option('--allow-unsigned', 'accept a bundle without a (trusted) signature', false)
    .option('--allow-expired', 'report an expired bundle as a warning instead of failing', false)
    .option(
      '--receipt <file>',
      'write a verification receipt here (JSON: bundle id, sha256 of the files, checks, result, time, host), also when verification fails',
    )
    .option('--sign-key <gap.key>', "with --receipt: sign the receipt with this side's ed25519 private key (import --receipt-key checks it)")
    .action(async (files: string[], flags: { trust?: string[]; allowUnsigned: boolean; allowExpired: boolean; receipt?: string; signKey?: string }) => {
      const file = files[0]!;
      if (flags.signKey !== undefined && flags.receipt === undefined) throw new AirlockError('USAGE', '--sign-key only applies with --receipt FILE');
      const trusted = await loadPublicKeys(flags.trust ?? []);
      const receiptKey = flags.signKey === undefined ? undefined : await loadSigningKey(flags.signKey);
      const { verifyBundle } = await import('../../ops/verify.js');
      const receiptOps = flags.receipt === undefined ? undefined : await import('../../receipt/verify-receipt.js');
      const { reporter } = await commandProgress(ctx.globals());
      try {
        const opts = {
          path: file,
          ...(files.length > 1 ? { parts: files } : {}),
          trusted,
          allowUnsigned: flags.allowUnsigned,
          allowExpired: flags.allowExpired,
          signal: ctx.signal,
          onProgress: reporter.listener,
        };
        const { result, receipt } =
          receiptOps === undefined || flags.receipt === undefined
            ? { result: await verifyBundle(opts), receipt: undefined }
            : await receiptOps.verifyWithReceipt(opts, { output: flags.receipt, ...(receiptKey === undefined ? {} : { signingKey: receiptKey }) });
        reporter.stop(true);
        printResult(ctx, receipt === undefined ? result : { ...result, receipt }, [
          `${file}: OK${result.expired ? ' but EXPIRED (accepted because of --allow-expired)' : ''}`,
          `  ${contentsLine(result.contents)} verified`,
          `  ${stampLine(result.manifest, new Date())}`,
          ...(result.parents === undefined
            ? []
            : [
                `  delta: expects ${count(result.expects.length, 'blob')} (${formatBytes(result.expects.reduce((n, b) => n + b.size, 0))}) already at the target, from ${count(result.parents.length, 'parent')} (--json lists them)`,
              ]),
          result.keyId === undefined ? '  unsigned (accepted because of --allow-unsigned)' : `  signed by trusted key ${result.keyId}`,
          ...(result.checksumFile === undefined
            ? []
            : [`  ${result.checksumFile} matches${result.parts === undefined ? '' : ` (${count(result.parts.length, 'part')})`}`]),
          ...(receipt === undefined
            ? []
            : [`  receipt written to ${receipt.path}${receipt.keyId === undefined ? ' (unsigned)' : `, signed with key ${receipt.keyId}`}`]),
        ]);
      } catch (err) {
        reporter.stop(false);
        throw err;
      }
    });

  withExamples(
    bundle.command('inspect'),
    'airlock bundle inspect mirror-2026-11-28.tar.zst',
    'airlock bundle inspect --manifest mirror-2026-11-28.tar.zst > bundle.json   # for a later --since',
  )
    .description('show the images, platforms and sizes of a bundle from its head (reads only the first frames)')
    .argument('<file...>', 'bundle archive (.tar.zst), or just its first megabytes; of a split one, its first part or every part')
    .option('--manifest', 'print the signed bundle manifest (bundle.json) exactly as stored', false)
    .option('--signature', 'print its signature (bundle.json.sig) exactly as stored: keep it as MANIFEST.sig beside an exported manifest', false)
    .action(async (files: string[], flags: { manifest: boolean; signature: boolean }) => {
      const file = files[0]!;
      if (flags.manifest && flags.signature) throw new AirlockError('USAGE', '--manifest and --signature exclude each other');
      const { inspectBundle } = await import('../../ops/inspect.js');
      const result = await inspectBundle(file, files.length > 1 ? files : undefined);
      if (flags.manifest) {
        process.stdout.write(result.bundleJson);
        return;
      }
      if (flags.signature) {
        if (result.signature === undefined) throw new AirlockError('SIGNATURE', `${file} is not signed`, { subject: file });
        process.stdout.write(result.signature);
        return;
      }
      const m = result.manifest;
      const lines = [
        `bundle ${result.bundleId}`,
        `  created ${m.created} by ${m.creator}, ${result.signed ? `signed by key ${result.keyId ?? '?'} (not checked: run verify)` : 'UNSIGNED'}`,
        `  ${stampLine(m, new Date())}`,
        `  ${contentsLine(result.contents)} stored${dedupSaving(m.totals, m.external !== undefined)}`,
        ...(m.parents === undefined
          ? []
          : [
              parentsLine(m.parents),
              `  carries ${count(m.totals.blobs, 'blob')} (${formatBytes(m.totals.bytes)}); expects ${count(m.external?.length ?? 0, 'blob')} (${formatBytes(m.totals.externalBytes ?? 0)}) already at the target`,
            ]),
        '',
        ...imageTable(m.images, ctx.globals().wide),
      ];
      printResult(ctx, result.json, lines);
    });

  withExamples(bundle.command('diff'), 'airlock bundle diff mirror-2026-11-28.tar.zst mirror-2026-12-05.tar.zst')
    .description('what changed from bundle A to bundle B: images added, removed, retagged; blobs and bytes new in B (reads only their heads)')
    .argument('<a>', 'the older bundle (.tar.zst, its first megabytes, or its bundle.json)')
    .argument('<b>', 'the newer bundle')
    .action(async (a: string, b: string) => {
      const { diffBundles } = await import('../../ops/diff.js');
      const result = await diffBundles(a, b);
      printResult(ctx, result, diffLines(result, ctx.globals().wide));
    });

  registerImportCommand(bundle, ctx);
}

function diffLines(d: DiffResult, wide: boolean): string[] {
  const related = { same: ' (the same bundle)', 'b-builds-on-a': ' (B is a delta of A)', 'a-builds-on-b': ' (A is a delta of B)', unrelated: '' }[d.relation];
  const carried = d.newBlobs.filter((x) => x.carried);
  return [
    `A ${d.a.bundleId} (${d.a.created}${d.a.delta ? ', delta' : ''})`,
    `B ${d.b.bundleId} (${d.b.created}${d.b.delta ? ', delta' : ''})${related}`,
    `  images: ${d.added.length} added, ${d.removed.length} removed, ${d.retagged.length} retagged, ${d.unchanged} unchanged`,
    `  blobs new in B: ${d.newBlobs.length} (${formatBytes(d.newBytes)}), ${carried.length} of them carried by B; ${d.droppedBlobs} of A's (${formatBytes(d.droppedBytes)}) no longer needed`,
    ...(d.added.length + d.removed.length + d.retagged.length === 0 ? [] : ['']),
    ...table([
      ...d.added.map((i) => ['+', i.name, digestCell(i.digest, wide)]),
      ...d.removed.map((i) => ['-', i.name, digestCell(i.digest, wide)]),
      ...d.retagged.map((i) => ['~', i.name, `${digestCell(i.from, wide)} -> ${digestCell(i.to, wide)}`]),
    ]),
  ];
}
