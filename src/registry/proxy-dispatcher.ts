/**
 * The undici dispatcher of a registry client when a proxy is configured: one Agent whose pool for
 * each origin is chosen when the origin is first used (`proxy.ts` decides, per origin, so a token
 * realm on another host follows `NO_PROXY` on its own):
 * - direct, as without a proxy;
 * - `https://` through the proxy: an HTTP `CONNECT host:port` tunnel, then TLS to the registry
 *   inside it with the registry's own CA settings (the proxy never sees the plaintext);
 * - `http://` through the proxy: requests in absolute form (`GET http://host:port/v2/ HTTP/1.1`)
 *   on keep-alive connections to the proxy, as curl and Go send them.
 *
 * Every wait stays bounded: reaching the proxy and its answer to `CONNECT` share the connect
 * timeout, the TLS handshake inside the tunnel gets its own, and the request's head and body
 * timeouts apply as on a direct connection. A proxy that refuses or cannot be reached fails with
 * an {@link AirlockError} that names the proxy (never its credentials) and the fix.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { Agent, buildConnector, Pool, type Dispatcher } from 'undici';
import { AirlockError } from '../errors.js';
import { cleanText } from '../redact.js';
import { proxyAuthorization, proxyFor, type ProxyEndpoint, type ProxySettings } from './proxy.js';
import { seconds } from './timeouts.js';
import type { TlsOptions } from './tls.js';

/** The longest `CONNECT` answer head read; a proxy's is a few hundred bytes. */
const MAX_CONNECT_HEAD = 16 * 1024;

export interface ProxyDispatcherOptions {
  settings: ProxySettings;
  /** TLS options for the registries (never for the proxy itself). */
  tls: TlsOptions;
  /** CAs that may sign an `https://` proxy's certificate (Node's roots when unset). */
  proxyCa?: TlsOptions['ca'];
  connectMs: number;
  headersMs: number;
  bodyMs: number;
}

/** An Agent that routes each origin directly or through the proxy. */
export function proxyDispatcher(opts: ProxyDispatcherOptions): Agent {
  const { settings, tls, proxyCa, connectMs } = opts;
  return new Agent({
    connect: { ...tls, timeout: connectMs },
    headersTimeout: opts.headersMs,
    bodyTimeout: opts.bodyMs,
    factory: (origin, poolOptions) => {
      const url = new URL(String(origin));
      const proxy = proxyFor(settings, url);
      if (proxy === undefined) return new Pool(origin, poolOptions);
      if (url.protocol === 'https:') return new Pool(origin, { ...poolOptions, connect: tunnelConnector(proxy, tls, proxyCa, connectMs) });
      return forwardingPool(proxy, url, poolOptions as Record<string, unknown>, proxyCa, connectMs);
    },
  });
}

/** `host:port` of an origin, as a `CONNECT` target and in messages. */
function authority(hostname: string, port: string | number | undefined, protocol: string): string {
  const p = port === undefined || port === '' ? (protocol === 'http:' ? 80 : 443) : Number(port);
  return `${hostname.includes(':') && !hostname.startsWith('[') ? `[${hostname}]` : hostname}:${p}`;
}

/** A connector that opens a `CONNECT` tunnel through `proxy`, then TLS inside it. */
function tunnelConnector(proxy: ProxyEndpoint, tls: TlsOptions, proxyCa: TlsOptions['ca'], connectMs: number): buildConnector.connector {
  const handshake = buildConnector({ ...tls, timeout: connectMs });
  return (options, callback) => {
    const target = authority(options.hostname, options.port, options.protocol);
    openTunnel(proxy, target, connectMs, proxyCa).then(
      (socket) => handshake({ ...options, httpSocket: socket }, callback),
      (err: Error) => callback(err, null),
    );
  };
}

/** An error with a Node-style code, as the retry rules and messages classify them. */
function coded(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The failure to reach the proxy itself, or its refusal to reach `target`. */
function proxyFailure(proxy: ProxyEndpoint, target: string, what: { status: number; reason: string } | { cause: Error & { code?: string } }): AirlockError {
  const fix = `check --proxy or the HTTPS_PROXY / HTTP_PROXY variables; add ${target.replace(/:\d+$/, '')} to NO_PROXY if it is reachable directly`;
  const base = { subject: target, details: { proxy: proxy.display } };
  if ('cause' in what) {
    const code = what.cause.code ?? '';
    if (/CERT|SELF_SIGNED|UNABLE_TO|^ERR_TLS_|^ERR_SSL_/.test(code)) {
      return new AirlockError('TLS', `TLS certificate of proxy ${proxy.display} is not accepted (${code})`, {
        ...base,
        cause: what.cause,
        hint: "pass the proxy's CA with --ca-file FILE, or use an http:// proxy URL",
      });
    }
    const why =
      code === 'ECONNREFUSED'
        ? 'connection refused'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'its host name does not resolve'
          : code === 'UND_ERR_CONNECT_TIMEOUT'
            ? `no answer within ${seconds(Number((what.cause as { ms?: number }).ms ?? 0))}`
            : code !== '' && code !== 'EPROTO' && code !== 'ECONNRESET'
              ? code
              : what.cause.message;
    return new AirlockError('NETWORK', `cannot reach proxy ${proxy.display} for ${target}: ${why}`, { ...base, hint: fix, cause: what.cause });
  }
  const said = `${what.status}${what.reason === '' ? '' : ` ${what.reason}`}`;
  const cause = new Error(`proxy answered ${said}`);
  if (what.status === 407) {
    const hasCreds = proxy.username !== undefined || proxy.password !== undefined;
    return new AirlockError('AUTH', `proxy ${proxy.display} ${hasCreds ? 'refused the credentials in the proxy URL' : 'requires authentication'} (${said})`, {
      ...base,
      cause,
      hint: hasCreds
        ? 'check the user and password in --proxy or HTTPS_PROXY (percent-encode special characters)'
        : // Not written as a URL with credentials: printed messages mask those (cli/render-error.ts).
          'put the proxy credentials into the proxy URL, USER:PASSWORD@ before its host, in --proxy or HTTPS_PROXY',
    });
  }
  if (what.status === 403) {
    return new AirlockError('AUTH', `proxy ${proxy.display} refused to connect to ${target} (${said})`, {
      ...base,
      cause,
      hint: `ask the proxy's operator to allow ${target}, or add it to NO_PROXY if it is reachable directly`,
    });
  }
  return new AirlockError('NETWORK', `proxy ${proxy.display} could not connect to ${target} (${said})`, {
    ...base,
    cause,
    hint: `check the registry name and port (the proxy resolves it); ${fix.replace(/^check [^;]*; /, '')}`,
  });
}

/**
 * Connect to the proxy and ask it for a tunnel to `target`; resolves with the (paused) socket once
 * the proxy answered 200. An HTTPS
 * proxy is verified against the same CAs as the registries (`--ca-file`), never skipped: the
 * proxy sees the proxy credentials.
 */
export function openTunnel(proxy: ProxyEndpoint, target: string, connectMs: number, ca?: TlsOptions['ca']): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket: Socket =
      proxy.protocol === 'https:'
        ? tlsConnect({ host: proxy.hostname, port: proxy.port, servername: proxy.hostname, ALPNProtocols: ['http/1.1'], ...(ca === undefined ? {} : { ca }) })
        : netConnect({ host: proxy.hostname, port: proxy.port });
    let head = Buffer.alloc(0);
    const done = (err: Error | undefined): void => {
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      if (err === undefined) {
        // Paused until the TLS handshake takes the socket over: nothing may flow past unread.
        socket.pause();
        resolve(socket);
      } else {
        socket.on('error', () => {}).destroy();
        reject(err);
      }
    };
    const timer = setTimeout(() => {
      done(proxyFailure(proxy, target, { cause: Object.assign(coded('connect timeout', 'UND_ERR_CONNECT_TIMEOUT'), { ms: connectMs }) }));
    }, connectMs);
    const onError = (err: Error): void => done(proxyFailure(proxy, target, { cause: err }));
    const onClose = (): void => done(proxyFailure(proxy, target, { cause: coded('the proxy closed the connection before answering CONNECT', 'ECONNRESET') }));
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_CONNECT_HEAD) done(proxyFailure(proxy, target, { cause: coded('the proxy sent an oversized answer to CONNECT', 'EPROTO') }));
        return;
      }
      const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
      if (m === null) {
        done(proxyFailure(proxy, target, { cause: coded('the proxy did not answer CONNECT in HTTP', 'EPROTO') }));
        return;
      }
      const status = Number(m[1]);
      if (status !== 200) {
        done(proxyFailure(proxy, target, { status, reason: cleanText(m[2] ?? '').slice(0, 80) }));
        return;
      }
      // The registry speaks first only after our TLS ClientHello: bytes with the 200 are not from it.
      if (head.length > end + 4) {
        done(proxyFailure(proxy, target, { cause: coded('the proxy sent data after its answer to CONNECT', 'EPROTO') }));
        return;
      }
      done(undefined);
    };
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.once(proxy.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      const auth = proxyAuthorization(proxy);
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth === undefined ? '' : `Proxy-Authorization: ${auth}\r\n`}\r\n`);
    });
  });
}

/** Headers of a dispatch as a plain object (undici also accepts a flat array). */
function headerObject(headers: Dispatcher.DispatchOptions['headers']): Record<string, string | string[] | undefined> {
  if (headers === null || headers === undefined) return {};
  if (Array.isArray(headers)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < headers.length; i += 2) out[String(headers[i])] = String(headers[i + 1]);
    return out;
  }
  if (Symbol.iterator in headers) {
    const out: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of headers as Iterable<[string, string | string[] | undefined]>) out[k] = v;
    return out;
  }
  return { ...(headers as Record<string, string | string[] | undefined>) };
}

/**
 * A pool of keep-alive connections to the proxy that sends `origin`'s requests in absolute form.
 * A 407 can only be the proxy's (a registry asks with 401): it fails the request with the proxy's
 * error instead of reaching the registry client as the registry's status. A 403 is left alone: it
 * may as well be the registry's.
 */
function forwardingPool(proxy: ProxyEndpoint, origin: URL, poolOptions: Record<string, unknown>, proxyCa: TlsOptions['ca'], connectMs: number): Dispatcher {
  const { connect: _direct, ...rest } = poolOptions as { connect?: unknown };
  const proxyOrigin = `${proxy.protocol}//${authority(proxy.hostname, proxy.port, proxy.protocol)}`;
  const secure = proxy.protocol === 'https:' ? { servername: proxy.hostname, ...(proxyCa === undefined ? {} : { ca: proxyCa }) } : {};
  const target = authority(origin.hostname, origin.port, origin.protocol);
  const toProxy = buildConnector({ timeout: connectMs, ...secure });
  // Failing to reach the proxy is the proxy's failure, not the registry's.
  const connect: buildConnector.connector = (options, callback) =>
    toProxy(options, (err, socket) => {
      if (err === null) callback(null, socket);
      else callback(proxyFailure(proxy, target, { cause: Object.assign(err, { ms: connectMs }) }), null);
    });
  const pool = new Pool(proxyOrigin, { ...rest, connect });
  const auth = proxyAuthorization(proxy);
  return pool.compose((dispatch) => (opts, handler) => {
    const headers = headerObject(opts.headers);
    headers.host = origin.host;
    if (auth !== undefined) headers['proxy-authorization'] = auth;
    return dispatch({ ...opts, origin: proxyOrigin, path: `${origin.origin}${opts.path}`, headers }, refusalsFail(handler, proxy, target));
  });
}

/** A legacy-style handler (what undici hands an interceptor) that turns the proxy's 407 into an error. */
function refusalsFail(handler: Dispatcher.DispatchHandler, proxy: ProxyEndpoint, target: string): Dispatcher.DispatchHandler {
  const h = handler as Dispatcher.DispatchHandler & Record<string, ((...args: unknown[]) => unknown) | undefined>;
  let abort: ((err: Error) => void) | undefined;
  let refused = false;
  const forward =
    (name: string) =>
    (...args: unknown[]): unknown =>
      refused ? undefined : h[name]?.(...args);
  return {
    onConnect: (a: (err?: Error) => void, context?: object) => {
      abort = a;
      return (h.onConnect as ((...args: unknown[]) => unknown) | undefined)?.(a, context);
    },
    onHeaders: (status: number, raw: Buffer[], resume: () => void, statusText: string) => {
      if (status === 407) {
        abort?.(proxyFailure(proxy, target, { status, reason: cleanText(statusText ?? '').slice(0, 80) }));
        refused = true;
        return false;
      }
      return h.onHeaders?.(status, raw, resume, statusText) ?? true;
    },
    onData: forward('onData'),
    onComplete: forward('onComplete'),
    onError: (err: Error) => h.onError?.(err),
    onUpgrade: forward('onUpgrade'),
    onResponseStarted: forward('onResponseStarted'),
    onBodySent: forward('onBodySent'),
    onRequestSent: forward('onRequestSent'),
  } as unknown as Dispatcher.DispatchHandler;
}
