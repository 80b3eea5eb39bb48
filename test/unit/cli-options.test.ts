import { describe, expect, it } from 'vitest';
import { credsByHost, parseChunkSize, parseConcurrency, parseCreds } from '../../src/cli/registry-options.js';
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
