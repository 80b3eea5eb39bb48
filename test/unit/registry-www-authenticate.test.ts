import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate, pickChallenge } from '../../src/registry/www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it.each([
    [
      'Docker Hub bearer',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
    ],
    ['basic', 'Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['scheme case and param name case', 'BEARER Realm="r"', [{ scheme: 'bearer', params: { realm: 'r' } }]],
    [
      'comma inside a quoted scope',
      'Bearer realm="https://a/token",scope="repository:a/b:pull,push"',
      [{ scheme: 'bearer', params: { realm: 'https://a/token', scope: 'repository:a/b:pull,push' } }],
    ],
    ['escaped quote and backslash', 'Basic realm="say \\"hi\\" \\\\ bye"', [{ scheme: 'basic', params: { realm: 'say "hi" \\ bye' } }]],
    ['spaces around = and commas', 'Bearer realm = "https://a/t" ,  service = reg', [{ scheme: 'bearer', params: { realm: 'https://a/t', service: 'reg' } }]],
    [
      'two challenges in one header',
      'Bearer realm="https://a/t",service="s", Basic realm="b"',
      [
        { scheme: 'bearer', params: { realm: 'https://a/t', service: 's' } },
        { scheme: 'basic', params: { realm: 'b' } },
      ],
    ],
    [
      'a challenge without parameters between others',
      'Negotiate, Basic realm="x"',
      [
        { scheme: 'negotiate', params: {} },
        { scheme: 'basic', params: { realm: 'x' } },
      ],
    ],
    ['token68', 'Negotiate abc123==', [{ scheme: 'negotiate', params: {}, token68: 'abc123==' }]],
    [
      'insufficient_scope error',
      'Bearer realm="https://a/t",service="s",scope="repository:x:pull,push",error="insufficient_scope"',
      [{ scheme: 'bearer', params: { realm: 'https://a/t', service: 's', scope: 'repository:x:pull,push', error: 'insufficient_scope' } }],
    ],
    ['empty quoted value', 'Bearer realm=""', [{ scheme: 'bearer', params: { realm: '' } }]],
    ['empty header', '', []],
    ['only commas', ' , ,', []],
  ])('%s', (_name, header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });

  it('reads several header values in order', () => {
    expect(parseWwwAuthenticate(['Basic realm="a"', 'Bearer realm="b"']).map((c) => c.scheme)).toEqual(['basic', 'bearer']);
  });

  it('keeps what was parsed before a malformed tail', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://a/t", service="unterminated')).toEqual([{ scheme: 'bearer', params: { realm: 'https://a/t' } }]);
    expect(parseWwwAuthenticate('Basic realm="x", @@@')).toEqual([{ scheme: 'basic', params: { realm: 'x' } }]);
  });

  it('returns nothing for undefined', () => {
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });
});

describe('pickChallenge', () => {
  it('prefers bearer over basic and ignores other schemes', () => {
    const challenges = parseWwwAuthenticate('Negotiate, Basic realm="b", Bearer realm="t"');
    expect(pickChallenge(challenges)?.scheme).toBe('bearer');
    expect(pickChallenge(parseWwwAuthenticate('Negotiate, Basic realm="b"'))?.scheme).toBe('basic');
    expect(pickChallenge(parseWwwAuthenticate('Negotiate'))).toBeUndefined();
  });
});
