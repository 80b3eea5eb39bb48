import { describe, expect, it } from 'vitest';
import {
  BUNDLE_MEDIA_TYPE,
  bundleId,
  parseBundleManifest,
  serializeBundleManifest,
  validateBundleManifest,
  type BundleManifest,
} from '../../src/bundle/manifest.js';
import { sha256Digest } from '../../src/digest/digest.js';
import { isAirlockError } from '../../src/errors.js';

const d = (s: string) => sha256Digest(s);

function good(): BundleManifest {
  return {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    created: '2024-05-01T12:00:00Z',
    creator: 'airlock/0.1.0',
    images: [
      {
        name: 'quay.io/coreos/etcd:v3.3',
        source: 'quay.io/coreos/etcd:v3.3',
        digest: d('index'),
        mediaType: 'application/vnd.oci.image.index.v1+json',
        size: 5,
        platforms: ['linux/amd64', 'linux/arm/v7'],
      },
    ],
    blobs: [
      { digest: d('index'), size: 5, mediaType: 'application/vnd.oci.image.index.v1+json' },
      { digest: d('layer'), size: 100, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
    ],
    layout: { 'oci-layout': { digest: d('l'), size: 30 }, 'index.json': { digest: d('i'), size: 200 } },
    totals: { images: 1, blobs: 2, bytes: 105, referencedBytes: 105 },
  };
}

describe('bundle manifest', () => {
  it('accepts a good manifest, with and without the delta fields', () => {
    expect(validateBundleManifest(good())).toEqual([]);
    const delta = {
      ...good(),
      totals: { ...good().totals, referencedBytes: 106, externalBytes: 1 },
      parents: [{ id: d('parent'), created: '2024-04-01T12:00:00Z', keyId: d('key'), kind: 'bundle' as const }],
      external: [{ digest: d('ext'), size: 1, mediaType: 'application/octet-stream', bundle: d('parent') }],
    };
    expect(validateBundleManifest(delta)).toEqual([]);
    expect(validateBundleManifest({ ...delta, parents: [{ ...delta.parents[0], kind: 'other' }] }).join()).toMatch(/kind/);
    expect(validateBundleManifest({ ...delta, parents: [d('parent')] }).join()).toMatch(/parents\/0/);
    expect(validateBundleManifest({ ...delta, parents: [{ ...delta.parents[0], id: d('other') }] }).join()).toMatch(/which is not a parent/);
    expect(validateBundleManifest({ ...delta, parents: [delta.parents[0], delta.parents[0]] }).join()).toMatch(/listed twice/);
    expect(validateBundleManifest({ ...delta, totals: { ...delta.totals, externalBytes: 5 } }).join()).toMatch(/externalBytes is 5/);
    const { parents: _p, ...orphan } = delta;
    expect(validateBundleManifest(orphan).join()).toMatch(/external blobs or totals.externalBytes without parents/);
    const bytes = serializeBundleManifest(good());
    expect(parseBundleManifest(bytes, 'b.tar.zst')).toEqual(good());
    expect(bundleId(bytes)).toBe(sha256Digest(bytes));
  });

  it.each<[string, (m: Record<string, any>) => void, RegExp]>([
    ['wrong version', (m) => (m.schemaVersion = 2), /schemaVersion/],
    ['wrong media type', (m) => (m.mediaType = 'application/json'), /mediaType/],
    ['local time', (m) => (m.created = '2024-05-01T12:00:00+02:00'), /created/],
    ['impossible date', (m) => (m.created = '2024-02-31T12:00:00Z'), /not a valid date|created/],
    ['unknown field', (m) => (m.extra = true), /unknown field "extra"/],
    ['bad digest', (m) => (m.blobs[1].digest = 'sha256:XYZ'), /blobs\/1\/digest/],
    ['negative size', (m) => (m.blobs[1].size = -1), /blobs\/1\/size/],
    ['fractional size', (m) => (m.blobs[1].size = 1.5), /blobs\/1\/size/],
    ['missing layout', (m) => delete m.layout, /layout/],
    ['bad platform', (m) => (m.images[0].platforms = ['linux']), /platforms/],
    ['duplicate blob', (m) => ((m.blobs = [m.blobs[0], m.blobs[0], m.blobs[1]]), (m.totals.blobs = 3), (m.totals.bytes = 110)), /listed twice/],
    ['wrong totals', (m) => (m.totals.bytes = 1), /totals.bytes is 1/],
    ['image manifest absent', (m) => (m.images[0].digest = d('other')), /is not in blobs/],
  ])('rejects %s', (_name, mutate, pattern) => {
    const m = good() as unknown as Record<string, any>;
    mutate(m);
    const problems = validateBundleManifest(m);
    expect(problems.join('; ')).toMatch(pattern);
  });

  it('throws INTEGRITY naming the problems for bad bytes', () => {
    for (const bytes of [Buffer.from('not json'), Buffer.from('{"schemaVersion":1}')]) {
      let err: unknown;
      try {
        parseBundleManifest(bytes, 'b.tar.zst');
      } catch (e) {
        err = e;
      }
      expect(isAirlockError(err, 'INTEGRITY')).toBe(true);
      expect((err as Error).message).toMatch(/^b\.tar\.zst: invalid bundle\.json: /);
    }
  });
});
