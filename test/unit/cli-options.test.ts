import { Readable } from 'node:stream';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addRegistryOptions, bindPerHostFlags, EVERY_REGISTRY, perHostSetting } from '../../src/cli/registry-options.js';
import { credsByHost, MAX_STDIN_PASSWORD_BYTES, parseCreds, readStdinPassword } from '../../src/cli/creds-flags.js';
import { parseChunkSize, parseConcurrency, parseTimeout } from '../../src/cli/flag-values.js';
import { isAirlockError } from '../../src/errors.js';

describe('parseCreds', () => {
  it.each([
    ['user:pass', { username: 'user', password: 'pass' }],
    ['user:pa:ss=word', { username: 'user', password: 'pa:ss=word' }],
    ['registry.lan=mirror:s3cret', { host: 'registry.lan', username: 'mirror', password: 's3cret' }],
    ['127.0.0.1:5000=mirror:s3cret', { host: '127.0.0.1:5000', username: 'mirror', password: 's3cret' }],
    ['[::1]:5000=a:b', { host: '[::1]:5000', username: 'a', password: 'b' }],
    ['Registry.LAN=a:b=c', { host: 'registry.lan', username: 'a', password: 'b=c' }],
  ])('%s', (text, expected) => {
    expect(parseCreds(text)).toEqual(expected);
  });

  it.each(['user', ':pass', 'host=user', ''])('rejects %j', (text) => {
    let err: unknown;
    try {
      parseCreds(text);
    } catch (e) {
      err = e;
    }
    expect(isAirlockError(err, 'USAGE')).toBe(true);
    expect(String((err as Error).message)).not.toContain(text === '' ? '\u0000' : 'pass');
  });
});

describe('credsByHost', () => {
  const usage = (texts: string[], hosts: string[]): Error => {
    try {
      credsByHost(texts, hosts);
    } catch (e) {
      expect(isAirlockError(e, 'USAGE')).toBe(true);
      return e as Error;
    }
    throw new Error('expected a usage error');
  };

  it('gives bare credentials to the one registry the run involves (named any number of times)', () => {
    const m = credsByHost(['u:p4ss'], ['quay.io', 'Quay.io', 'quay.io']);
    expect([...m.entries()]).toEqual([['quay.io', { username: 'u', password: 'p4ss' }]]);
  });

  it('refuses bare credentials when two registries are involved, naming both and the HOST= form', () => {
    const err = usage(['u:p4ss'], ['quay.io', '127.0.0.1:5000', 'quay.io']);
    expect(err.message).toBe('--creds without HOST= needs exactly one registry in the run; registries involved: 2: quay.io, 127.0.0.1:5000');
    expect((err as { hint?: string }).hint).toContain('--creds HOST=USER:PASSWORD');
    expect(err.message).not.toContain('p4ss');
  });

  it('refuses bare credentials when no registry is involved', () => {
    expect(usage(['u:p4ss'], []).message).toContain('registries involved: none');
  });

  it('refuses two bare credentials even for one registry', () => {
    expect(usage(['u:p4ss', 'v:other'], ['quay.io']).message).toBe('--creds without HOST= is given 2 times');
  });

  it('keeps HOST= credentials to their host, and lets them win over a bare one', () => {
    const m = credsByHost(['quay.io=q:qpass', 'b:bpass'], ['quay.io']);
    expect(m.get('quay.io')).toEqual({ host: 'quay.io', username: 'q', password: 'qpass' });
    const two = credsByHost(['quay.io=q:qpass', 'ghcr.io=g:gpass'], ['quay.io', 'ghcr.io', 'docker.io']);
    expect([...two.keys()].sort()).toEqual(['ghcr.io', 'quay.io']);
    expect(two.get('docker.io')).toBeUndefined();
  });
});

describe('parseConcurrency', () => {
  it('defaults and bounds', () => {
    expect(parseConcurrency(undefined)).toBe(4);
    expect(parseConcurrency('2')).toBe(2);
    expect(() => parseConcurrency('0')).toThrow(/1 to 64/);
    expect(() => parseConcurrency('x')).toThrow(/1 to 64/);
  });
});

describe('parseChunkSize', () => {
  it('is MiB, absent by default, and bounded', () => {
    expect(parseChunkSize(undefined)).toBeUndefined();
    expect(parseChunkSize('64')).toBe(64 * 1024 * 1024);
    expect(() => parseChunkSize('0')).toThrow(/whole number of MiB/);
    expect(() => parseChunkSize('1.5')).toThrow(/whole number of MiB/);
    expect(() => parseChunkSize('lots')).toThrow(/whole number of MiB/);
  });
});

describe('parseTimeout', () => {
  it.each([
    ['90', 90_000],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1.5s', 1_500],
    ['500ms', 500],
    ['1h', 3_600_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseTimeout(text)).toBe(ms);
  });
  it('is absent by default', () => {
    expect(parseTimeout(undefined)).toBeUndefined();
  });
  it.each(['0', '50ms', '2h', 'soon', '-1s', '1 d'])('refuses %j', (text) => {
    expect(() => parseTimeout(text)).toThrow(/--timeout .*100ms to 1h/);
  });
});

/** A program shaped like airlock's (global flags, a leaf command with the registry flags). */
function parseCreate(args: string[]): { refs: string[]; flags: Record<string, unknown> } {
  let got: { refs: string[]; flags: Record<string, unknown> } | undefined;
  const program = new Command('airlock').option('--json', 'json', false).exitOverride();
  const create = program
    .command('create')
    .argument('[refs...]')
    .option('-o, --output <file>')
    .exitOverride()
    .action((refs: string[], flags: Record<string, unknown>) => {
      got = { refs, flags };
    });
  addRegistryOptions(create);
  program.parse(['create', ...args], { from: 'user' });
  if (got === undefined) throw new Error('no action');
  return got;
}

describe('--plain-http and --insecure-skip-tls-verify: only =HOST binds a host', () => {
  it('never takes the next argument: an image after the bare flag stays an image', () => {
    const { refs, flags } = parseCreate(['--plain-http', 'quay.io/x:1', '-o', 'out']);
    expect(refs).toEqual(['quay.io/x:1']);
    expect(flags.plainHttp).toEqual([EVERY_REGISTRY]);
    expect(flags.output).toBe('out');
  });

  it('keeps host-shaped arguments and file names after the bare flag as operands', () => {
    for (const next of ['busybox:1', 'registry.lan:5000', 'b.tar.zst', 'localhost']) {
      const { refs, flags } = parseCreate(['--insecure-skip-tls-verify', next]);
      expect(refs).toEqual([next]);
      expect(flags.insecureSkipTlsVerify).toEqual([EVERY_REGISTRY]);
    }
  });

  it('binds HOST with =, repeatable, next to other images', () => {
    const { refs, flags } = parseCreate([
      '--plain-http=127.0.0.1:5000',
      'a.lan/x:1',
      '--plain-http=reg.lan',
      '--insecure-skip-tls-verify=b.lan:8443',
      'b.lan:8443/y',
    ]);
    expect(refs).toEqual(['a.lan/x:1', 'b.lan:8443/y']);
    expect(flags.plainHttp).toEqual(['127.0.0.1:5000', 'reg.lan']);
    expect(flags.insecureSkipTlsVerify).toEqual(['b.lan:8443']);
  });

  it('takes the bare flag anywhere, and leaves it alone after --', () => {
    expect(parseCreate(['img', '--plain-http']).flags.plainHttp).toEqual([EVERY_REGISTRY]);
    const after = parseCreate(['img', '--', '--plain-http']);
    expect(after.refs).toEqual(['img', '--plain-http']);
    expect(after.flags.plainHttp).toBeUndefined();
  });

  it('is absent when not given', () => {
    const { flags } = parseCreate(['img']);
    expect(flags.plainHttp).toBeUndefined();
    expect(flags.insecureSkipTlsVerify).toBeUndefined();
  });

  it('shows the = form in help', () => {
    const create = addRegistryOptions(new Command('create'));
    const help = create.helpInformation();
    expect(help).toContain('--plain-http[=HOST]');
    expect(help).toContain('--insecure-skip-tls-verify[=HOST]');
  });

  it('bindPerHostFlags rewrites only the bare flags before --', () => {
    expect(bindPerHostFlags(['--plain-http', 'x', '--plain-http=h', '--', '--plain-http'])).toEqual([
      '--plain-http=*',
      'x',
      '--plain-http=h',
      '--',
      '--plain-http',
    ]);
  });
});

describe('perHostSetting', () => {
  const hosts = ['127.0.0.1:5000', 'Quay.io'];
  it('is every registry for true or the bare flag, else the named hosts', () => {
    expect(perHostSetting('--plain-http', undefined, hosts)).toEqual({ every: false, hosts: new Set() });
    expect(perHostSetting('--plain-http', true, hosts)).toEqual({ every: true, hosts: new Set() });
    expect(perHostSetting('--plain-http', ['*'], hosts)).toEqual({ every: true, hosts: new Set() });
    expect(perHostSetting('--plain-http', ['127.0.0.1:5000', 'QUAY.IO'], hosts)).toEqual({ every: false, hosts: new Set(['127.0.0.1:5000', 'quay.io']) });
  });

  it('refuses a host the run does not involve (a typo would silently mean TLS), and a non-host', () => {
    expect(() => perHostSetting('--plain-http', ['127.0.0.1:5001'], hosts)).toThrow(
      '--plain-http=127.0.0.1:5001: no registry of the run is 127.0.0.1:5001 (registries involved: 127.0.0.1:5000, quay.io)',
    );
    expect(() => perHostSetting('--insecure-skip-tls-verify', ['quay.io/coreos'], hosts)).toThrow(
      '--insecure-skip-tls-verify=quay.io/coreos: not a registry host',
    );
  });
});

describe('--password-stdin', () => {
  it('is the password of the one --creds given without one (USER, HOST=USER, HOST:PORT=USER)', () => {
    expect([...credsByHost(['u'], ['quay.io'], 'p4ss').entries()]).toEqual([['quay.io', { username: 'u', password: 'p4ss' }]]);
    expect([...credsByHost(['127.0.0.1:5000=u', 'quay.io=v:w'], ['quay.io', '127.0.0.1:5000'], 'p4ss').entries()]).toEqual([
      ['127.0.0.1:5000', { host: '127.0.0.1:5000', username: 'u', password: 'p4ss' }],
      ['quay.io', { host: 'quay.io', username: 'v', password: 'w' }],
    ]);
  });

  it('needs exactly one --creds without a password', () => {
    expect(() => credsByHost(['u:p'], ['quay.io'], 'p4ss')).toThrow(
      '--password-stdin is the password of one --creds USER (or HOST=USER); 0 are given without a password',
    );
    expect(() => credsByHost(['a.lan=u', 'b.lan=v'], ['a.lan', 'b.lan'], 'p4ss')).toThrow('2 are given without a password');
    // Without --password-stdin, USER alone stays a usage error (and HOST:PORT=USER... is USER:PASSWORD).
    expect(() => credsByHost(['u'], ['quay.io'])).toThrow('--creds must be USER:PASSWORD or HOST=USER:PASSWORD');
    expect(parseCreds('user:1=x')).toEqual({ username: 'user', password: '1=x' });
  });

  it('reads all of stdin less one line end, and refuses a terminal, nothing, and a flood', async () => {
    expect(await readStdinPassword(Readable.from([Buffer.from('s3cr'), Buffer.from('et:=\n')]))).toBe('s3cret:=');
    expect(await readStdinPassword(Readable.from([Buffer.from('two\nlines\r\n')]))).toBe('two\nlines');
    const tty = Object.assign(Readable.from([]), { isTTY: true });
    await expect(readStdinPassword(tty)).rejects.toThrow('--password-stdin reads the password from a pipe or a file, and stdin is a terminal');
    await expect(readStdinPassword(Readable.from([]))).rejects.toThrow('--password-stdin: stdin is empty');
    await expect(readStdinPassword(Readable.from([Buffer.alloc(MAX_STDIN_PASSWORD_BYTES + 1, 0x61)]))).rejects.toMatchObject({ code: 'USAGE' });
  });
});
