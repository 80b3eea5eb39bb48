/**
 * With --json, stdout holds exactly one JSON document for usage errors too (an unknown option, a
 * missing required option, an unknown command), wherever --json stands, with error.code USAGE and
 * exit 2; commander's own line stays on stderr. Every command's help lists the global options and
 * ends with examples.
 * Summary lines count in the words --json counts in, with correct plurals.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { makeTempDir, type TempDir } from '../support/tmp.js';
import { airlock } from '../support/cli.js';

describe('--json and usage errors', () => {
  it.each([
    [['--json', 'bundle', 'create', 'quay.io/a/b:1'], /required option '-o, --output/],
    [['bundle', 'verify', 'x.tar.zst', '--bogus', '--json'], /unknown option '--bogus'/],
    [['--json', 'no-such-command'], /unknown command 'no-such-command'/],
    [['bundle', 'import', 'x.tar.zst', '--json'], /required option '--to/],
  ])('%j: one JSON document on stdout, error.code USAGE, exit 2', async (args, message) => {
    const r = await airlock(args);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { error: { code: string; message: string } };
    expect(doc.error.code).toBe('USAGE');
    expect(doc.error.message).toMatch(message);
    expect(r.stderr).toMatch(message);
  });

  it('without --json, stdout stays empty', async () => {
    const r = await airlock(['bundle', 'verify', 'x.tar.zst', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  it.each([
    ['bundle', 'create'],
    ['bundle', 'verify'],
    ['bundle', 'inspect'],
    ['bundle', 'diff'],
    ['bundle', 'import'],
    ['key', 'generate'],
    ['copy'],
    ['inventory'],
    ['tags'],
    ['mirror-config'],
  ])('%j --help lists the global options and ends with examples of the command', async (...cmd) => {
    const r = await airlock([...cmd, '--help']);
    expect(r.code).toBe(0);
    const global = r.stdout.slice(r.stdout.indexOf('Global Options:'));
    expect(r.stdout).toContain('Global Options:');
    for (const flag of ['--json', '--quiet', '--debug']) expect(global).toContain(flag);
    const examples = r.stdout
      .slice(r.stdout.indexOf('Examples:'))
      .split('\n')
      .filter((l) => l.startsWith('  airlock '));
    expect(examples.length).toBeGreaterThanOrEqual(1);
    for (const e of examples) expect(e).toContain(`airlock ${cmd.join(' ')} `);
  });
});

describe('counts and words', () => {
  let tmp: TempDir;
  beforeAll(async () => {
    tmp = await makeTempDir('cli-words');
  });
  afterAll(async () => {
    await tmp?.remove();
  });

  it('a one-image bundle says "1 image", claims no dedup saving, and its counts match --json', async () => {
    const corpus = await writeCorpus(join(tmp.path, 'one'), { images: [{ name: 'example.com/app/one:v1', layers: [{ id: 'one', size: 4096 }] }] });
    const out = join(tmp.path, 'one.tar.zst');
    const made = await airlock(['bundle', 'create', `oci:${corpus.dir}:example.com/app/one:v1`, '-o', out, '--unsigned', '-q']);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/^ {2}1 image, 1 manifest, 2 blobs, /m);
    expect(made.stdout).not.toContain('saved');
    const verified = await airlock(['bundle', 'verify', out, '--allow-unsigned', '--json']);
    const json = JSON.parse(verified.stdout) as { contents: Contents };
    const text = await airlock(['bundle', 'verify', out, '--allow-unsigned', '-q']);
    expect(text.stdout).toContain(`  ${said(json.contents)}, `);
  });

  it('create, verify, inspect and import say the numbers --json gives, in one vocabulary, phase lines included', async () => {
    const upstream = join(tmp.path, 'demo-upstream');
    const made = await new Promise<number | null>((resolve) =>
      execFile(process.execPath, [fileURLToPath(new URL('../../samples/make-demo-layout.mjs', import.meta.url)), upstream], (err) =>
        resolve(err === null ? 0 : 1),
      ),
    );
    expect(made).toBe(0);
    const out = join(tmp.path, 'demo.tar.zst');
    const created = await airlock(['bundle', 'create', `oci:${upstream}`, '-o', out, '--unsigned']);
    expect(created.code, created.stderr).toBe(0);
    const createdJson = JSON.parse((await airlock(['bundle', 'inspect', out, '--json'])).stdout) as { contents: Contents; images: unknown[] };
    const c = createdJson.contents;
    expect(c.images).toBe(createdJson.images.length);
    // The layout holds manifests and blobs; bundle.json's totals count both as files under blobs/.
    expect(created.stdout).toMatch(new RegExp(`^  ${said(c)}, [0-9.]+ KiB of content`, 'm'));
    expect(created.stderr).toContain(`copying blobs: ${c.blobs} blobs, ${c.manifests} manifests (`);
    expect(created.stderr.match(/^ {2}stored /gm)).toHaveLength(c.images);
    // The summary table: a header and a row per image, digests cut to 12 hex digits.
    const rows = created.stdout.split('\n').filter((l) => /^ {2}\S+ {2,}linux\//.test(l));
    expect(rows).toHaveLength(c.images);
    for (const r of rows) expect(r).toMatch(/ sha256:[0-9a-f]{12}$/);
    const verified = await airlock(['bundle', 'verify', out, '--allow-unsigned']);
    expect(verified.stdout).toMatch(new RegExp(`^  ${said(c)}, [0-9.]+ KiB verified`, 'm'));
    expect(verified.stderr).toContain(`verifying: ${c.blobs} blobs, ${c.manifests} manifests (`);
    const inspected = await airlock(['bundle', 'inspect', out]);
    expect(inspected.stdout).toMatch(new RegExp(`^  ${said(c)}, [0-9.]+ KiB stored`, 'm'));

    const imported = await airlock([
      'bundle',
      'import',
      out,
      '--to',
      `oci:${join(tmp.path, 'imported')}`,
      '--allow-unsigned',
      '--log-format',
      'json',
      '--json',
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const report = JSON.parse(imported.stdout) as { blobs: { distinct: number }; manifests: number; images: Array<{ digest: string }> };
    expect(report.blobs.distinct).toBe(c.blobs);
    expect(report.manifests).toBe(c.manifests);
    const log = imported.stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; phase?: string; items?: number; detail?: string; action?: string });
    const pushing = log.find((e) => e.event === 'phase' && e.phase === 'pushing manifests')!;
    const byTag = Number(/^(\d+) more with their tags$/.exec(pushing.detail ?? '0 more with their tags')![1]);
    expect(pushing.items! + byTag).toBe(report.manifests);
    expect(log.filter((e) => e.event === 'image-done' && e.action === 'tagged')).toHaveLength(report.images.length);
    const text = await airlock(['bundle', 'import', out, '--to', `oci:${join(tmp.path, 'imported-again')}`, '--allow-unsigned']);
    expect(text.stdout).toContain(`  ${c.blobs} distinct blobs; per repository `);
    expect(text.stdout).toContain(`; ${c.manifests} manifests\n`);
    expect(text.stdout).not.toContain(report.images[0]!.digest);
    const wide = await airlock(['--wide', 'bundle', 'import', out, '--to', `oci:${join(tmp.path, 'imported-wide')}`, '--allow-unsigned']);
    expect(wide.stdout).toContain(report.images[0]!.digest);
  });
});

interface Contents {
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
}

/** `4 images, 6 manifests, 13 blobs`: how the text says a bundle's contents. */
function said(c: Contents): string {
  const n = (k: number, noun: string) => `${k} ${noun}${k === 1 ? '' : 's'}`;
  return `${n(c.images, 'image')}, ${n(c.manifests, 'manifest')}, ${n(c.blobs, 'blob')}`;
}
