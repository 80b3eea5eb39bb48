/**
 * With --json, stdout holds exactly one JSON document for usage errors too (an unknown option, a
 * missing required option, an unknown command), wherever --json stands, with error.code USAGE and
 * exit 2; commander's own line stays on stderr. Every command's help lists the global options.
 */
import { describe, expect, it } from 'vitest';
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

  it.each([['bundle', 'create'], ['bundle', 'import'], ['copy'], ['inventory']])('%j --help lists the global options', async (...cmd) => {
    const r = await airlock([...cmd, '--help']);
    expect(r.code).toBe(0);
    const global = r.stdout.slice(r.stdout.indexOf('Global Options:'));
    expect(r.stdout).toContain('Global Options:');
    for (const flag of ['--json', '--quiet', '--debug']) expect(global).toContain(flag);
  });
});
