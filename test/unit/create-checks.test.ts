/**
 * `bundle create` refuses, before it signs, what verify and import would refuse inside the gap:
 * tags outside the grammar, one digest with two sizes, platform and media-type strings the bundle
 * schema rejects, and index fan-out (dedupe and a cap). The source here is an in-memory double
 * behind the real Source interface, serving crafted manifests.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { parseManifest, type RawManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import type { Descriptor } from '../../src/oci/descriptor.js';
import { mediaTypeProblem, platformProblem } from '../../src/oci/grammar.js';
import type { Source } from '../../src/transport/types.js';
import { expandImages } from '../../src/copy/expand.js';
import { MAX_MANIFESTS_PER_IMAGE, resolveAll, resolveImage, type ImageToResolve } from '../../src/copy/resolve.js';
import { planBundle } from '../../src/copy/plan.js';
import type { ProgressEvent } from '../../src/copy/progress.js';
import { bundleManifest, signableBundleJson } from '../../src/bundle/bundle-json.js';
import { checkReferences } from '../../src/bundle/verify-references.js';
import { validateBundleManifest, serializeBundleManifest } from '../../src/bundle/manifest.js';
import { imageListFromRefs } from '../../src/imagelist/index.js';
import { parseAnyReference } from '../../src/ref/index.js';
import { renderError } from '../../src/cli/render-error.js';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { failure } from '../support/failure.js';

/** An in-memory source: manifests by tag and digest, blobs by digest, a tag list; counts GETs. */
class CraftedSource implements Source {
  readonly description = 'registry crafted.test';
  readonly manifests = new Map<string, RawManifest>();
  readonly blobs = new Map<string, Buffer>();
  tags: string[] = [];
  manifestGets = 0;

  put(doc: object, tag?: string): RawManifest {
    const bytes = Buffer.from(JSON.stringify(doc));
    const m = parseManifest(bytes, (doc as { mediaType: string }).mediaType, 'crafted');
    this.manifests.set(m.digest, m);
    if (tag !== undefined) this.manifests.set(tag, m);
    return m;
  }

  blob(content: string | Buffer): Descriptor {
    const bytes = Buffer.from(content);
    const digest = sha256Digest(bytes);
    this.blobs.set(digest, bytes);
    return { mediaType: MediaType.OciLayerGzip, digest, size: bytes.length };
  }

  async getManifest(_repository: string, reference: string): Promise<RawManifest> {
    this.manifestGets++;
    const m = this.manifests.get(reference);
    if (m === undefined) throw new AirlockError('NOT_FOUND', `no manifest ${reference}`);
    return m;
  }

  async openBlob(_repository: string, desc: Descriptor): Promise<Readable> {
    const b = this.blobs.get(desc.digest);
    if (b === undefined) throw new AirlockError('NOT_FOUND', `no blob ${desc.digest}`);
    return Readable.from([b]);
  }

  async listTags(): Promise<string[]> {
    return this.tags;
  }
}

const config = (source: CraftedSource, platform = { os: 'linux', architecture: 'amd64' } as Record<string, unknown>): Descriptor => {
  const d = source.blob(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] } }));
  return { ...d, mediaType: MediaType.OciConfig };
};

const imageManifest = (source: CraftedSource, layers: Descriptor[], tag?: string, cfg = config(source)): RawManifest =>
  source.put({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: cfg, layers }, tag);

const desc = (m: RawManifest, platform?: object): Descriptor => ({
  mediaType: m.mediaType,
  digest: m.digest,
  size: m.bytes.length,
  ...(platform === undefined ? {} : { platform: platform as Descriptor['platform'] }),
});

const index = (source: CraftedSource, children: Descriptor[], tag?: string): RawManifest =>
  source.put({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children }, tag);

const toResolve = (source: CraftedSource, tag: string, name = `crafted.test/app:${tag}`): ImageToResolve => ({
  name,
  sourceRef: name,
  source,
  repository: 'app',
  reference: tag,
});

describe('tags outside the grammar', () => {
  it('skips tags a registry lists that are not tags, with a warning naming them', async () => {
    const source = new CraftedSource();
    source.tags = ['1.0', '.', '../../../v2/other/manifests/1', '-x', 'a'.repeat(129), '\u001b[31mred', '2.0'];
    const events: ProgressEvent[] = [];
    const images = await expandImages(
      [{ ref: parseAnyReference('crafted.test/app', { defaultTag: false }), tagFilter: {}, source: 'test' }],
      { registry: () => source, layout: () => source },
      { onProgress: (e) => events.push(e) },
    );
    expect(images.map((i) => i.reference)).toEqual(['1.0', '2.0']);
    const warnings = events.filter((e) => e.kind === 'warning').map((e) => (e as { message: string }).message);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('skipping 5 listed tags');
    expect(warnings[0]).toContain('"../../../v2/other/manifests/1"');
    expect(warnings[0]).toContain('"."');
    expect(warnings[0]).not.toContain('\u001b'); // shown escaped, never raw
  });

  it('refuses a bad tag named explicitly, on the command line and in a list (exit 3)', async () => {
    for (const text of ['crafted.test/app:.', 'crafted.test/app:-rc', 'crafted.test/app:..']) {
      const err = await failure(() => imageListFromRefs([text]));
      expect(err.code).toBe('REF_INVALID');
      expect(EXIT_CODES[err.code]).toBe(3);
      expect(err.message).toContain(text);
    }
  });
});

describe('index fan-out', () => {
  it('fetches a child listed many times, at every level, once', async () => {
    const source = new CraftedSource();
    let level = imageManifest(source, [source.blob('layer')]);
    // 4 levels of indexes, each listing the level below 100 times: 100^3 walks without dedupe.
    for (let i = 0; i < 4; i++)
      level = index(
        source,
        Array.from({ length: 100 }, () => desc(level, { os: 'linux', architecture: 'amd64' })),
        i === 3 ? 'fan' : undefined,
      );
    const resolved = await resolveImage(toResolve(source, 'fan'));
    expect(source.manifestGets).toBe(5); // the top by tag, then each level once
    expect(resolved.manifests.map((m) => m.digest)).toHaveLength(5);
    expect(new Set(resolved.manifests.map((m) => m.digest)).size).toBe(5);
  });

  it('fetches a manifest shared by several images of one resolution once', async () => {
    const source = new CraftedSource();
    const child = imageManifest(source, [source.blob('layer')]);
    index(source, [desc(child, { os: 'linux', architecture: 'amd64' })], 'a');
    index(source, [desc(child, { os: 'linux', architecture: 'amd64' }), desc(child, { os: 'linux', architecture: 'amd64', variant: 'x' })], 'b');
    await resolveAll([toResolve(source, 'a'), toResolve(source, 'b')], { concurrency: 2 });
    expect(source.manifestGets).toBe(3); // two tags, one shared child
  });

  it(`refuses an image of more than ${MAX_MANIFESTS_PER_IMAGE} distinct manifests, naming the cap and the image`, async () => {
    const source = new CraftedSource();
    const cfg = config(source);
    const children = Array.from({ length: MAX_MANIFESTS_PER_IMAGE }, (_, i) =>
      desc(imageManifest(source, [source.blob(`layer ${i}`)], undefined, cfg), { os: 'linux', architecture: 'amd64' }),
    );
    index(source, children, 'wide');
    const err = await failure(resolveImage(toResolve(source, 'wide')));
    expect(err.code).toBe('UNSUPPORTED');
    expect(err.message).toContain(String(MAX_MANIFESTS_PER_IMAGE));
    expect(err.message).toContain('crafted.test/app:wide');
    // one fewer child is fine
    index(source, children.slice(1), 'narrow');
    await expect(resolveImage(toResolve(source, 'narrow'))).resolves.toBeDefined();
  });
});

describe('one size per digest', () => {
  it('refuses two manifests of one image that give a layer different sizes, naming both', async () => {
    const source = new CraftedSource();
    const layer = source.blob('layer content');
    const a = imageManifest(source, [layer]);
    const b = imageManifest(source, [{ ...layer, size: layer.size + 7 }]);
    index(source, [desc(a, { os: 'linux', architecture: 'amd64' }), desc(b, { os: 'linux', architecture: 'arm64' })], 'multi');
    const err = await failure(resolveImage(toResolve(source, 'multi')));
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toContain(layer.digest);
    expect(err.message).toContain(`${layer.size} bytes`);
    expect(err.message).toContain(`${layer.size + 7} bytes`);
    expect(err.message).toContain(a.digest);
    expect(err.message).toContain(b.digest);
  });

  it('refuses two images that give a layer different sizes, naming both images and sizes', async () => {
    const source = new CraftedSource();
    const layer = source.blob('shared layer');
    imageManifest(source, [layer], 'one');
    imageManifest(source, [{ ...layer, size: 3 }], 'two');
    const resolved = await resolveAll([toResolve(source, 'one'), toResolve(source, 'two')]);
    const err = await failure(() => planBundle(resolved));
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toBe(`blob ${layer.digest} is ${layer.size} bytes in image crafted.test/app:one but 3 bytes in image crafted.test/app:two`);
  });

  it('refuses a config descriptor and a layer descriptor that disagree on one digest', async () => {
    const source = new CraftedSource();
    const cfg = config(source);
    imageManifest(source, [{ ...cfg, mediaType: MediaType.OciLayerTar, size: cfg.size + 1 }], 'self', cfg);
    const err = await failure(resolveImage(toResolve(source, 'self')));
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toContain(cfg.digest);
  });
});

describe('platform and media-type strings', () => {
  it('knows the grammar', () => {
    expect(mediaTypeProblem(MediaType.OciLayerGzip)).toBeUndefined();
    expect(mediaTypeProblem('application/vnd.example+json')).toBeUndefined();
    for (const bad of ['', 'layer', 'a/b/c', 'a/b; charset=utf-8', ' a/b', 'a/\u001b', `a/${'b'.repeat(128)}`, 5]) {
      expect(mediaTypeProblem(bad)).toBeDefined();
    }
    expect(platformProblem(undefined)).toBeUndefined();
    expect(platformProblem({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBeUndefined();
    expect(platformProblem({ os: 'unknown', architecture: 'unknown' })).toBeUndefined();
    for (const bad of [
      null,
      'linux/amd64',
      { os: 'linux' },
      { os: '', architecture: 'amd64' },
      { os: 'linux/x', architecture: 'amd64' },
      { os: 'linux', architecture: 'amd 64' },
      { os: 'linux', architecture: 'amd64', variant: 8 },
      { os: 'linux', architecture: '\u001b[2J' },
    ]) {
      expect(platformProblem(bad), JSON.stringify(bad)).toBeDefined();
    }
  });

  const refused = async (build: (s: CraftedSource) => void, expected: string): Promise<void> => {
    const source = new CraftedSource();
    build(source);
    const err = await failure(resolveImage(toResolve(source, 't')));
    expect(err.code).toBe('REGISTRY');
    expect(err.message).toContain('crafted.test/app:t');
    expect(err.message).toContain(expected);
  };

  it('refuses an index child whose platform has a bad os, architecture or variant', async () => {
    await refused(
      (s) => index(s, [desc(imageManifest(s, [s.blob('l')]), { os: 'linux', architecture: 'amd64', variant: 'v 8' })], 't'),
      'platform variant "v 8"',
    );
    await refused((s) => index(s, [desc(imageManifest(s, [s.blob('l')]), { os: '', architecture: 'amd64' })], 't'), 'platform os ""');
    await refused((s) => index(s, [desc(imageManifest(s, [s.blob('l')]), { os: 'linux' })], 't'), 'platform architecture absent');
  });

  it('refuses a config whose os or architecture is not a name', async () => {
    await refused((s) => imageManifest(s, [s.blob('l')], 't', config(s, { os: 'linux', architecture: 'amd64/evil' })), 'platform architecture "amd64/evil"');
  });

  it('refuses a layer or child whose media type is not type/subtype', async () => {
    await refused((s) => imageManifest(s, [{ ...s.blob('l'), mediaType: 'tar' }], 't'), 'media type "tar"');
    await refused((s) => imageManifest(s, [{ ...s.blob('l'), mediaType: 'application/x; a=b' }], 't'), 'media type "application/x; a=b"');
  });
});

describe('bundle.json is checked before signing', () => {
  it('refuses to sign a plan that verify would reject, naming the field and the value', async () => {
    const source = new CraftedSource();
    imageManifest(source, [source.blob('l')], 'ok');
    const plan = planBundle(await resolveAll([toResolve(source, 'ok')]));
    expect(signableBundleJson(plan, new Date('2026-01-01T00:00:00Z')).length).toBeGreaterThan(0);
    plan.images[0]!.platforms = ['linux/amd 64'];
    const err = await failure(() => signableBundleJson(plan, new Date('2026-01-01T00:00:00Z')));
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toContain('refusing to sign');
    expect(err.message).toContain('/images/0/platforms/0: "linux/amd 64" is not a platform');
  });

  it('says what is wrong with each field, and the CLI prints every problem line (no "undefined")', async () => {
    const source = new CraftedSource();
    imageManifest(source, [source.blob('l')], 'ok');
    const plan = planBundle(await resolveAll([toResolve(source, 'ok')]));
    const doc = JSON.parse(serializeBundleManifest(bundleManifest(plan, new Date('2026-01-01T00:00:00Z'))).toString()) as {
      images: Array<{ platforms: string[]; mediaType: string }>;
      blobs: Array<{ mediaType: string }>;
    };
    doc.images[0]!.platforms = ['linux'];
    doc.blobs[0]!.mediaType = 'nonsense';
    const problems = validateBundleManifest(doc);
    expect(problems).toContain('/images/0/platforms/0: "linux" is not a platform (os/arch or os/arch/variant)');
    expect(problems).toContain('/blobs/0/mediaType: "nonsense" is not a media type (type/subtype, RFC 6838)');
    const rendered = renderError(new AirlockError('INTEGRITY', 'x: invalid bundle.json', { details: { problems } }));
    expect(rendered.lines.join('\n')).not.toContain('undefined');
    expect(rendered.lines).toContain('  - /blobs/0/mediaType: "nonsense" is not a media type (type/subtype, RFC 6838)');
  });
});

describe('verify: one size per digest', () => {
  it('reports a manifest that gives a carried blob another size than bundle.json', async () => {
    const source = new CraftedSource();
    const layer = source.blob('l');
    const m = imageManifest(source, [{ ...layer, size: layer.size + 1 }], 't');
    const bundle = {
      images: [{ name: 'crafted.test/app:t', digest: m.digest }],
      blobs: [
        { digest: m.digest, size: m.bytes.length, mediaType: m.mediaType },
        { digest: (m.parsed as { config: Descriptor }).config.digest, size: (m.parsed as { config: Descriptor }).config.size, mediaType: MediaType.OciConfig },
        { digest: layer.digest, size: layer.size, mediaType: layer.mediaType },
      ],
    } as unknown as Parameters<typeof checkReferences>[0];
    const problems = checkReferences(bundle, undefined, new Map([[m.digest as string, m.bytes]]));
    expect(problems.map((p) => p.message)).toEqual([`manifest ${m.digest} gives ${layer.digest} the size ${layer.size + 1}, bundle.json ${layer.size}`]);
  });
});
