import { describe, expect, it } from 'vitest';
import { isAirlockError, type ErrorCode } from '../../src/errors.js';
import { parseDigest } from '../../src/digest/digest.js';
import {
  formatAnyReference,
  formatLayoutReference,
  formatReference,
  parseAnyReference,
  parseLayoutReference,
  parseReference,
  repositoryName,
  withDigest,
  withTag,
  type ImageReference,
} from '../../src/ref/index.js';

const D = `sha256:${'f'.repeat(64)}`;
const D2 = 'sha256:15f840677a5e245d9ea199eb9b026b1539208a5183621dced7b469f6aa678115';

function caught(fn: () => unknown): { code: string; message: string; hint: string | undefined } {
  try {
    fn();
  } catch (err) {
    if (isAirlockError(err)) return { code: err.code, message: err.message, hint: err.hint };
    throw err;
  }
  throw new Error('expected an error');
}

/** [input, registry, repository, tag, digest] — tag/digest undefined when absent. */
const VALID: Array<[string, string, string, string | undefined, string | undefined]> = [
  // Docker Hub normalisation
  ['busybox', 'docker.io', 'library/busybox', 'latest', undefined],
  ['busybox:musl', 'docker.io', 'library/busybox', 'musl', undefined],
  ['docker.io/busybox', 'docker.io', 'library/busybox', 'latest', undefined],
  ['docker.io/library/busybox:1.36', 'docker.io', 'library/busybox', '1.36', undefined],
  ['index.docker.io/library/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
  ['registry-1.docker.io/library/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
  ['index.docker.io/alpine:3', 'docker.io', 'library/alpine', '3', undefined],
  ['DOCKER.IO/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
  ['Index.Docker.IO/alpine', 'docker.io', 'library/alpine', 'latest', undefined],
  ['regclient/regctl:edge', 'docker.io', 'regclient/regctl', 'edge', undefined],
  ['docker.io/regclient/regctl', 'docker.io', 'regclient/regctl', 'latest', undefined],
  ['test_com', 'docker.io', 'library/test_com', 'latest', undefined],
  ['test_com/foo', 'docker.io', 'test_com/foo', 'latest', undefined],
  ['test.com:tag', 'docker.io', 'library/test.com', 'tag', undefined],
  ['test.com:5000', 'docker.io', 'library/test.com', '5000', undefined],
  ['foo_bar.com:8080', 'docker.io', 'library/foo_bar.com', '8080', undefined],
  ['foo/foo_bar.com:8080', 'docker.io', 'foo/foo_bar.com', '8080', undefined],
  ['a/b/c/d', 'docker.io', 'a/b/c/d', 'latest', undefined],
  // hosts
  ['test.com/repo:tag', 'test.com', 'repo', 'tag', undefined],
  ['test:5000/repo', 'test:5000', 'repo', 'latest', undefined],
  ['test:5000/repo:tag', 'test:5000', 'repo', 'tag', undefined],
  ['test-com:8080/foo', 'test-com:8080', 'foo', 'latest', undefined],
  ['test.com:8080/foo', 'test.com:8080', 'foo', 'latest', undefined],
  ['quay.io/coreos/etcd:v3.3', 'quay.io', 'coreos/etcd', 'v3.3', undefined],
  ['QUAY.IO/coreos/etcd', 'quay.io', 'coreos/etcd', 'latest', undefined],
  ['Example.com:5000/repo', 'example.com:5000', 'repo', 'latest', undefined],
  ['example.com/group/image:v42', 'example.com', 'group/image', 'v42', undefined],
  ['example.com:5000/g/roup/image:a', 'example.com:5000', 'g/roup/image', 'a', undefined],
  ['e.xample.co/g/roup/image:a', 'e.xample.co', 'g/roup/image', 'a', undefined],
  ['e.xample.co/g-r.o__u_p/im----age:a', 'e.xample.co', 'g-r.o__u_p/im----age', 'a', undefined],
  ['sub-dom1.foo.com/bar/baz/quux', 'sub-dom1.foo.com', 'bar/baz/quux', 'latest', undefined],
  ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', 'sub-dom1.foo.com', 'bar/baz/quux', 'some-long-tag', undefined],
  ['b.gcr.io/test.example.com/my-app:test.example.com', 'b.gcr.io', 'test.example.com/my-app', 'test.example.com', undefined],
  ['xn--n3h.com/myimage:xn--n3h.com', 'xn--n3h.com', 'myimage', 'xn--n3h.com', undefined],
  ['xn--n3h.com:18080/foo', 'xn--n3h.com:18080', 'foo', 'latest', undefined],
  ['localhost/group/image:v42', 'localhost', 'group/image', 'v42', undefined],
  ['localhost/image', 'localhost', 'image', 'latest', undefined],
  ['localhost:5000/group/image:v42', 'localhost:5000', 'group/image', 'v42', undefined],
  ['127.0.0.1:5000/image:v42', '127.0.0.1:5000', 'image', 'v42', undefined],
  ['127.0.0.1/image', '127.0.0.1', 'image', 'latest', undefined],
  ['[::1]:5000/image', '[::1]:5000', 'image', 'latest', undefined],
  ['[::1]/image:v1', '[::1]', 'image', 'v1', undefined],
  ['[2001:DB8::1]:443/team/app', '[2001:db8::1]:443', 'team/app', 'latest', undefined],
  ['registry:5000/group/image', 'registry:5000', 'group/image', 'latest', undefined],
  ['host:65535/repo', 'host:65535', 'repo', 'latest', undefined],
  // tags
  ['repo:TAG5', 'docker.io', 'library/repo', 'TAG5', undefined],
  ['repo:_underscore', 'docker.io', 'library/repo', '_underscore', undefined],
  ['repo:1.0-BETA', 'docker.io', 'library/repo', '1.0-BETA', undefined],
  [`repo:${'t'.repeat(128)}`, 'docker.io', 'library/repo', 't'.repeat(128), undefined],
  // digests: no default tag with a digest; both kept when both are given
  [`busybox@${D}`, 'docker.io', 'library/busybox', undefined, D],
  [`test:5000/repo@${D}`, 'test:5000', 'repo', undefined, D],
  [`test:5000/repo:tag@${D}`, 'test:5000', 'repo', 'tag', D],
  [`registry:5000/group/image@${D2}`, 'registry:5000', 'group/image', undefined, D2],
  [`ghcr.io/org/app:v1@${D2}`, 'ghcr.io', 'org/app', 'v1', D2],
  [`localhost/app@${D2}`, 'localhost', 'app', undefined, D2],
  // length: 255 characters of normalised name, tag not counted
  [`quay.io/${'a'.repeat(247)}:tag-puts-this-over-max`, 'quay.io', 'a'.repeat(247), 'tag-puts-this-over-max', undefined],
  [`${'a/'.repeat(122)}a`, 'docker.io', `${'a/'.repeat(122)}a`, 'latest', undefined],
];

/** [input, code, substring of the message] */
const INVALID: Array<[string, ErrorCode, string]> = [
  ['', 'REF_INVALID', 'empty reference'],
  [':justtag', 'REF_INVALID', 'missing repository name'],
  [`@${D}`, 'REF_INVALID', 'missing repository name before "@"'],
  ['busybox:', 'REF_INVALID', 'empty tag'],
  ['busybox@', 'REF_INVALID', 'is not a valid sha256 digest'],
  ['Busybox', 'REF_INVALID', 'contains upper-case letters'],
  ['docker.io/Upper/Case/Repo:tag', 'REF_INVALID', 'contains upper-case letters'],
  ['quay.io/CoreOS/etcd', 'REF_INVALID', 'contains upper-case letters'],
  ['EXAMPLE/group-image:V42', 'REF_INVALID', 'contains upper-case letters'],
  ['aa/asdf$$^/aa', 'REF_INVALID', 'path component "asdf$$^"'],
  ['project/-image:tag', 'REF_INVALID', 'path component "-image"'],
  ['project/image-:tag', 'REF_INVALID', 'path component "image-"'],
  ['project/image___x:tag', 'REF_INVALID', 'path component "image___x"'],
  ['project/image..x', 'REF_INVALID', 'path component "image..x"'],
  ['project/_image', 'REF_INVALID', 'path component "_image"'],
  ['project/star*:tag', 'REF_INVALID', 'path component "star*"'],
  ['project/image:tag^1', 'REF_INVALID', 'tag "tag^1" is not valid'],
  ['project/image:.tag', 'REF_INVALID', 'tag ".tag" is not valid'],
  ['project/image:-tag', 'REF_INVALID', 'tag "-tag" is not valid'],
  [`repo:${'t'.repeat(129)}`, 'REF_INVALID', 'is not valid'],
  ['repo:a:b', 'REF_INVALID', 'path component "repo:a"'],
  ['quay.io//etcd', 'REF_INVALID', 'empty path component'],
  ['quay.io/coreos/', 'REF_INVALID', 'empty path component'],
  ['/busybox', 'REF_INVALID', 'empty path component'],
  ['quay.io/', 'REF_INVALID', 'missing repository name'],
  [`${'a/'.repeat(128)}a:tag`, 'REF_INVALID', 'longer than 255'],
  [`${'a/'.repeat(127)}a:tag`, 'REF_INVALID', 'name is 265 characters with its registry, longer than 255'],
  [`${'a'.repeat(240)}`, 'REF_INVALID', 'name is 258 characters'],
  [`quay.io/${'a'.repeat(248)}`, 'REF_INVALID', 'name is 256 characters with its registry'],
  ['-docker.io/project/image:tag', 'REF_INVALID', 'host "-docker.io" is not a valid host name'],
  ['docker-.io/project/image:tag', 'REF_INVALID', 'host "docker-.io" is not a valid host name'],
  ['exa_mple.com/image', 'REF_INVALID', 'is not a valid host name'],
  ['example..com/image', 'REF_INVALID', 'is not a valid host name'],
  ['host:port/repo', 'REF_INVALID', 'port "port" of host host'],
  ['host:/repo', 'REF_INVALID', 'port "" of host host'],
  ['host:0/repo', 'REF_INVALID', 'is not a number from 1 to 65535'],
  ['host:65536/repo', 'REF_INVALID', 'is not a number from 1 to 65535'],
  [':5000/repo', 'REF_INVALID', 'has no name before the port'],
  ['[::1/repo', 'REF_INVALID', 'has "[" without "]"'],
  ['[::1]x/repo', 'REF_INVALID', 'unexpected "x" after IPv6 address'],
  ['[zz::1]/repo', 'REF_INVALID', 'is not a valid IPv6 address'],
  ['[::1]:99999/repo', 'REF_INVALID', 'is not a number from 1 to 65535'],
  ['busy box', 'REF_INVALID', 'contains white space'],
  [' busybox', 'REF_INVALID', 'contains white space'],
  ['docker://busybox', 'REF_INVALID', 'has a URL scheme'],
  ['https://quay.io/coreos/etcd', 'REF_INVALID', 'has a URL scheme'],
  ['project/image@sha256:12345', 'REF_INVALID', 'is not a valid sha256 digest'],
  [`project/image@sha256:gggg${'f'.repeat(60)}`, 'REF_INVALID', 'is not a valid sha256 digest'],
  [`project/image@sha256:${'F'.repeat(64)}`, 'REF_INVALID', 'is not a valid sha256 digest'],
  [`project/image@${D}@${D}`, 'REF_INVALID', 'is not a valid sha256 digest'],
  [`validname@sha512:${'f'.repeat(128)}`, 'UNSUPPORTED', 'only sha256 digests are supported'],
  [`xn--7o8h.com/myimage:xn--7o8h.com@sha512:${'f'.repeat(128)}`, 'UNSUPPORTED', 'only sha256'],
  [`validname@invaliddigest:${'f'.repeat(64)}`, 'UNSUPPORTED', 'only sha256'],
];

describe('parseReference', () => {
  it.each(VALID)('%s', (input, registry, repository, tag, digest) => {
    const expected: ImageReference = { registry, repository };
    if (tag !== undefined) expected.tag = tag;
    if (digest !== undefined) expected.digest = parseDigest(digest);
    const ref = parseReference(input);
    expect(ref).toStrictEqual(expected);
    // The canonical form parses back to the same reference.
    expect(parseReference(formatReference(ref))).toStrictEqual(ref);
  });

  it.each(INVALID)('rejects %j', (input, code, message) => {
    const err = caught(() => parseReference(input));
    expect(err.code).toBe(code);
    expect(err.message).toContain(message);
    if (input !== '') expect(err.message).toContain(JSON.stringify(input).slice(1, 20));
  });

  it('names the input and the fix for upper case', () => {
    expect(caught(() => parseReference('quay.io/CoreOS/etcd:v3'))).toEqual({
      code: 'REF_INVALID',
      message: 'invalid reference "quay.io/CoreOS/etcd:v3": repository "CoreOS/etcd" contains upper-case letters',
      hint: 'repository names must be lower case: coreos/etcd',
    });
  });

  it('leaves the tag off when asked, for repositories filtered by tag', () => {
    expect(parseReference('quay.io/coreos/etcd', { defaultTag: false })).toStrictEqual({
      registry: 'quay.io',
      repository: 'coreos/etcd',
    });
    expect(parseReference('busybox:musl', { defaultTag: false }).tag).toBe('musl');
  });
});

describe('formatReference and helpers', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:musl', 'docker.io/library/busybox:musl'],
    [`quay.io/coreos/etcd@${D}`, `quay.io/coreos/etcd@${D}`],
    [`LOCALHOST:5000/app:v1@${D}`, `localhost:5000/app:v1@${D}`],
    ['[::1]:5000/app', '[::1]:5000/app:latest'],
  ])('%s -> %s', (input, canonical) => {
    expect(formatReference(parseReference(input))).toBe(canonical);
  });

  it('repositoryName drops tag and digest', () => {
    expect(repositoryName(parseReference(`busybox:musl@${D}`))).toBe('docker.io/library/busybox');
  });

  it('withDigest keeps the tag and validates the digest', () => {
    const ref = parseReference('quay.io/coreos/etcd:v3.3');
    expect(formatReference(withDigest(ref, D))).toBe(`quay.io/coreos/etcd:v3.3@${D}`);
    expect(formatReference(withDigest(parseReference(`quay.io/a@${D2}`, { defaultTag: false }), D))).toBe(`quay.io/a@${D}`);
    expect(caught(() => withDigest(ref, 'sha256:abc')).code).toBe('REF_INVALID');
  });

  it('withTag drops the digest and validates the tag', () => {
    const ref = parseReference(`quay.io/coreos/etcd:v3.3@${D}`);
    expect(withTag(ref, 'v3.4.1')).toStrictEqual({ registry: 'quay.io', repository: 'coreos/etcd', tag: 'v3.4.1' });
    expect(caught(() => withTag(ref, 'bad tag')).message).toBe('invalid reference "quay.io/coreos/etcd:bad tag": tag "bad tag" is not valid');
  });
});

describe('parseLayoutReference', () => {
  it.each([
    ['oci:/srv/layout', { dir: '/srv/layout' }],
    ['oci:./layout', { dir: './layout' }],
    ['oci:layout:v1', { dir: 'layout', name: 'v1' }],
    ['oci:/srv/layout:quay.io/coreos/etcd:v3.3', { dir: '/srv/layout', name: 'quay.io/coreos/etcd:v3.3' }],
    ['oci:/tmp/My Layout:Latest', { dir: '/tmp/My Layout', name: 'Latest' }],
    ['oci:dir:busybox@sha256:abc', { dir: 'dir', name: 'busybox@sha256:abc' }],
    ['oci:dir:a--b+c', { dir: 'dir', name: 'a--b+c' }],
  ])('%s', (input, expected) => {
    expect(parseLayoutReference(input)).toStrictEqual(expected);
    expect(formatLayoutReference(parseLayoutReference(input))).toBe(input);
  });

  it.each([
    ['oci:', 'empty directory'],
    ['oci::v1', 'empty directory'],
    ['oci:/srv/layout:', 'empty image name'],
    ['oci:dir:bad name', 'is not a valid OCI ref name'],
    ['oci:dir:a//b', 'is not a valid OCI ref name'],
    ['oci:dir:-v1', 'is not a valid OCI ref name'],
    ['/srv/layout', 'does not start with "oci:"'],
  ])('rejects %j', (input, message) => {
    const err = caught(() => parseLayoutReference(input));
    expect(err.code).toBe('REF_INVALID');
    expect(err.message.startsWith(`invalid layout reference ${JSON.stringify(input)}: `)).toBe(true);
    expect(err.message).toContain(message);
  });
});

describe('parseAnyReference', () => {
  it('tells layouts from registries', () => {
    expect(parseAnyReference('oci:/srv/layout:v1')).toStrictEqual({ kind: 'layout', dir: '/srv/layout', name: 'v1' });
    expect(parseAnyReference('busybox')).toStrictEqual({
      kind: 'registry',
      ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' },
    });
    expect(parseAnyReference('docker.io/library/oci:v1')).toMatchObject({ kind: 'registry' });
    expect(parseAnyReference('quay.io/x', { defaultTag: false })).toStrictEqual({
      kind: 'registry',
      ref: { registry: 'quay.io', repository: 'x' },
    });
  });

  it("drops skopeo's docker:// (only here: parseReference keeps refusing a scheme)", () => {
    expect(parseAnyReference('docker://busybox')).toStrictEqual({
      kind: 'registry',
      ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' },
    });
    expect(parseAnyReference(`docker://127.0.0.1:5000/app@${D}`)).toStrictEqual({
      kind: 'registry',
      ref: { registry: '127.0.0.1:5000', repository: 'app', digest: D },
    });
    expect(parseAnyReference('docker://quay.io/coreos/etcd', { defaultTag: false })).toStrictEqual({
      kind: 'registry',
      ref: { registry: 'quay.io', repository: 'coreos/etcd' },
    });
    expect(caught(() => parseAnyReference('docker://')).message).toContain('empty reference');
    expect(caught(() => parseAnyReference('docker://https://quay.io/x')).message).toContain('has a URL scheme');
    expect(caught(() => parseReference('docker://busybox')).code).toBe('REF_INVALID');
  });

  it.each([
    'oci-archive:/tmp/etcd.tar',
    'containers-storage:quay.io/coreos/etcd:v3.5.0',
    'docker-archive:etcd.tar:quay.io/coreos/etcd:v3.5.0',
    'docker-daemon:busybox:musl',
  ])('refuses another transport of skopeo: %s', (text) => {
    const err = caught(() => parseAnyReference(text));
    expect(err.code).toBe('USAGE');
    expect(err.message).toMatch(/airlock does not read the [a-z-]+: transport/);
    expect(err.hint).toContain('oci:DIR[:NAME]');
  });

  it('formats either kind', () => {
    expect(formatAnyReference(parseAnyReference('oci:l:v1'))).toBe('oci:l:v1');
    expect(formatAnyReference(parseAnyReference('alpine'))).toBe('docker.io/library/alpine:latest');
  });

  it('passes errors through', () => {
    expect(caught(() => parseAnyReference('oci:')).code).toBe('REF_INVALID');
    expect(caught(() => parseAnyReference('Alpine')).code).toBe('REF_INVALID');
  });
});
