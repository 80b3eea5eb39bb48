import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.js';
import { parseProxyUrl } from '../../src/registry/proxy.js';
import { openTunnel } from '../../src/registry/proxy-dispatcher.js';
import { listenLocal, type Listening } from '../support/listen.js';

let server: Listening | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A proxy that records the request head and answers it with `answer` (nothing when undefined). */
async function fakeProxy(answer: string | undefined): Promise<{ url: string; heads: string[] }> {
  const heads: string[] = [];
  server = await listenLocal(
    createServer((socket: Socket) => {
      let head = '';
      socket.on('data', (chunk) => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        heads.push(head);
        if (answer !== undefined) socket.write(answer);
      });
      socket.on('error', () => {});
    }),
  );
  return { url: `http://${server.host}`, heads };
}

async function failure(p: Promise<unknown>): Promise<AirlockError> {
  try {
    await p;
  } catch (err) {
    return err as AirlockError;
  }
  throw new Error('resolved');
}

describe('openTunnel', () => {
  it('sends CONNECT with the target and Proxy-Authorization, and hands over a paused socket', async () => {
    const proxy = await fakeProxy('HTTP/1.1 200 Connection Established\r\nVia: test\r\n\r\n');
    const endpoint = parseProxyUrl(proxy.url.replace('http://', 'http://u:tunnel-pass@'), 'x');
    const socket = await openTunnel(endpoint, 'registry.lan:443', 5_000);
    expect(socket.isPaused()).toBe(true);
    socket.destroy();
    expect(proxy.heads[0]).toBe(
      `CONNECT registry.lan:443 HTTP/1.1\r\nHost: registry.lan:443\r\nProxy-Authorization: Basic ${Buffer.from('u:tunnel-pass').toString('base64')}\r\n\r\n`,
    );
  });

  it('turns 407 into AUTH naming the proxy without its credentials', async () => {
    const proxy = await fakeProxy('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
    const err = await failure(openTunnel(parseProxyUrl(proxy.url.replace('http://', 'http://u:tunnel-pass@'), 'x'), 'registry.lan:443', 5_000));
    expect(err).toBeInstanceOf(AirlockError);
    expect(err.code).toBe('AUTH');
    expect(err.message).toBe(`proxy ${proxy.url} refused the credentials in the proxy URL (407 Proxy Authentication Required)`);
    expect(JSON.stringify(err.toJSON())).not.toContain('tunnel-pass');
  });

  it('turns 403 into AUTH and 502 into NETWORK, naming the target', async () => {
    const denied = await fakeProxy('HTTP/1.1 403 Forbidden\r\n\r\n');
    const e403 = await failure(openTunnel(parseProxyUrl(denied.url, 'x'), 'registry.lan:5000', 5_000));
    expect([e403.code, e403.message]).toEqual(['AUTH', `proxy ${denied.url} refused to connect to registry.lan:5000 (403 Forbidden)`]);
    await server?.close();
    const gateway = await fakeProxy('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    const e502 = await failure(openTunnel(parseProxyUrl(gateway.url, 'x'), 'registry.lan:5000', 5_000));
    expect([e502.code, e502.message]).toEqual(['NETWORK', `proxy ${gateway.url} could not connect to registry.lan:5000 (502 Bad Gateway)`]);
  });

  it('bounds a proxy that never answers by the connect timeout', async () => {
    const proxy = await fakeProxy(undefined);
    const started = Date.now();
    const err = await failure(openTunnel(parseProxyUrl(proxy.url, 'x'), 'registry.lan:443', 300));
    expect(err.code).toBe('NETWORK');
    expect(err.message).toBe(`cannot reach proxy ${proxy.url} for registry.lan:443: no answer within 300 ms`);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('refuses bytes sent with the 200 (the registry speaks only after the TLS ClientHello)', async () => {
    const proxy = await fakeProxy('HTTP/1.1 200 OK\r\n\r\nEARLY');
    const err = await failure(openTunnel(parseProxyUrl(proxy.url, 'x'), 'r:443', 5_000));
    expect([err.code, err.message]).toEqual(['NETWORK', `cannot reach proxy ${proxy.url} for r:443: the proxy sent data after its answer to CONNECT`]);
  });

  it('refuses an answer that is not HTTP, and one whose head never ends', async () => {
    const ssh = await fakeProxy('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    expect((await failure(openTunnel(parseProxyUrl(ssh.url, 'x'), 'r:443', 5_000))).message).toContain('did not answer CONNECT in HTTP');
    await server?.close();
    const endless = await fakeProxy(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(20_000)}`);
    expect((await failure(openTunnel(parseProxyUrl(endless.url, 'x'), 'r:443', 5_000))).message).toContain('oversized answer');
  });

  it('names a refused connection to the proxy', async () => {
    const proxy = await fakeProxy(undefined);
    await server?.close();
    server = undefined;
    const err = await failure(openTunnel(parseProxyUrl(proxy.url, 'x'), 'r:443', 5_000));
    expect([err.code, err.message]).toEqual(['NETWORK', `cannot reach proxy ${proxy.url} for r:443: connection refused`]);
  });
});
