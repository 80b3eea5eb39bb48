/**
 * Which proxy, if any, a request to a registry goes through: `--proxy`, or `HTTPS_PROXY`,
 * `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` as curl and Go tools read them. Pure: no sockets here
 * (the dispatcher that uses the answer is `proxy-dispatcher.ts`).
 *
 * The rules, so that an operator's existing environment means what it means for curl and Go:
 * - The lower-case variable wins over the upper-case one (`https_proxy` over `HTTPS_PROXY`), as in
 *   curl; either is read, as in Go. `http_proxy` serves `http://` registries (`--plain-http`),
 *   `https_proxy` the others, `all_proxy` both when the specific one is unset.
 * - `NO_PROXY` is a comma- (or space-) separated list: `*` (no proxy at all), a host name (it and
 *   every subdomain), `.domain` or `*.domain` (the same), `host:port` (that port only), an IP
 *   address, an IPv6 address in brackets or bare, and a CIDR range (`10.0.0.0/8`, `fd00::/8`).
 *   Names are matched as written in the reference, never resolved (curl and Go do the same).
 * - Loopback (`localhost`, `127.0.0.0/8`, `::1`) is never proxied, as in Go: a proxy cannot reach
 *   the operator's own machine anyway.
 * - `--proxy URL` replaces the environment's proxies (`NO_PROXY` still applies); `--proxy ''`
 *   turns proxying off whatever the environment says, as `curl --proxy ''` does.
 */
import { isIP } from 'node:net';
import { AirlockError } from '../errors.js';

/** A parsed proxy: where to connect, and the credentials for `Proxy-Authorization`. */
export interface ProxyEndpoint {
  protocol: 'http:' | 'https:';
  /** Host name or IP (IPv6 without brackets). */
  hostname: string;
  port: number;
  username?: string;
  password?: string;
  /** `http://proxy.lan:3128`: the proxy as messages name it, never with its credentials. */
  display: string;
}

/** The proxy settings of a run. */
export interface ProxySettings {
  /** For `http://` registries. */
  http?: ProxyEndpoint;
  /** For `https://` registries (and token realms). */
  https?: ProxyEndpoint;
  /** The parsed `NO_PROXY`. */
  noProxy: NoProxy;
}

/**
 * Parse a proxy URL: `http://[user:password@]host[:port]`, `https://…`, or `host:port` (taken as
 * http, as curl does). The port defaults to 80 (http) or 443 (https), as in Go. `source` names
 * where the value came from (`--proxy`, `HTTPS_PROXY`) for the error; the value itself is never
 * repeated in one, since it may hold a password.
 */
export function parseProxyUrl(text: string, source: string): ProxyEndpoint {
  const raw = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new AirlockError('USAGE', `${source} is not a proxy URL`, { hint: 'write it as http://[USER:PASSWORD@]HOST:PORT, e.g. http://proxy.lan:3128' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AirlockError('UNSUPPORTED', `${source}: ${url.protocol.slice(0, -1)} proxies are not supported`, {
      hint: 'use an HTTP proxy (http://HOST:PORT) or an HTTPS one (https://HOST:PORT)',
    });
  }
  if (url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new AirlockError('USAGE', `${source} is not a proxy URL (it must be a scheme, a host and a port only)`, {
      hint: 'write it as http://[USER:PASSWORD@]HOST:PORT, e.g. http://proxy.lan:3128',
    });
  }
  const protocol = url.protocol;
  const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const username = url.username === '' ? undefined : decodeURIComponent(url.username);
  const password = url.password === '' ? undefined : decodeURIComponent(url.password);
  return {
    protocol,
    hostname,
    port,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    display: `${protocol}//${url.host}`,
  };
}

/** `Basic …` for the proxy's credentials, or undefined without them. */
export function proxyAuthorization(proxy: ProxyEndpoint): string | undefined {
  if (proxy.username === undefined && proxy.password === undefined) return undefined;
  return `Basic ${Buffer.from(`${proxy.username ?? ''}:${proxy.password ?? ''}`, 'utf8').toString('base64')}`;
}

type Env = Record<string, string | undefined>;

/** The lower-case variable, else the upper-case one; empty counts as unset. */
function fromEnv(env: Env, name: string): [string, string] | undefined {
  for (const key of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[key]?.trim();
    if (value !== undefined && value !== '') return [key, value];
  }
  return undefined;
}

/**
 * The proxy settings from `--proxy` (undefined: not given) and the environment.
 * @throws AirlockError USAGE for a proxy URL that does not parse (naming the variable, not the value)
 */
export function proxySettings(explicit: string | undefined, env: Env): ProxySettings {
  const noProxyText = fromEnv(env, 'no_proxy')?.[1] ?? '';
  const noProxy = parseNoProxy(noProxyText);
  if (explicit !== undefined) {
    if (explicit.trim() === '') return { noProxy };
    const proxy = parseProxyUrl(explicit, '--proxy');
    return { http: proxy, https: proxy, noProxy };
  }
  const pick = (name: string): ProxyEndpoint | undefined => {
    const found = fromEnv(env, name) ?? fromEnv(env, 'all_proxy');
    return found === undefined ? undefined : parseProxyUrl(found[1], found[0]);
  };
  const http = pick('http_proxy');
  const https = pick('https_proxy');
  return { ...(http === undefined ? {} : { http }), ...(https === undefined ? {} : { https }), noProxy };
}

/** One `NO_PROXY` entry. */
type NoProxyRule =
  | { kind: 'all' }
  | { kind: 'name'; name: string; port?: number }
  | { kind: 'ip'; bytes: number[]; port?: number }
  | { kind: 'cidr'; bytes: number[]; bits: number };

/** A parsed `NO_PROXY` list. */
export interface NoProxy {
  rules: readonly NoProxyRule[];
}

/** An IPv4 or IPv6 address as bytes (IPv4 as 4, IPv6 as 16; an IPv4-mapped IPv6 as its IPv4). */
function ipBytes(text: string): number[] | undefined {
  const kind = isIP(text);
  if (kind === 4) return text.split('.').map(Number);
  if (kind !== 6) return undefined;
  let s = text.toLowerCase();
  // A trailing dotted quad (::ffff:10.0.0.1) becomes two hex groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s)?.[1];
  if (quad !== undefined) {
    const [a, b, c, d] = quad.split('.').map(Number) as [number, number, number, number];
    s = `${s.slice(0, -quad.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = s.split('::') as [string, string | undefined];
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const bytes = all.flatMap((g) => [g >> 8, g & 0xff]);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

/** `host`, `host:port`, `[v6]:port`, bare `v6`: the host and the port, if any. */
function splitHostPort(text: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed !== null) return { host: bracketed[1] as string, ...(bracketed[2] === undefined ? {} : { port: Number(bracketed[2]) }) };
  if (isIP(text) === 6) return { host: text };
  const m = /^(.*):(\d+)$/.exec(text);
  return m === null ? { host: text } : { host: m[1] as string, port: Number(m[2]) };
}

/** Parse a `NO_PROXY` value; entries that mean nothing (empty, a bad CIDR) are skipped, as curl and Go do. */
export function parseNoProxy(text: string): NoProxy {
  const rules: NoProxyRule[] = [];
  for (const raw of text.split(/[,\s]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') {
      rules.push({ kind: 'all' });
      continue;
    }
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
    if (cidr !== null) {
      const bytes = ipBytes((cidr[1] as string).replace(/^\[(.*)\]$/, '$1'));
      const bits = Number(cidr[2]);
      // An IPv4-mapped prefix (::ffff:10.0.0.0/104) counts in IPv4 bits.
      const width = bytes === undefined ? 0 : bytes.length * 8;
      const adjusted = bytes !== undefined && bytes.length === 4 && isIP((cidr[1] as string).replace(/^\[(.*)\]$/, '$1')) === 6 ? bits - 96 : bits;
      if (bytes !== undefined && adjusted >= 0 && adjusted <= width) rules.push({ kind: 'cidr', bytes, bits: adjusted });
      continue;
    }
    const { host, port } = splitHostPort(entry);
    const bytes = ipBytes(host);
    if (bytes !== undefined) {
      rules.push({ kind: 'ip', bytes, ...(port === undefined ? {} : { port }) });
      continue;
    }
    const name = host.replace(/^\*?\./, '').replace(/\.$/, '');
    if (name !== '') rules.push({ kind: 'name', name, ...(port === undefined ? {} : { port }) });
  }
  return { rules };
}

function inRange(ip: number[], net: number[], bits: number): boolean {
  if (ip.length !== net.length) return false;
  for (let i = 0; i < bits; i += 8) {
    const take = Math.min(8, bits - i);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((ip[i / 8] as number) & mask) !== ((net[i / 8] as number) & mask)) return false;
  }
  return true;
}

function isLoopback(host: string, ip: number[] | undefined): boolean {
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (ip === undefined) return false;
  return ip.length === 4 ? ip[0] === 127 : ip.every((b, i) => b === (i === 15 ? 1 : 0));
}

/**
 * Whether a request to `hostname:port` goes straight to the server rather than through the proxy.
 * @param hostname as in the URL (IPv6 with or without brackets), any case
 * @param port the effective port (443 or 80 when the URL has none)
 */
export function bypassesProxy(noProxy: NoProxy, hostname: string, port: number): boolean {
  const host = hostname
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
  const ip = ipBytes(host);
  if (isLoopback(host, ip)) return true;
  for (const rule of noProxy.rules) {
    switch (rule.kind) {
      case 'all':
        return true;
      case 'cidr':
        if (ip !== undefined && inRange(ip, rule.bytes, rule.bits)) return true;
        break;
      case 'ip':
        if (ip !== undefined && (rule.port === undefined || rule.port === port) && inRange(ip, rule.bytes, rule.bytes.length * 8)) return true;
        break;
      case 'name':
        if ((rule.port === undefined || rule.port === port) && (host === rule.name || host.endsWith(`.${rule.name}`))) return true;
        break;
    }
  }
  return false;
}

/** The proxy for a request to `origin`, or undefined to go direct. */
export function proxyFor(settings: ProxySettings, origin: URL): ProxyEndpoint | undefined {
  const proxy = origin.protocol === 'http:' ? settings.http : settings.https;
  if (proxy === undefined) return undefined;
  const port = origin.port === '' ? (origin.protocol === 'http:' ? 80 : 443) : Number(origin.port);
  return bypassesProxy(settings.noProxy, origin.hostname, port) ? undefined : proxy;
}
