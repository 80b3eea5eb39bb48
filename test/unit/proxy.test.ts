import { describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.js';
import { bypassesProxy, parseNoProxy, parseProxyUrl, proxyAuthorization, proxyFor, proxySettings } from '../../src/registry/proxy.js';

const bypass = (noProxy: string, host: string, port = 443): boolean => bypassesProxy(parseNoProxy(noProxy), host, port);

describe('parseProxyUrl', () => {
  it('reads scheme, host, port and credentials, and names the proxy without them', () => {
    expect(parseProxyUrl('http://user:p%40ss@proxy.lan:3128', '--proxy')).toEqual({
      protocol: 'http:',
      hostname: 'proxy.lan',
      port: 3128,
      username: 'user',
      password: 'p@ss',
      display: 'http://proxy.lan:3128',
    });
  });

  it('defaults the scheme to http and the port to 80 or 443, as curl and Go do', () => {
    expect(parseProxyUrl('proxy.lan:3128', 'HTTPS_PROXY')).toMatchObject({ protocol: 'http:', port: 3128, display: 'http://proxy.lan:3128' });
    expect(parseProxyUrl('http://proxy.lan', 'x')).toMatchObject({ port: 80 });
    expect(parseProxyUrl('https://proxy.lan', 'x')).toMatchObject({ protocol: 'https:', port: 443 });
    expect(parseProxyUrl('http://proxy.lan:3128/', 'x')).toMatchObject({ port: 3128 });
  });

  it('takes IPv6 proxies', () => {
    expect(parseProxyUrl('http://[fd00::1]:3128', 'x')).toMatchObject({ hostname: 'fd00::1', port: 3128, display: 'http://[fd00::1]:3128' });
  });

  it('refuses other schemes and URLs with paths, without repeating the value', () => {
    const refused = (text: string): AirlockError => {
      try {
        parseProxyUrl(text, 'HTTPS_PROXY');
      } catch (err) {
        return err as AirlockError;
      }
      throw new Error(`accepted ${text}`);
    };
    const socks = refused('socks5://u:secret1@h:1080');
    expect(socks.code).toBe('UNSUPPORTED');
    expect(socks.message).toBe('HTTPS_PROXY: socks5 proxies are not supported');
    const path = refused('http://u:secret2@h:3128/path');
    expect(path.code).toBe('USAGE');
    expect(path.message).not.toContain('secret2');
    expect(refused('http://').code).toBe('USAGE');
  });

  it('builds Proxy-Authorization only with credentials', () => {
    expect(proxyAuthorization(parseProxyUrl('http://u:p@h:1', 'x'))).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    expect(proxyAuthorization(parseProxyUrl('http://h:1', 'x'))).toBeUndefined();
  });
});

describe('proxySettings', () => {
  it('reads both cases; the lower-case variable wins, as in curl', () => {
    const s = proxySettings(undefined, { HTTPS_PROXY: 'http://upper:1', https_proxy: 'http://lower:2', HTTP_PROXY: 'http://plain:3' });
    expect(s.https?.hostname).toBe('lower');
    expect(s.http?.hostname).toBe('plain');
  });

  it('uses ALL_PROXY when the specific variable is unset; empty counts as unset', () => {
    const s = proxySettings(undefined, { https_proxy: '', ALL_PROXY: 'http://all:1' });
    expect(s.https?.hostname).toBe('all');
    expect(s.http?.hostname).toBe('all');
    expect(proxySettings(undefined, { HTTPS_PROXY: '  ' }).https).toBeUndefined();
  });

  it('lets --proxy replace the environment for both schemes, and --proxy "" turn it off', () => {
    const env = { HTTPS_PROXY: 'http://env:1', NO_PROXY: 'lan' };
    const s = proxySettings('http://flag:2', env);
    expect([s.http?.hostname, s.https?.hostname]).toEqual(['flag', 'flag']);
    expect(s.noProxy.rules.length).toBe(1);
    const off = proxySettings('', env);
    expect(off.http).toBeUndefined();
    expect(off.https).toBeUndefined();
  });

  it('routes by scheme and NO_PROXY', () => {
    const s = proxySettings(undefined, { https_proxy: 'http://s:1', http_proxy: 'http://p:2', no_proxy: 'internal.lan' });
    expect(proxyFor(s, new URL('https://quay.io'))?.hostname).toBe('s');
    expect(proxyFor(s, new URL('http://reg.example:5000'))?.hostname).toBe('p');
    expect(proxyFor(s, new URL('https://reg.internal.lan'))).toBeUndefined();
    expect(proxyFor(proxySettings(undefined, { https_proxy: 'http://s:1' }), new URL('http://reg.example'))).toBeUndefined();
  });
});

describe('NO_PROXY matching', () => {
  it('matches a name and its subdomains, not look-alikes', () => {
    expect(bypass('example.com', 'example.com')).toBe(true);
    expect(bypass('example.com', 'reg.example.com')).toBe(true);
    expect(bypass('example.com', 'badexample.com')).toBe(false);
    expect(bypass('example.com', 'example.com.evil')).toBe(false);
  });

  it('treats .domain and *.domain like domain (curl)', () => {
    for (const entry of ['.example.com', '*.example.com']) {
      expect(bypass(entry, 'example.com')).toBe(true);
      expect(bypass(entry, 'a.b.example.com')).toBe(true);
      expect(bypass(entry, 'otherexample.com')).toBe(false);
    }
  });

  it('is case-insensitive and ignores a trailing dot', () => {
    expect(bypass('Example.COM', 'REG.example.com.')).toBe(true);
  });

  it('honours host:port against the effective port', () => {
    expect(bypass('reg.lan:5000', 'reg.lan', 5000)).toBe(true);
    expect(bypass('reg.lan:5000', 'reg.lan', 443)).toBe(false);
    expect(bypass('reg.lan:443', 'reg.lan', 443)).toBe(true);
  });

  it('matches * as everything', () => {
    expect(bypass('*', 'anything.example')).toBe(true);
    expect(bypass('a.lan, *', 'quay.io')).toBe(true);
  });

  it('matches IP addresses, with or without a port', () => {
    expect(bypass('192.168.1.10', '192.168.1.10')).toBe(true);
    expect(bypass('192.168.1.10', '192.168.1.11')).toBe(false);
    expect(bypass('192.168.1.10:5000', '192.168.1.10', 5000)).toBe(true);
    expect(bypass('192.168.1.10:5000', '192.168.1.10', 443)).toBe(false);
    expect(bypass('fd00::10', '[fd00::10]')).toBe(true);
    expect(bypass('[fd00::10]:5000', '[fd00:0::10]', 5000)).toBe(true);
    expect(bypass('[fd00::10]:5000', 'fd00::10', 443)).toBe(false);
  });

  it('matches CIDR ranges, IPv4 and IPv6, never a name', () => {
    expect(bypass('10.0.0.0/8', '10.200.3.4')).toBe(true);
    expect(bypass('10.0.0.0/8', '11.0.0.1')).toBe(false);
    expect(bypass('172.16.0.0/12', '172.31.255.255')).toBe(true);
    expect(bypass('172.16.0.0/12', '172.32.0.0')).toBe(false);
    expect(bypass('192.168.1.0/25', '192.168.1.127')).toBe(true);
    expect(bypass('192.168.1.0/25', '192.168.1.128')).toBe(false);
    expect(bypass('0.0.0.0/0', '8.8.8.8')).toBe(true);
    expect(bypass('fd00::/8', '[fd12:3456::1]')).toBe(true);
    expect(bypass('fd00::/8', '[fe80::1]')).toBe(false);
    expect(bypass('2001:db8::/32', '2001:db8:ffff::1')).toBe(true);
    expect(bypass('10.0.0.0/8', 'ten.example')).toBe(false);
    expect(bypass('10.0.0.0/8', 'fd00::1')).toBe(false);
  });

  it('matches an IPv4-mapped IPv6 address as its IPv4', () => {
    expect(bypass('10.0.0.0/8', '[::ffff:10.1.2.3]')).toBe(true);
    expect(bypass('10.1.2.3', '::ffff:a01:203')).toBe(true);
  });

  it('never proxies loopback, as Go does', () => {
    expect(bypass('', 'localhost')).toBe(true);
    expect(bypass('', '127.0.0.1', 5000)).toBe(true);
    expect(bypass('', '127.1.2.3')).toBe(true);
    expect(bypass('', '[::1]')).toBe(true);
    expect(bypass('', 'registry.lan')).toBe(false);
  });

  it('splits on commas and spaces and skips what means nothing', () => {
    const parsed = parseNoProxy(' a.lan , ,b.lan  c.lan,10.0.0.0/40,bad::/200,.');
    expect(parsed.rules.map((r) => r.kind)).toEqual(['name', 'name', 'name']);
    expect(bypass('', 'a.lan')).toBe(false);
  });
});
