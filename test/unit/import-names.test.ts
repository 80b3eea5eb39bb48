import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';
import { hostComponent, mapImages, parseBundleName, parseImportTarget, type ImportTarget } from '../../src/names/import-names.js';

const D1 = `sha256:${'1'.repeat(64)}` as Digest;
const D2 = `sha256:${'2'.repeat(64)}` as Digest;
const REG: ImportTarget = { kind: 'registry', host: 'registry.lan:5000', prefix: 'mirror' };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isAirlockError(err) ? err.code : 'not an AirlockError';
  }
  return undefined;
}

describe('parseImportTarget', () => {
  it.each([
    ['registry.lan', { kind: 'registry', host: 'registry.lan', prefix: '' }],
    ['registry.lan:5000', { kind: 'registry', host: 'registry.lan:5000', prefix: '' }],
    ['registry.lan:5000/mirror/', { kind: 'registry', host: 'registry.lan:5000', prefix: 'mirror' }],
    ['localhost/a/b', { kind: 'registry', host: 'localhost', prefix: 'a/b' }],
    ['127.0.0.1:5000/x', { kind: 'registry', host: '127.0.0.1:5000', prefix: 'x' }],
    ['[::1]:5000', { kind: 'registry', host: '[::1]:5000', prefix: '' }],
    ['Registry.LAN', { kind: 'registry', host: 'registry.lan', prefix: '' }],
    ['oci:/srv/images', { kind: 'layout', dir: '/srv/images' }],
  ])('%s', (text, want) => {
    expect(parseImportTarget(text)).toEqual(want);
  });

  it.each(['registry', 'mirror/x', 'oci:', 'oci:/srv:name', 'registry.lan/Upper', 'registry.lan:99999', 'registry.lan//x'])('refuses %s', (text) => {
    expect(code(() => parseImportTarget(text))).toBe('USAGE');
  });
});

describe('hostComponent', () => {
  it.each([
    ['quay.io', 'quay.io'],
    ['docker.io', 'docker.io'],
    ['localhost', 'localhost'],
    ['localhost:5000', 'localhost_5000'],
    ['127.0.0.1:5000', '127.0.0.1_5000'],
    ['my-registry.corp.example:443', 'my-registry.corp.example_443'],
    ['[::1]:5000', 'ipv6---1_5000'],
    ['[fe80::1]', 'ipv6-fe80--1'],
  ])('%s -> %s', (host, want) => {
    expect(hostComponent(host)).toBe(want);
  });
});

describe('parseBundleName', () => {
  it('keeps the upstream host, path, tag and digest', () => {
    expect(parseBundleName('quay.io/coreos/etcd:v3.3')).toEqual({ registry: 'quay.io', path: 'coreos/etcd', tag: 'v3.3' });
    expect(parseBundleName(`localhost:5000/x@${D1}`)).toEqual({ registry: 'localhost:5000', path: 'x', digest: D1 });
  });

  it('takes a host-less name with a tag as a path (no docker.io, no library/)', () => {
    expect(parseBundleName('team/app:1.0')).toEqual({ registry: undefined, path: 'team/app', tag: '1.0' });
    expect(parseBundleName('app:v1')).toEqual({ registry: undefined, path: 'app', tag: 'v1' });
  });

  it.each(['v1', 'latest', 'team/app', 'quay.io/coreos/etcd', 'Upper/app:1', 'a//b:1', 'quay.io/x:bad tag'])('refuses %s', (name) => {
    expect(code(() => parseBundleName(name))).toBe('INPUT_INVALID');
  });
});

describe('mapImages', () => {
  it('keeps the upstream host in the namespace by default', () => {
    const [etcd, busybox, local] = mapImages(
      [
        { name: 'quay.io/coreos/etcd:v3.3', digest: D1 },
        { name: 'docker.io/library/busybox:musl', digest: D2 },
        { name: 'localhost:5000/x:1', digest: D2 },
      ],
      REG,
    );
    expect(etcd).toMatchObject({
      repository: 'mirror/quay.io/coreos/etcd',
      tag: 'v3.3',
      reference: 'registry.lan:5000/mirror/quay.io/coreos/etcd:v3.3',
      registry: 'quay.io',
      upstreamRepository: 'quay.io/coreos/etcd',
    });
    expect(busybox?.reference).toBe('registry.lan:5000/mirror/docker.io/library/busybox:musl');
    expect(local?.reference).toBe('registry.lan:5000/mirror/localhost_5000/x:1');
  });

  it('drops the host with --strip-host, and without a prefix', () => {
    const [m] = mapImages([{ name: 'quay.io/coreos/etcd:v3.3', digest: D1 }], { kind: 'registry', host: 'r.lan', prefix: '' }, { stripHost: true });
    expect(m?.reference).toBe('r.lan/coreos/etcd:v3.3');
  });

  it('pushes digest-only names by their bundled digest, untagged', () => {
    const [m] = mapImages([{ name: `quay.io/coreos/etcd@${D2}`, digest: D1 }], REG);
    expect(m).toMatchObject({ tag: undefined, reference: `registry.lan:5000/mirror/quay.io/coreos/etcd@${D1}` });
  });

  it('names layout entries by the target name without host', () => {
    const layout: ImportTarget = { kind: 'layout', dir: '/srv' };
    const [a, b] = mapImages(
      [
        { name: 'quay.io/coreos/etcd:v3.3', digest: D1 },
        { name: `docker.io/library/x@${D2}`, digest: D2 },
      ],
      layout,
    );
    expect(a?.reference).toBe('quay.io/coreos/etcd:v3.3');
    expect(b?.reference).toBe(`docker.io/library/x@${D2}`);
  });

  it('refuses two images that --strip-host makes collide, naming both', () => {
    const images = [
      { name: 'quay.io/team/app:1', digest: D1 },
      { name: 'docker.io/team/app:1', digest: D2 },
    ];
    expect(mapImages(images, REG).map((m) => m.reference)).toHaveLength(2);
    let err: unknown;
    try {
      mapImages(images, REG, { stripHost: true });
    } catch (e) {
      err = e;
    }
    expect(isAirlockError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).toBe('images quay.io/team/app:1 and docker.io/team/app:1 would both land as registry.lan:5000/mirror/team/app:1');
  });

  it('lets the same content land on one reference twice', () => {
    const images = [
      { name: 'quay.io/team/app:1', digest: D1 },
      { name: 'docker.io/team/app:1', digest: D1 },
    ];
    expect(mapImages(images, REG, { stripHost: true })).toHaveLength(2);
  });

  it('refuses a target name over 255 characters', () => {
    const long = `quay.io/${'a'.repeat(120)}/${'b'.repeat(120)}:1`;
    expect(code(() => mapImages([{ name: long, digest: D1 }], REG))).toBe('USAGE');
  });

  it('refuses a bare layout name such as v1', () => {
    expect(code(() => mapImages([{ name: 'v1', digest: D1 }], REG))).toBe('INPUT_INVALID');
  });
});
