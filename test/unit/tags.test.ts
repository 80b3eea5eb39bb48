import { describe, expect, it } from 'vitest';
import { listRepositoryTags, parseTagsReference, tagFilterFromFlags } from '../../src/ops/tags.js';
import type { Source } from '../../src/transport/types.js';

/** A source whose only ability is listing these tags (and recording the repository asked). */
function tagSource(tags: string[], asked: string[] = []): Source {
  return {
    description: 'test source',
    getManifest: () => Promise.reject(new Error('unused')),
    openBlob: () => Promise.reject(new Error('unused')),
    listTags: (repository: string) => {
      asked.push(repository);
      return Promise.resolve(tags);
    },
  };
}

const ETCD = ['v3.5.0', 'latest', 'v3.4.0-rc.1', 'v2.3.8', '3.4.1', 'v3.3.0', 'v3.5.0'];

describe('airlock tags: selection', () => {
  it('lists every tag (sorted, once) and, without a filter, selects every valid one', async () => {
    const asked: string[] = [];
    const r = await listRepositoryTags({ ref: parseTagsReference('docker://quay.io/coreos/etcd'), source: tagSource(ETCD, asked) }, undefined);
    expect(asked).toEqual(['coreos/etcd']);
    expect(r).toEqual({
      repository: 'quay.io/coreos/etcd',
      tags: ['3.4.1', 'latest', 'v2.3.8', 'v3.3.0', 'v3.4.0-rc.1', 'v3.5.0'],
      selected: ['3.4.1', 'latest', 'v2.3.8', 'v3.3.0', 'v3.4.0-rc.1', 'v3.5.0'],
      invalid: [],
      filtered: false,
    });
  });

  it('selects as an image list filter does: semver order, include and exclude', async () => {
    const filter = tagFilterFromFlags({ semver: '>=3.0.0 <4.0.0', exclude: '^3' });
    const r = await listRepositoryTags({ ref: parseTagsReference('quay.io/coreos/etcd'), source: tagSource(ETCD) }, filter);
    expect(r.selected).toEqual(['v3.3.0', 'v3.5.0']);
    expect(r.filtered).toBe(true);
    const inc = await listRepositoryTags({ ref: parseTagsReference('quay.io/coreos/etcd'), source: tagSource(ETCD) }, tagFilterFromFlags({ include: 'rc' }));
    expect(inc.selected).toEqual(['v3.4.0-rc.1']);
  });

  it('never selects a listed tag outside the tag grammar (bundle create skips it too)', async () => {
    const r = await listRepositoryTags(
      { ref: parseTagsReference('quay.io/x'), source: tagSource(['v1', '../../v2/x', '.hidden']) },
      tagFilterFromFlags({ include: '' }),
    );
    expect(r.selected).toEqual(['v1']);
    expect(r.invalid).toEqual(['../../v2/x', '.hidden']);
  });

  it('lists the names of a layout under oci:DIR:NAME', async () => {
    const asked: string[] = [];
    const r = await listRepositoryTags({ ref: parseTagsReference('oci:/srv/seed:quay.io/coreos/etcd'), source: tagSource(['v3.3'], asked) }, undefined);
    expect(asked).toEqual(['quay.io/coreos/etcd']);
    expect(r.repository).toBe('oci:/srv/seed:quay.io/coreos/etcd');
  });
});

describe('airlock tags: arguments', () => {
  it('refuses a tag or digest: that is an image, not a repository', () => {
    expect(() => parseTagsReference('quay.io/coreos/etcd:v3.5.0')).toThrow(
      expect.objectContaining({ code: 'USAGE', hint: 'write the repository alone: airlock tags quay.io/coreos/etcd' }),
    );
    expect(() => parseTagsReference(`busybox@sha256:${'f'.repeat(64)}`)).toThrow('names an image, not a repository');
  });

  it('compiles no filter without flags, and names the flag of a bad value as a usage error', () => {
    expect(tagFilterFromFlags({})).toBeUndefined();
    expect(() => tagFilterFromFlags({ semver: 'three' })).toThrow(
      expect.objectContaining({ code: 'USAGE', message: '--semver: "three" is not a valid semver range' }),
    );
    expect(() => tagFilterFromFlags({ include: '(v3' })).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});
