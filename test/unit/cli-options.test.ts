import { describe, expect, it } from 'vitest';
import { parseChunkSize, parseConcurrency, parseCreds, parseTimeout } from '../../src/cli/registry-options.js';
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
