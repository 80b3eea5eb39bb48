/**
 * Names that collide after import mapping, what a host-less name passes for under the policy, the
 * create-side name check (bare `oci:` names) and the image list's `as:` rename.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AirlockError, isAirlockError } from '../../src/errors.js';
import { checkNameCollisions, claimedNames, unmapHostComponent } from '../../src/names/name-claims.js';
import { hostComponent } from '../../src/names/import-names.js';
import { checkImageNames } from '../../src/names/create-names.js';
import { checkReferences } from '../../src/bundle/verify-references.js';
import { checkImagesAllowed, type ImportPolicy } from '../../src/policy/policy.js';
import { compilePattern } from '../../src/policy/pattern.js';
import { loadImageList } from '../../src/imagelist/index.js';
import { expandImages } from '../../src/copy/expand.js';
import type { ImageToResolve } from '../../src/copy/resolve.js';
import type { Source } from '../../src/transport/types.js';

function failure(f: () => unknown): AirlockError {
  try {
    f();
  } catch (err) {
    if (isAirlockError(err)) return err;
    throw err;
  }
  throw new Error('expected an AirlockError');
}

describe('unmapHostComponent', () => {
  it.each(['localhost:6200', 'registry.lan:5000', 'quay.io', '[fe80::1]:5000', '[::1]'])('inverts hostComponent for %s', (host) => {
    expect(unmapHostComponent(hostComponent(host))).toBe(host);
  });
  it.each(['team', 'library', 'a_b', 'foo_bar_1', 'x_'])('finds no host in %s', (c) => {
    expect(unmapHostComponent(c)).toBeUndefined();
  });
});

describe('claimedNames', () => {
  it('reads a host-less name as the mapped host it spells and as Docker Hub', () => {
    expect(claimedNames('localhost_6200/app:1').map((c) => c.repository)).toEqual(['localhost:6200/app', 'docker.io/localhost_6200/app']);
    expect(claimedNames('busybox:musl').map((c) => c.repository)).toEqual(['docker.io/library/busybox']);
    expect(claimedNames('team/app:1.0').map((c) => c.repository)).toEqual(['docker.io/team/app']);
  });
  it('claims nothing more for a name with a host', () => {
    expect(claimedNames('localhost:6200/app:1')).toEqual([]);
    expect(claimedNames('quay.io/coreos/etcd:v3.3')).toEqual([]);
  });
});

describe('checkNameCollisions', () => {
  it('refuses a host-less name that lands in the repository of a name with a host', () => {
    const err = failure(() => checkNameCollisions(['localhost:6200/app:1', 'localhost_6200/app:2'], 'H'));
    expect(err.code).toBe('INPUT_INVALID');
    expect(err.message).toBe('images localhost:6200/app:1 and localhost_6200/app:2 would both land in repository localhost_6200/app at import');
    expect(failure(() => checkNameCollisions(['ipv6-fe80--1_5000/x:1', '[fe80::1]:5000/x:1'], 'H')).code).toBe('INPUT_INVALID');
  });
  it('accepts tags of one repository, and repositories that stay apart', () => {
    expect(() => checkNameCollisions(['localhost:6200/app:1', 'localhost:6200/app:2', 'quay.io/app:1', 'app:1', 'docker.io/library/app:1'], 'H')).not.toThrow();
  });
});

describe('verify refuses names import cannot map', () => {
  it('reports a bare name and a collision as problems', () => {
    const D = `sha256:${'a'.repeat(64)}`;
    const bundle = {
      images: [
        { name: 'busybox-musl', digest: D },
        { name: 'localhost:6200/app:1', digest: D },
        { name: 'localhost_6200/app:2', digest: D },
      ],
      blobs: [{ digest: D, size: 1, mediaType: 'application/octet-stream' }],
    };
    const problems = checkReferences(bundle as unknown as Parameters<typeof checkReferences>[0], undefined, new Map()).map((p) => p.message);
    expect(problems).toContain('image "busybox-musl" in the bundle cannot be imported: it is a bare name (a layout tag?), not HOST/REPOSITORY:TAG');
    expect(problems).toContain('images localhost:6200/app:1 and localhost_6200/app:2 would both land in repository localhost_6200/app at import');
  });
});

describe('the policy sees what a host-less name passes for', () => {
  const policy = (deny: string[], allow?: string[]): ImportPolicy => ({
    source: 'p.yaml',
    registries: { deny: [] },
    repositories: {
      deny: deny.map((d, i) => compilePattern(d, `deny[${i}]`)),
      ...(allow === undefined ? {} : { allow: allow.map((a, i) => compilePattern(a, `allow[${i}]`)) }),
    },
  });
  const subjects = (name: string) => [
    { name, registry: undefined, repository: name.replace(/:[^/]*$/, '') },
    ...claimedNames(name).map((c) => ({ name, registry: c.registry, repository: c.repository, reading: c.reading })),
  ];

  it('refuses localhost_6200/app under a policy that denies localhost:6200, saying why', () => {
    const err = failure(() => checkImagesAllowed(policy(['localhost:6200/**']), subjects('localhost_6200/app:1')));
    expect(err.code).toBe('POLICY');
    expect(err.message).toContain('repository localhost:6200/app is denied by pattern "localhost:6200/**" (it lands where localhost:6200/app lands)');
  });
  it('refuses busybox:1 under a policy that denies docker.io/library/busybox', () => {
    const err = failure(() => checkImagesAllowed(policy(['docker.io/library/busybox']), subjects('busybox:1')));
    expect(err.message).toContain('(Docker reads it as docker.io/library/busybox)');
  });
  it('still lets through a host-less name the policy does not deny', () => {
    expect(() => checkImagesAllowed(policy(['localhost:6200/**']), subjects('team/app:1'))).not.toThrow();
  });
});

describe('create refuses names import cannot map', () => {
  const image = (name: string, sourceRef = `oci:/l:${name}`): ImageToResolve => ({ name, sourceRef, source: {} as Source, repository: '', reference: name });

  it('refuses a bare oci: name, with a hint to rename it with as:', () => {
    const err = failure(() => checkImageNames([image('busybox-musl')]));
    expect(err.code).toBe('INPUT_INVALID');
    expect(err.message).toBe(
      'oci:/l:busybox-musl: "busybox-musl" cannot be mapped to a target name at import: it is a bare name (a layout tag?), not HOST/REPOSITORY:TAG',
    );
    expect(err.hint).toContain('- { ref: "oci:/l:busybox-musl", as: "HOST/REPOSITORY:TAG" }');
  });
  it('refuses names that collide after mapping', () => {
    expect(failure(() => checkImageNames([image('localhost_6200/app:1'), image('localhost:6200/app:2', 'localhost:6200/app:2')])).message).toContain(
      'would both land in repository localhost_6200/app',
    );
  });
  it('accepts full names and host-less paths with a tag', () => {
    expect(() => checkImageNames([image('docker.io/library/busybox:musl'), image('team/app:1.0')])).not.toThrow();
  });
});

describe('as: in the image list', () => {
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-as-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const load = async (entry: string) => {
    const path = join(dir, `l${++n}.yaml`);
    await writeFile(path, `version: 1\nimages:\n  - ${entry}\n`);
    return loadImageList(path);
  };
  const loadError = async (entry: string) => {
    try {
      await load(entry);
    } catch (err) {
      if (isAirlockError(err)) return err;
      throw err;
    }
    throw new Error('expected an AirlockError');
  };

  it('records an oci: image under the normalised name given', async () => {
    const list = await load('{ ref: "oci:/srv/layout:busybox-musl", as: "busybox:musl" }');
    const images = await expandImages(list.entries, { registry: () => ({}) as Source, layout: () => ({}) as Source });
    expect(images.map((i) => [i.name, i.sourceRef, i.reference])).toEqual([['docker.io/library/busybox:musl', 'oci:/srv/layout:busybox-musl', 'busybox-musl']]);
  });

  it.each([
    ['{ ref: "quay.io/x/y:1", as: "quay.io/x/z:1" }', 'renames one image of an OCI layout'],
    ['{ ref: "oci:/srv/layout", as: "a/b:1" }', 'renames one image of an OCI layout'],
    [`{ ref: "oci:/srv/layout:x", as: "a/b@sha256:${'a'.repeat(64)}" }`, 'names a digest'],
    ['{ ref: "oci:/srv/layout:x", as: "a/b:.bad" }', 'tag ".bad" is not valid'],
    ['{ ref: "oci:/srv/layout:x", as: "" }', ''],
  ])('refuses %s', async (entry, expected) => {
    const err = await loadError(entry);
    expect(err.code).toBe('INPUT_INVALID');
    expect(err.message).toContain(expected);
    expect(err.message).toMatch(/images\[0\]\.as/);
  });
});
