/**
 * A small forward proxy of the tests' own, as a company's HTTP proxy behaves: `CONNECT host:port`
 * tunnels (for HTTPS registries) and absolute-form requests (`GET http://host:port/v2/ HTTP/1.1`,
 * for plain-HTTP ones), an optional `Proxy-Authorization` check (407 without it), and a log of
 * what it was asked. Only 127.0.0.1 is reachable on a test machine, so the proxy resolves names
 * itself from `hosts` (e.g. `registry.airlock.test` -> 127.0.0.1): a registry under such a name is
 * reachable through the proxy and nowhere else. A name it does not know gets 502, as squid answers
 * a name its DNS does not resolve.
 */
import { readFile } from 'node:fs/promises';
import { request as httpRequest, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type Socket } from 'node:net';
import { isIP } from 'node:net';
import { listenLocal, type Listening } from './listen.js';
import { testPki } from './registry.js';

export interface ProxyLogEntry {
  /** `CONNECT` or the method of a forwarded request. */
  method: string;
  /** `host:port` of a CONNECT, the absolute URL of a forwarded request. */
  target: string;
  /** The `Proxy-Authorization` header as received, if any. */
  authorization?: string;
  /** What the proxy answered (200 for a tunnel it opened). */
  status: number;
}

export interface TestProxy extends Listening {
  /** `http://127.0.0.1:PORT` or `https://…` (without credentials). */
  url: string;
  /** Everything asked of the proxy so far. */
  log: ProxyLogEntry[];
}

export interface TestProxyOptions {
  /** Names the proxy resolves itself: name -> IP (lower case, without port). */
  hosts?: Record<string, string>;
  /** Require `Proxy-Authorization: Basic base64(user:password)`. */
  auth?: { username: string; password: string };
  /** Targets (`host:port`) refused with 403, as a proxy's ACL does. */
  deny?: (target: string) => boolean;
  /** Speak TLS to clients (an `https://` proxy), with the test PKI's server certificate. */
  tls?: boolean;
}

/** Start the proxy on 127.0.0.1. */
export async function startTestProxy(opts: TestProxyOptions = {}): Promise<TestProxy> {
  const log: ProxyLogEntry[] = [];
  const expected = opts.auth === undefined ? undefined : `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`;
  const resolve = (host: string): string | undefined => {
    const name = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (isIP(name) !== 0) return name;
    return opts.hosts?.[name];
  };
  /** The status that refuses this request, or undefined to serve it. */
  const refusal = (req: IncomingMessage, target: string): number | undefined => {
    if (expected !== undefined && req.headers['proxy-authorization'] !== expected) return 407;
    if (opts.deny?.(target) === true) return 403;
    return undefined;
  };
  const entry = (req: IncomingMessage, target: string, status: number): void => {
    const authorization = req.headers['proxy-authorization'];
    log.push({ method: req.method ?? '', target, status, ...(authorization === undefined ? {} : { authorization }) });
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      entry(req, req.url ?? '', 400);
      res.writeHead(400).end('absolute-form requests only\n');
      return;
    }
    const target = url.host;
    const refused = refusal(req, target);
    const ip = resolve(url.hostname);
    const status = refused ?? (ip === undefined ? 502 : 0);
    entry(req, url.href, status === 0 ? 200 : status);
    if (status !== 0) {
      res.writeHead(status, status === 407 ? { 'proxy-authenticate': 'Basic realm="test proxy"' } : {}).end(`proxy refused: ${status}\n`);
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = httpRequest(
      { host: ip, port: url.port === '' ? 80 : Number(url.port), method: req.method, path: `${url.pathname}${url.search}`, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const pki = opts.tls === true ? await testPki() : undefined;
  const server =
    pki === undefined ? createServer(handler) : createHttpsServer({ key: await readFile(pki.keyFile), cert: await readFile(pki.certFile) }, handler);

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target);
    const refused = refusal(req, target);
    const ip = m === null ? undefined : resolve(m[1] as string);
    const status = refused ?? (ip === undefined ? 502 : 0);
    client.on('error', () => client.destroy());
    if (status !== 0) {
      entry(req, target, status);
      const reason = status === 407 ? 'Proxy Authentication Required' : status === 403 ? 'Forbidden' : 'Bad Gateway';
      client.end(`HTTP/1.1 ${status} ${reason}\r\n${status === 407 ? 'Proxy-Authenticate: Basic realm="test proxy"\r\n' : ''}Content-Length: 0\r\n\r\n`);
      return;
    }
    const upstream = connect({ host: ip, port: Number(m?.[2]) });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.once('connect', () => {
      entry(req, target, 200);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
  });

  const listening = await listenLocal(server);
  return { ...listening, url: `${pki === undefined ? 'http' : 'https'}://${listening.host}`, log };
}
