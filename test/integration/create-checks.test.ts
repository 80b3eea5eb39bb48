/**
 * `bundle create` against a real registry serving crafted content refuses, before it signs, what
 * verify and import would refuse: hostile tags in a tag list (served by the hostile registry in front
 * of it: distribution will not store them), one layer digest with two sizes (pushed into the registry
 * itself, which accepts it), and an index fan-out (deduplicated, and capped).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock } from '../support/cli.js';
import { pushBlob, pushManifest, type CraftedDescriptor } from '../support/crafted-registry.js';
import { startHostileRegistry, type HostileRegistry } from '../support/hostile-registry.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const AMD64 = { os: 'linux', architecture: 'amd64' };

let tmp: TempDir;
let reg: TestRegistry;
/** In front of `reg`: serves the hostile tag lists and records every request. */
let proxy: HostileRegistry;
let config: CraftedDescriptor;
let layer: CraftedDescriptor;
let n = 0;

const manifest = (layers: CraftedDescriptor[], annotations?: Record<string, string>) => ({
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config,
  layers,
  ...(annotations === undefined ? {} : { annotations }),
});
const index = (manifests: CraftedDescriptor[]) => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
/** `METHOD PATH` of every request the proxy received since its requests were last cleared. */
const requests = (): string[] => proxy.requests.map((q) => `${q.method} ${q.url}`);

/** `bundle create` of `refs` (through the proxy), signed; returns the run and the output path. */
async function create(refs: string[], extra: string[] = []): Promise<{ code: number; stdout: string; stderr: string; out: string }> {
  const out = `${tmp.path}/b${++n}.tar.zst`;
  const r = await airlock(['bundle', 'create', ...refs, '-o', out, '--sign-key', `${tmp.path}/signer.key`, '--plain-http', ...extra]);
  return { ...r, out };
}

beforeAll(async () => {
  tmp = await makeTempDir('create-checks');
  reg = await startRegistry();
  proxy = await startHostileRegistry({ upstream: reg });
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  for (const repo of ['app', 'tags', 'fan', 'wide']) {
    config = await pushBlob(reg, repo, JSON.stringify({ ...AMD64, rootfs: { type: 'layers', diff_ids: [] } }), OCI_CONFIG);
    layer = await pushBlob(reg, repo, 'layer bytes', OCI_LAYER);
  }
  await pushManifest(reg, 'tags', '1.0', manifest([layer]));
});

afterAll(async () => {
  await proxy?.stop();
  await reg?.stop();
  await tmp?.remove();
});

describe('tags from a tag list', () => {
  it('skips tags outside the grammar with a warning, and never requests them', async () => {
    proxy.set({ tags: { tags: ['1.0', '.', '..', '../../../v2/other/manifests/1', '-rc', 'a'.repeat(129)] } });
    const list = `${tmp.path}/tags.yaml`;
    await writeFile(list, ['version: 1', 'images:', `  - ref: ${proxy.host}/tags`, '    tags: {}', ''].join('\n'));
    proxy.requests.length = 0;
    const r = await create(['-f', list]);
    expect(r.stderr).toContain(
      `warning: ${proxy.host}/tags: skipping 5 listed tags that are not valid tags: ".", "..", "../../../v2/other/manifests/1", "-rc"`,
    );
    expect(r.code).toBe(0);
    const inspect = await airlock(['bundle', 'inspect', '--json', r.out]);
    expect((JSON.parse(inspect.stdout) as { images: Array<{ name: string }> }).images.map((i) => i.name)).toEqual([`${proxy.host}/tags:1.0`]);
    const manifestRequests = requests().filter((q) => q.includes('/manifests/'));
    expect(manifestRequests).toEqual([`GET /v2/tags/manifests/1.0`]);
    expect(requests().some((q) => q.includes('..') || q.endsWith('/manifests/.'))).toBe(false);
  });

  it('refuses a bad tag named explicitly, naming it (exit 3), before any request', async () => {
    proxy.requests.length = 0;
    const r = await create([`${proxy.host}/app:..`]);
    expect(r.code).toBe(EXIT_CODES.REF_INVALID);
    expect(r.stderr).toContain(`tag ".." is not valid`);
    expect(requests()).toEqual([]);
    expect(existsSync(r.out)).toBe(false);
  });
});

describe('one size per digest', () => {
  it('refuses two images that give one layer two sizes (the registry stores both), naming digest, sizes and images', async () => {
    await pushManifest(reg, 'app', 'honest', manifest([layer], { v: 'honest' }));
    // distribution checks that the layer exists, not that the descriptor's size is its size
    await pushManifest(reg, 'app', 'liar', manifest([{ ...layer, size: layer.size + 1000 }], { v: 'liar' }));
    const r = await create([`${proxy.host}/app:honest`, `${proxy.host}/app:liar`]);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toContain(
      `blob ${layer.digest} is ${layer.size} bytes in image ${proxy.host}/app:honest but ${layer.size + 1000} bytes in image ${proxy.host}/app:liar`,
    );
    expect(existsSync(r.out)).toBe(false);
    expect(existsSync(`${r.out}.partial`)).toBe(false);
  });

  it('refuses an index whose platform manifests give one layer two sizes, naming both manifests', async () => {
    const a = await pushManifest(reg, 'app', undefined, manifest([layer], { v: 'a' }));
    const b = await pushManifest(reg, 'app', undefined, manifest([{ ...layer, size: 1 }], { v: 'b' }));
    await pushManifest(
      reg,
      'app',
      'multi',
      index([
        { ...a, platform: AMD64 },
        { ...b, platform: { os: 'linux', architecture: 'arm64' } },
      ]),
    );
    const r = await create([`${proxy.host}/app:multi`]);
    expect(r.code).toBe(EXIT_CODES.INTEGRITY);
    expect(r.stderr).toContain(
      `blob ${layer.digest} is ${layer.size} bytes in ${proxy.host}/app:multi (manifest ${a.digest}) but 1 bytes in ${proxy.host}/app:multi (manifest ${b.digest})`,
    );
  });
});

describe('platform and media-type strings', () => {
  it('refuses an index child whose platform verify would reject, instead of signing it', async () => {
    const a = await pushManifest(reg, 'app', undefined, manifest([layer], { v: 'platform' }));
    await pushManifest(reg, 'app', 'badplatform', index([{ ...a, platform: { os: 'linux', architecture: 'amd 64' } }]));
    const r = await create([`${proxy.host}/app:badplatform`]);
    expect(r.code).toBe(EXIT_CODES.REGISTRY);
    expect(r.stderr).toContain('platform architecture "amd 64"');
    expect(existsSync(r.out)).toBe(false);
  });

  it('refuses a layer whose media type is not type/subtype', async () => {
    await pushManifest(reg, 'app', 'badtype', manifest([{ ...layer, mediaType: 'layer' }]));
    const r = await create([`${proxy.host}/app:badtype`]);
    expect(r.code).toBe(EXIT_CODES.REGISTRY);
    expect(r.stderr).toContain('media type "layer" is not type/subtype');
  });
});

describe('index fan-out', () => {
  it('fetches each manifest of a 100 x 4 fan-out once, and the bundle verifies and imports', async () => {
    let level = await pushManifest(reg, 'fan', undefined, manifest([layer], { v: 'leaf' }));
    for (let i = 0; i < 4; i++) {
      level = await pushManifest(reg, 'fan', i === 3 ? 'top' : undefined, index(Array.from({ length: 100 }, () => ({ ...level, platform: AMD64 }))));
    }
    proxy.requests.length = 0;
    const r = await create([`${proxy.host}/fan:top`], ['-q']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const gets = requests().filter((q) => q.includes('/manifests/'));
    expect(gets).toHaveLength(5); // the tag, then each of the four levels below it once
    expect(new Set(gets).size).toBe(5);
    expect((await airlock(['bundle', 'verify', r.out, '--trust', `${tmp.path}/signer.pub`])).code).toBe(0);
    const imported = await airlock(['bundle', 'import', r.out, '--to', `${reg.host}/imported`, '--trust', `${tmp.path}/signer.pub`, '--plain-http', '-q']);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
  });

  it('refuses an image of more than 1000 distinct manifests, naming the cap and the image', async () => {
    const children: CraftedDescriptor[] = [];
    // 1001 small PUTs, a few at a time (one at a time took ~40 s on a loaded machine)
    for (let i = 0; i < 1001; i += 8) {
      const batch = Array.from({ length: Math.min(8, 1001 - i) }, (_, j) => pushManifest(reg, 'wide', undefined, manifest([layer], { i: String(i + j) })));
      children.push(...(await Promise.all(batch)).map((d) => ({ ...d, platform: AMD64 })));
    }
    await pushManifest(reg, 'wide', 'top', index(children));
    proxy.requests.length = 0;
    const r = await create([`${proxy.host}/wide:top`]);
    expect(r.code).toBe(EXIT_CODES.UNSUPPORTED);
    expect(r.stderr).toContain(`${proxy.host}/wide:top: more than 1000 distinct manifests and indexes in one image`);
    expect(requests().filter((q) => q.includes('/manifests/')).length).toBeLessThanOrEqual(1001);
    expect(existsSync(r.out)).toBe(false);
  });
});
