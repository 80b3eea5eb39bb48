/**
 * With --json, stdout holds exactly one JSON document for usage errors too (an unknown option, a
 * missing required option, an unknown command), wherever --json stands, with error.code USAGE and
 * exit 2; commander's own line stays on stderr. Every command's help lists the global options and
 * ends with examples.
 * Summary lines count in the words --json counts in, with correct plurals.
 */
import { join } from 'node:path';
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
    expect(made.stdout).toMatch(/^ {2}1 image, 3 blobs, /m);
    expect(made.stdout).not.toContain('saved');
    const verified = await airlock(['bundle', 'verify', out, '--allow-unsigned', '--json']);
    const json = JSON.parse(verified.stdout) as { images: number; blobs: number };
    const text = await airlock(['bundle', 'verify', out, '--allow-unsigned', '-q']);
    expect(text.stdout).toContain(`  ${json.images} image, ${json.blobs} blobs, `);
  });
});
