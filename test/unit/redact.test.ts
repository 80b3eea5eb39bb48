import { afterEach, describe, expect, it } from 'vitest';
import { cleanText, cleanValue, forgetSecretsForTests, redactSecrets, registerCredentials, registerSecret, stripControls } from '../../src/redact.js';

afterEach(() => forgetSecretsForTests());

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('stripControls', () => {
  it.each([
    ['SGR colour', '\x1b[31mred\x1b[0m tag', 'red tag'],
    ['cursor movement and erase', 'a\x1b[2K\x1b[1A\x1b[10;20Hb', 'ab'],
    ['private-mode CSI', 'x\x1b[?25ly', 'xy'],
    ['OSC title ended by BEL', '\x1b]0;owned\x07ok', 'ok'],
    ['OSC 8 hyperlink ended by ST', '\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\', 'click'],
    ['8-bit CSI', 'a\u009b31mb', 'ab'],
    ['8-bit OSC ended by 8-bit ST', 'a\u009d0;t\u009cb', 'ab'],
    ['charset escape', 'a\x1b(Bb', 'ab'],
    ['lone ESC at the end', 'abc\x1b', 'abc'],
    ['CR overwriting the line', 'ok\rFAKE', 'ok FAKE'],
    ['backspaces and BEL', 'pass\b\b\b\bfail\x07', 'passfail'],
    ['NUL and DEL', 'a\x00b\x7fc', 'abc'],
    ['other C1 controls', 'a\u0085b\u008dc', 'abc'],
    ['bidi override', 'tag\u202egpj.exe', 'taggpj.exe'],
    ['bidi isolates and marks', '\u2066a\u2069\u200eb\u200f\u061c', 'ab'],
    ['newlines and tabs', 'one\ntwo\tthree\r\nfour\u2028five', 'one two three  four five'],
  ])('removes %s', (_what, input, expected) => {
    expect(stripControls(input)).toBe(expected);
  });

  it('keeps printable ASCII and other Unicode untouched', () => {
    const text = 'quay.io/coreos/etcd:v3.5.0 — größe 10 MiB ✓ 日本';
    expect(stripControls(text)).toBe(text);
  });

  it('keeps newlines when asked (stack traces), still removing escapes', () => {
    expect(stripControls('Error: x\n    at \x1b[1mf\x1b[0m (a.js:1)\r\n', { keepNewlines: true })).toBe('Error: x\n    at f (a.js:1)\n');
  });
});

describe('redactSecrets', () => {
  it('leaves text alone while nothing is registered', () => {
    expect(redactSecrets('password hunter22')).toBe('password hunter22');
  });

  it('replaces a password, base64(user:password) and the Basic header', () => {
    registerCredentials({ username: 'alice', password: 'Tr0ub4dor&3', source: '--creds' } as never);
    const basic = b64('alice:Tr0ub4dor&3');
    const echoed = `unauthorized: Authorization: Basic ${basic} (user alice, password Tr0ub4dor&3)`;
    const out = redactSecrets(echoed);
    expect(out).not.toContain('Tr0ub4dor&3');
    expect(out).not.toContain(basic);
    expect(out).toBe('unauthorized: Authorization: Basic *** (user alice, password ***)');
  });

  it('replaces the password in base64 at any alignment inside other base64 text', () => {
    registerSecret('correct horse battery');
    for (const prefix of ['', 'x', 'xy', 'user:', 'someone-else:']) {
      const encoded = b64(`${prefix}correct horse battery and more`);
      const out = redactSecrets(`echo ${encoded}`);
      expect(out, prefix).toContain('***');
      // What is left cannot be decoded back to the password.
      expect(Buffer.from(out.replace('echo ', '').replace('***', ''), 'base64').toString('latin1')).not.toContain('horse');
    }
  });

  it('replaces base64url, percent-encoded and JSON-escaped forms', () => {
    registerSecret('p@ss/wo"rd?>>');
    expect(redactSecrets(Buffer.from('p@ss/wo"rd?>>').toString('base64url'))).toBe('***');
    expect(redactSecrets(`q=${encodeURIComponent('p@ss/wo"rd?>>')}`)).toBe('q=***');
    expect(redactSecrets(JSON.stringify({ said: 'p@ss/wo"rd?>>' }))).toBe('{"said":"***"}');
  });

  it('replaces a bearer token and, for a JWT, its signature alone', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg';
    registerSecret(jwt);
    expect(redactSecrets(`Bearer ${jwt}`)).toBe('Bearer ***');
    expect(redactSecrets('sig c2lnbmF0dXJlLW9mLXRoZS10b2tlbg seen')).toBe('sig *** seen');
  });

  it('ignores secrets too short to redact without destroying messages', () => {
    registerSecret('abc');
    registerCredentials({ username: 'u', password: 'p' });
    expect(redactSecrets('abc p u')).toBe('abc p u');
  });

  it('finds a secret split by an injected escape sequence once controls are stripped', () => {
    registerSecret('hunter22secret');
    expect(cleanText('pw hunter\x1b[0m22secret')).toBe('pw ***');
  });
});

describe('cleanValue', () => {
  it('cleans every string of a nested value, keys included', () => {
    registerSecret('s3cr3t-value');
    const v = cleanValue({ a: ['ok', '\x1b[31ms3cr3t-value'], ['\x1b[1mk']: { n: 1, b: true, z: null } });
    expect(v).toEqual({ a: ['ok', '***'], k: { n: 1, b: true, z: null } });
  });

  it('bounds the depth it walks', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(JSON.stringify(cleanValue(deep))).toContain('…');
  });
});
