import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError, type AirlockError } from '../../src/errors.js';
import { compileTagFilter, imageListFromRefs, loadImageList, MAX_IMAGE_LIST_BYTES, selectTags, type ImageList } from '../../src/imagelist/index.js';

const D = `sha256:${'a'.repeat(64)}`;
let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-imagelist-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Write `text` to a fresh file and load it; returns the list and the file path. */
async function load(text: string | Buffer, name = `images-${++counter}.yaml`): Promise<{ list: ImageList; path: string }> {
  const path = join(dir, name);
  await writeFile(path, text);
  return { list: await loadImageList(path), path };
}

/** Write `text`, load it, and return the error (path prefix replaced by "F"). */
async function loadError(text: string | Buffer): Promise<{ code: string; message: string; hint?: string | undefined; problems?: string[] }> {
  const path = join(dir, `bad-${++counter}.yaml`);
  await writeFile(path, text);
  try {
    await loadImageList(path);
  } catch (err) {
    if (!isAirlockError(err)) throw err;
    const e = err as AirlockError;
    const problems = (e.details?.['problems'] as Array<{ message: string }> | undefined)?.map((p) => p.message.replaceAll(path, 'F'));
    return { code: e.code, message: e.message.replaceAll(path, 'F'), hint: e.hint, ...(problems === undefined ? {} : { problems }) };
  }
  throw new Error('expected an error');
}

describe('loadImageList: valid files', () => {
  it('loads samples/images.yaml', async () => {
    const list = await loadImageList('samples/images.yaml');
    expect(list.source).toBe('samples/images.yaml');
    expect(list.platforms).toEqual([
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ]);
    expect(list.entries).toEqual([
      {
        ref: { kind: 'registry', ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'musl' } },
        platforms: list.platforms,
        source: 'samples/images.yaml:18: images[0]',
      },
      {
        ref: { kind: 'registry', ref: { registry: 'quay.io', repository: 'coreos/etcd' } },
        tagFilter: { semver: '>=3.0.0 <4.0.0' },
        platforms: list.platforms,
        source: 'samples/images.yaml:22: images[1]',
      },
    ]);
  });

  it('reads every kind of entry from YAML', async () => {
    const { list, path } = await load(
      [
        'version: 1',
        'platforms: [linux/amd64, linux/arm64/v8]',
        'images:',
        '  - busybox',
        '  - ref: quay.io/coreos/etcd',
        '    tags: { include: "^v3\\\\.", exclude: "-rc", semver: "^3" }',
        `  - ref: ghcr.io/org/app@${D}`,
        '    platforms: [linux/arm/v7]',
        `  - ghcr.io/org/app:v1@${D}`,
        '  - oci:./layout:v1',
        '  - ref: oci:./layout',
        '  - ref: quay.io/coreos/etcd',
        '    tags: {}',
        '',
      ].join('\n'),
    );
    const amd64 = { os: 'linux', architecture: 'amd64' };
    const arm64 = { os: 'linux', architecture: 'arm64', variant: 'v8' };
    expect(list.entries.map((e) => e.ref)).toEqual([
      { kind: 'registry', ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' } },
      { kind: 'registry', ref: { registry: 'quay.io', repository: 'coreos/etcd' } },
      { kind: 'registry', ref: { registry: 'ghcr.io', repository: 'org/app', digest: D } },
      { kind: 'registry', ref: { registry: 'ghcr.io', repository: 'org/app', tag: 'v1', digest: D } },
      { kind: 'layout', dir: './layout', name: 'v1' },
      { kind: 'layout', dir: './layout' },
      { kind: 'registry', ref: { registry: 'quay.io', repository: 'coreos/etcd' } },
    ]);
    expect(list.entries[1]!.tagFilter).toEqual({ include: /^v3\./, exclude: /-rc/, semver: '^3' });
    expect(list.entries[6]!.tagFilter).toEqual({});
    expect(list.entries.filter((e) => e.tagFilter !== undefined)).toHaveLength(2);
    expect(list.entries.map((e) => e.platforms)).toEqual([
      [amd64, arm64],
      [amd64, arm64],
      [{ os: 'linux', architecture: 'arm', variant: 'v7' }],
      [amd64, arm64],
      [amd64, arm64],
      [amd64, arm64],
      [amd64, arm64],
    ]);
    expect(list.entries.map((e) => e.source)).toEqual([4, 5, 7, 9, 10, 11, 12].map((line, i) => `${path}:${line}: images[${i}]`));
  });

  it('reads JSON, and leaves platforms out when none are given', async () => {
    const json = JSON.stringify({ version: 1, images: ['busybox:musl', { ref: 'quay.io/coreos/etcd', tags: { semver: '>=3.0.0 <4.0.0' } }] }, null, 2);
    const { list, path } = await load(json, 'images.json');
    expect(list).toEqual({
      source: path,
      entries: [
        {
          ref: { kind: 'registry', ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'musl' } },
          source: `${path}:4: images[0]`,
        },
        {
          ref: { kind: 'registry', ref: { registry: 'quay.io', repository: 'coreos/etcd' } },
          tagFilter: { semver: '>=3.0.0 <4.0.0' },
          source: `${path}:5: images[1]`,
        },
      ],
    });
    expect(list.entries[0]!.platforms).toBeUndefined();
  });

  it('reads single-line JSON', async () => {
    const { list } = await load('{"version":1,"images":["alpine"]}', 'one.json');
    expect(list.entries).toHaveLength(1);
  });
});

describe('loadImageList: docker:// references', () => {
  it('drops the transport skopeo writes, with and without a tag filter', async () => {
    const { list } = await load('version: 1\nimages:\n  - docker://busybox:musl\n  - ref: docker://quay.io/coreos/etcd\n    tags: { semver: "^3" }\n');
    expect(list.entries.map((e) => e.ref)).toEqual([
      { kind: 'registry', ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'musl' } },
      { kind: 'registry', ref: { registry: 'quay.io', repository: 'coreos/etcd' } },
    ]);
  });
});

describe('loadImageList: invalid files', () => {
  const HEAD = 'version: 1\nimages:\n';
  it.each<[string, string, string]>([
    ['empty file', '', 'F: the file is empty'],
    ['only a comment', '# nothing\n', 'F: the file is empty'],
    ['a list at top level', '- busybox\n', 'F:1: must be a mapping (YAML) or object (JSON), not a list'],
    ['a scalar at top level', 'busybox\n', 'F:1: must be a mapping (YAML) or object (JSON), not string "busybox"'],
    ['no version', 'images: [busybox]\n', 'F:1: missing "version"'],
    ['no images', 'version: 1\n', 'F:1: missing "images"'],
    ['wrong version', 'version: 2\nimages: [busybox]\n', 'F:1: version: unsupported version 2'],
    ['version as a string', 'version: "1"\nimages: [busybox]\n', 'F:1: version: unsupported version "1"'],
    ['unknown top-level field', 'version: 1\nimage: [busybox]\nimages: [busybox]\n', 'F:2: image: unknown field "image"'],
    ['empty images', 'version: 1\nimages: []\n', 'F:2: images: must not be empty'],
    ['images not a list', 'version: 1\nimages: busybox\n', 'F:2: images: must be an array, not string "busybox"'],
    ['a number entry', `${HEAD}  - 42\n`, 'F:3: images[0]: must be a reference or an object with "ref", not number 42'],
    ['a null entry', `${HEAD}  - busybox\n  -\n`, 'F:4: images[1]: must be a reference or an object with "ref", not empty'],
    ['an empty string', `${HEAD}  - ""\n`, 'F:3: images[0]: must not be empty'],
    ['entry without ref', `${HEAD}  - tags: { semver: "^3" }\n`, 'F:3: images[0]: missing "ref"'],
    ['unknown entry field', `${HEAD}  - ref: busybox\n    name: x\n`, 'F:4: images[0].name: unknown field "name"'],
    ['unknown filter field', `${HEAD}  - ref: quay.io/coreos/etcd\n    tags:\n      regex: "^v3"\n`, 'F:5: images[0].tags.regex: unknown field "regex"'],
    ['ref not a string', `${HEAD}  - ref: 3\n`, 'F:3: images[0].ref: must be a string, not number 3'],
    ['semver not a string', `${HEAD}  - ref: quay.io/coreos/etcd\n    tags: { semver: 3 }\n`, 'F:4: images[0].tags.semver: must be a string, not number 3'],
    ['bad platform', `${HEAD}  - ref: busybox\n    platforms: [linux]\n`, 'F:4: images[0].platforms[0]: "linux" is not a platform'],
    [
      'bad default platform',
      'version: 1\nplatforms: [linux/amd64, "linux/arm64/v8/x"]\nimages: [busybox]\n',
      'F:2: platforms[1]: "linux/arm64/v8/x" is not a platform',
    ],
    ['duplicate platform', 'version: 1\nplatforms: [linux/amd64, linux/amd64]\nimages: [busybox]\n', 'F:2: platforms[1]: "linux/amd64" is listed twice'],
    ['empty platforms', `${HEAD}  - ref: busybox\n    platforms: []\n`, 'F:4: images[0].platforms: must not be empty'],
    [
      'invalid reference',
      `${HEAD}  - busybox\n  - Busybox:musl\n`,
      'F:4: images[1]: invalid reference "Busybox:musl": repository "Busybox" contains upper-case letters',
    ],
    [
      'invalid ref field',
      `${HEAD}  - ref: quay.io//etcd\n`,
      'F:3: images[0].ref: invalid reference "quay.io//etcd": repository "/etcd" has an empty path component',
    ],
    [
      'sha512 digest',
      `${HEAD}  - busybox@sha512:${'f'.repeat(128)}\n`,
      `F:3: images[0]: reference "busybox@sha512:${'f'.repeat(128)}": digest sha512:${'f'.repeat(128)}: only sha256 digests are supported`,
    ],
    ['bad layout reference', `${HEAD}  - "oci:"\n`, 'F:3: images[0]: invalid layout reference "oci:": empty directory'],
    [
      'another transport of skopeo',
      `${HEAD}  - ref: "oci-archive:/srv/etcd.tar"\n`,
      'F:3: images[0].ref: "oci-archive:/srv/etcd.tar": airlock does not read the oci-archive: transport',
    ],
    [
      'tag and filter',
      `${HEAD}  - ref: quay.io/coreos/etcd:v3.3\n    tags: { semver: "^3" }\n`,
      'F:3: images[0].ref: "quay.io/coreos/etcd:v3.3" names a tag or digest, but the entry also has a tags filter',
    ],
    [
      'digest and filter',
      `${HEAD}  - ref: quay.io/coreos/etcd@${D}\n    tags: {}\n`,
      `F:3: images[0].ref: "quay.io/coreos/etcd@${D}" names a tag or digest, but the entry also has a tags filter`,
    ],
    [
      'layout and filter',
      `${HEAD}  - ref: oci:./l\n    tags: { include: v1 }\n`,
      'F:4: images[0].tags: a tags filter applies to registry repositories, not to OCI layouts',
    ],
    [
      'bad semver range',
      `${HEAD}  - busybox\n  - ref: quay.io/coreos/etcd\n    tags:\n      semver: three\n`,
      'F:6: images[1].tags.semver: "three" is not a valid semver range',
    ],
    [
      'unfinished semver range',
      `${HEAD}  - ref: quay.io/coreos/etcd\n    tags: { semver: ">=3.0.0 <" }\n`,
      'F:4: images[0].tags.semver: ">=3.0.0 <" is not a valid semver range',
    ],
    [
      'bad include regex',
      `${HEAD}  - ref: quay.io/coreos/etcd\n    tags:\n      include: "(v3"\n`,
      'F:5: images[0].tags.include: "(v3" is not a valid regular expression: Unterminated group',
    ],
    [
      'bad exclude regex',
      `${HEAD}  - ref: quay.io/coreos/etcd\n    tags:\n      exclude: "[rc"\n`,
      'F:5: images[0].tags.exclude: "[rc" is not a valid regular expression: Unterminated character class',
    ],
    ['YAML syntax error', 'version: 1\nimages: [busybox\n', 'F:3: not valid YAML or JSON:'],
    ['bad indentation', 'version: 1\nimages:\n  - busybox\n - alpine\n', 'F:4: not valid YAML or JSON:'],
    ['duplicate key', 'version: 1\nversion: 1\nimages: [busybox]\n', 'F:2: not valid YAML or JSON: Map keys must be unique'],
    ['JSON syntax error', '{"version": 1,\n "images": ["busybox"]\n', 'F:3: not valid YAML or JSON:'],
    [
      'tags not a mapping',
      `${HEAD}  - ref: quay.io/coreos/etcd\n    tags: all\n`,
      'F:4: images[0].tags: must be a mapping (YAML) or object (JSON), not string "all"',
    ],
    [
      'two documents',
      'version: 1\nimages: [a]\n---\nversion: 1\nimages: [b]\n',
      'F:3: not valid YAML or JSON: more than one document (---); put every image in one document',
    ],
    ['unknown alias', 'version: 1\nimages: [*x]\n', 'F:1: not valid YAML: Unresolved alias (the anchor must be set before the alias): x'],
  ])('%s', async (_name, text, message) => {
    const err = await loadError(text);
    expect(err.code).toBe('INPUT_INVALID');
    if (message.endsWith(':')) expect(err.message.startsWith(message)).toBe(true);
    else expect(err.message).toBe(message);
    expect(err.message).not.toContain('\n');
  });

  it('gives hints', async () => {
    expect((await loadError(`version: 1\nimages:\n  - ref: busybox\n    tag: x\n`)).hint).toBe('allowed here: ref, tags, platforms, as');
    expect((await loadError(`version: 1\nimages: [busybox]\nplatforms: [amd64]\n`)).hint).toBe(
      'write os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8',
    );
    expect((await loadError('version: 1\nimages: [Busybox]\n')).hint).toBe('repository names must be lower case: busybox');
  });

  it('refuses a missing file, a directory, binary content and a huge file', async () => {
    await expect(loadImageList(join(dir, 'nope.yaml'))).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: `${join(dir, 'nope.yaml')}: no such file or directory`,
    });
    const sub = join(dir, 'subdir');
    await mkdir(sub);
    await expect(loadImageList(sub)).rejects.toMatchObject({ code: 'INPUT_INVALID', message: `${sub} is a directory, expected a file (an image list)` });
    // A FIFO would block the read forever: refused at once.
    const fifo = join(dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    await expect(loadImageList(fifo)).rejects.toMatchObject({
      code: 'INPUT_INVALID',
      message: `${fifo}: a FIFO (named pipe), not a regular file (an image list)`,
    });
    expect(await loadError(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x01]))).toMatchObject({
      code: 'INPUT_INVALID',
      message: 'F: binary content, not a YAML or JSON image list',
    });
    const huge = `# ${'x'.repeat(MAX_IMAGE_LIST_BYTES)}\n`;
    expect((await loadError(huge)).message).toBe(`F: ${huge.length} bytes, more than an image list may have (${MAX_IMAGE_LIST_BYTES})`);
  });

  it('refuses an alias bomb', async () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 8; i++)
      lines.push(
        `${'abcdefgh'[i]}: &${'abcdefgh'[i]} [${Array(10)
          .fill(`*${'abcdefgh'[i - 1]}`)
          .join(', ')}]`,
      );
    expect(await loadError(`version: 1\nimages: [busybox]\n${lines.join('\n')}\n`)).toMatchObject({
      code: 'INPUT_INVALID',
      message: 'F:1: too many YAML alias expansions (more than 100)',
    });
  });
});

describe('imageListFromRefs', () => {
  it('parses every reference and applies platforms', () => {
    const amd64 = { os: 'linux', architecture: 'amd64' };
    expect(imageListFromRefs(['busybox:musl', 'oci:./layout:v1'], { platforms: [amd64] })).toEqual({
      source: 'command line',
      platforms: [amd64],
      entries: [
        {
          ref: { kind: 'registry', ref: { registry: 'docker.io', repository: 'library/busybox', tag: 'musl' } },
          platforms: [amd64],
          source: 'command line',
        },
        { ref: { kind: 'layout', dir: './layout', name: 'v1' }, platforms: [amd64], source: 'command line' },
      ],
    });
    expect(imageListFromRefs([])).toEqual({ source: 'command line', entries: [] });
  });

  it('passes reference errors through with their code', () => {
    expect(() => imageListFromRefs(['busybox', 'Bad'])).toThrow(
      expect.objectContaining({ code: 'REF_INVALID', message: 'invalid reference "Bad": repository "Bad" contains upper-case letters' }),
    );
    expect(() => imageListFromRefs([`a@sha512:${'f'.repeat(128)}`])).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });
});

describe('every problem in one report', () => {
  it('names every bad entry of a list, schema problems and reference problems, in file order', async () => {
    const path = join(dir, `several-${++counter}.yaml`);
    await writeFile(
      path,
      'version: 1\nimages:\n  - "quay.io/a/b:BAD TAG"\n  - quay.io/ok/fine:1\n  - "UPPER/case:1"\n  - ref: 12\n  - { ref: quay.io/x/y, tags: 5 }\n',
    );
    const err = await loadImageList(path).catch((e: unknown) => e as AirlockError);
    expect(isAirlockError(err, 'INPUT_INVALID')).toBe(true);
    const problems = (err as AirlockError).details!.problems as Array<{ message: string }>;
    expect(problems.map((p) => p.message.replaceAll(path, 'F'))).toEqual([
      'F:3: images[0]: invalid reference "quay.io/a/b:BAD TAG": contains white space',
      'F:5: images[2]: invalid reference "UPPER/case:1": repository "UPPER/case" contains upper-case letters',
      'F:6: images[3].ref: must be a string, not number 12',
      'F:7: images[4].tags: must be a mapping (YAML) or object (JSON), not number 5',
    ]);
    expect((err as AirlockError).message).toMatch(/\(and 3 more\)$/);
  });

  it('keeps one problem as it was; problems outside the entries are named with the entries', async () => {
    expect((await loadError('version: 1\nimages:\n  - ref: 12\n')).message).toBe('F:3: images[0].ref: must be a string, not number 12');
    const err = await loadError('version: 2\nplatforms: [linux/amd64, 7]\nextra: yes\nimages:\n  - ref: 12\n  - "bad ref!"\n');
    expect(err.message).toBe('F:1: version: unsupported version 2 (and 4 more)');
    expect(err.problems).toEqual([
      'F:1: version: unsupported version 2',
      'F:2: platforms[1]: must be a string, not number 7',
      'F:3: extra: unknown field "extra"',
      'F:5: images[0].ref: must be a string, not number 12',
      'F:6: images[1]: invalid reference "bad ref!": contains white space',
    ]);
    // Without an images list there is nothing more to check.
    expect((await loadError('version: 2\n')).message).toMatch(/^F:1: /);
  });

  it('names every bad reference given on the command line', () => {
    const err = (() => {
      try {
        imageListFromRefs(['Bad', 'busybox', 'a b']);
      } catch (e) {
        return e as AirlockError;
      }
      return undefined;
    })();
    expect(err?.message).toBe('invalid reference "Bad": repository "Bad" contains upper-case letters (and 1 more)');
    expect(((err?.details?.problems ?? []) as Array<{ message: string }>).map((p) => p.message)).toEqual([
      'invalid reference "Bad": repository "Bad" contains upper-case letters',
      'invalid reference "a b": contains white space',
    ]);
  });
});

describe('selectTags', () => {
  const ETCD = ['latest', 'v3.4.1', 'v3.3.0', 'v2.3.8', 'v3.5.0-rc.0', 'v3.4.1-arm64', '3.4.1', 'v3.10.0', 'v3.2.0', 'master', 'v4.0.0', 'v3.3.0'];

  it.each<[string, Parameters<typeof compileTagFilter>[0], string[]]>([
    [
      'no filter: all, lexical, no duplicates',
      {},
      ['3.4.1', 'latest', 'master', 'v2.3.8', 'v3.10.0', 'v3.2.0', 'v3.3.0', 'v3.4.1', 'v3.4.1-arm64', 'v3.5.0-rc.0', 'v4.0.0'],
    ],
    ['semver range, numeric order, v-prefix ignored', { semver: '>=3.0.0 <4.0.0' }, ['v3.2.0', 'v3.3.0', '3.4.1', 'v3.4.1', 'v3.10.0']],
    ['semver caret', { semver: '^3.4' }, ['3.4.1', 'v3.4.1', 'v3.10.0']],
    ['semver tilde', { semver: '~3.4.0' }, ['3.4.1', 'v3.4.1']],
    ['semver with pre-release named', { semver: '>=3.5.0-rc.0 <3.6.0' }, ['v3.5.0-rc.0']],
    ['semver wildcard keeps only versions', { semver: '*' }, ['v2.3.8', 'v3.2.0', 'v3.3.0', '3.4.1', 'v3.4.1', 'v3.10.0', 'v4.0.0']],
    ['include', { include: '^v3\\.' }, ['v3.10.0', 'v3.2.0', 'v3.3.0', 'v3.4.1', 'v3.4.1-arm64', 'v3.5.0-rc.0']],
    ['include is not anchored', { include: 'arm' }, ['v3.4.1-arm64']],
    ['exclude', { exclude: '-' }, ['3.4.1', 'latest', 'master', 'v2.3.8', 'v3.10.0', 'v3.2.0', 'v3.3.0', 'v3.4.1', 'v4.0.0']],
    ['include and exclude', { include: '^v3', exclude: '-rc|-arm' }, ['v3.10.0', 'v3.2.0', 'v3.3.0', 'v3.4.1']],
    ['all three', { include: '^v', exclude: '^v3\\.2', semver: '3.x' }, ['v3.3.0', 'v3.4.1', 'v3.10.0']],
    ['nothing matches', { semver: '>=5' }, []],
  ])('%s', (_name, spec, expected) => {
    expect(selectTags(ETCD, compileTagFilter(spec))).toEqual(expected);
  });

  it('excludes tags that are not plain semver under a semver filter', () => {
    expect(selectTags(['1.0', 'v1', 'vv1.0.0', '=1.0.0', 'V1.0.0', 'v1.0.0', '1.0.0'], { semver: '>=0.0.0' })).toEqual(['1.0.0', 'v1.0.0']);
  });

  it('is not confused by a global regular expression', () => {
    expect(selectTags(['a1', 'a2', 'a3'], { include: /a/g })).toEqual(['a1', 'a2', 'a3']);
  });

  it('names the field in errors from compileTagFilter', () => {
    expect(() => compileTagFilter({ semver: 'three' })).toThrow('tags.semver: "three" is not a valid semver range');
    expect(() => compileTagFilter({ include: '(' }, (f) => `--tag-${f}`)).toThrow('--tag-include: "(" is not a valid regular expression: Unterminated group');
  });
});
