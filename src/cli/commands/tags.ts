/**
 * `airlock tags REPOSITORY [--semver R] [--include RE] [--exclude RE]`: a thin layer over
 * `ops/tags.ts`. The tags (or, with a filter, the selected ones) go to stdout one a line, for
 * scripts; with a filter a count goes to stderr; `--json` prints { repository, tags, selected }.
 */
import type { Command } from 'commander';
import { addRegistryOptions, endpointsFrom, type RegistryFlags } from '../registry-options.js';
import { printResult } from '../output.js';
import type { CommandContext } from '../main.js';
import { cleanText } from '../../redact.js';

interface TagsFlags extends RegistryFlags {
  semver?: string;
  include?: string;
  exclude?: string;
}

export function registerTagsCommand(program: Command, ctx: CommandContext): void {
  const cmd = addRegistryOptions(
    program
      .command('tags')
      .description("list a repository's tags, and which the tag filters of an image list would select")
      .argument('<repository>', 'registry repository (quay.io/coreos/etcd; docker:// accepted) or oci:DIR[:NAME]')
      .option('--semver <range>', 'select tags that are semantic versions in this npm-style range, as tags.semver in an image list')
      .option('--include <regex>', 'select tags this regular expression matches, as tags.include')
      .option('--exclude <regex>', 'drop tags this regular expression matches, as tags.exclude')
      .addHelpText(
        'after',
        ['', 'Examples:', '  airlock tags quay.io/coreos/etcd', "  airlock tags quay.io/coreos/etcd --semver '>=3.4 <4' --exclude -rc --json"].join('\n'),
      ),
  );
  const concurrency = cmd.options.find((o) => o.long === '--concurrency');
  if (concurrency !== undefined) concurrency.hidden = true;

  cmd.action(async (text: string, flags: TagsFlags) => {
    const { listRepositoryTags, parseTagsReference, tagFilterFromFlags } = await import('../../ops/tags.js');
    const ref = parseTagsReference(text);
    const filter = tagFilterFromFlags({
      ...(flags.semver === undefined ? {} : { semver: flags.semver }),
      ...(flags.include === undefined ? {} : { include: flags.include }),
      ...(flags.exclude === undefined ? {} : { exclude: flags.exclude }),
    });
    const g = ctx.globals();
    const hosts = ref.kind === 'registry' ? [ref.ref.registry] : [];
    const endpoints = await endpointsFrom(flags, { hosts, sources: hosts, signal: ctx.signal, debug: g.debug });
    try {
      const source = ref.kind === 'registry' ? endpoints.registry(ref.ref.registry) : endpoints.layout(ref.dir);
      const result = await listRepositoryTags({ ref, source }, filter, { signal: ctx.signal });
      const { filtered: _, invalid, ...json } = result;
      printResult(ctx, { ...json, ...(invalid.length === 0 ? {} : { invalid }) }, result.filtered ? result.selected : result.tags);
      if (!g.quiet && !g.json) {
        const skipped = invalid.length === 0 ? '' : `; ${invalid.length} not valid tags, never selected`;
        if (result.filtered || skipped !== '') {
          process.stderr.write(`${cleanText(`${result.repository}: ${result.selected.length} of ${result.tags.length} tags selected${skipped}`)}\n`);
        }
      }
    } finally {
      await endpoints.close();
    }
  });
}
