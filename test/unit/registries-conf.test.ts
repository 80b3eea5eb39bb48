import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegistriesConf, MAX_REGISTRIES_CONF_BYTES, registriesConfFiles, registryEntryFor } from '../../src/registry/registries-conf.js';
import { MAX_TOML_DEPTH, parseToml } from '../../src/registry/toml.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('registries-conf');
});
afterAll(async () => {
  await tmp?.remove();
});

const parse = (text: string): unknown => JSON.parse(JSON.stringify(parseToml(text, 'F')));
const problem = (text: string): string => {
  try {
    parseToml(text, 'F');
  } catch (err) {
    expect((err as { code?: string }).code).toBe('INPUT_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected an error');
};

describe('TOML (smol-toml, wrapped)', () => {
  it('reads what registries.conf files hold', () => {
    const text = [
      '# comment',
      'unqualified-search-registries = ["docker.io", \'quay.io\',',
      '  # a comment inside an array',
      '  "x.lan", ]',
      'short-name-mode = "enforcing"  # trailing comment',
      '',
      '[[registry]]',
      'prefix = "example.com/foo"',
      'insecure = false',
      'location = "internal.lan:5000/bar"',
      '[[registry.mirror]]',
      'location = "m0.local"',
      '[[registry.mirror]]',
      "location = 'm1.local'",
      'insecure = true',
      '',
      '[[registry]]',
      'location = "plain.lan"',
      'insecure = true',
      'mirror = [{ location = "m2.local", insecure = true }, {}]',
      '',
      '[aliases]',
      '  "opensuse/leap" = "registry.opensuse.org/opensuse/leap"',
      '  "__proto__" = "x"',
      'a.b."c.d" = 1979-05-27 07:32:00',
      'n = -3.5e2',
      's = """',
      'one \\',
      '   two\\u00e9"""',
      "l = '''C:\\x'''",
    ].join('\n');
    expect(parse(text)).toEqual({
      'unqualified-search-registries': ['docker.io', 'quay.io', 'x.lan'],
      'short-name-mode': 'enforcing',
      registry: [
        {
          prefix: 'example.com/foo',
          insecure: false,
          location: 'internal.lan:5000/bar',
          mirror: [{ location: 'm0.local' }, { location: 'm1.local', insecure: true }],
        },
        { location: 'plain.lan', insecure: true, mirror: [{ location: 'm2.local', insecure: true }, {}] },
      ],
      aliases: {
        'opensuse/leap': 'registry.opensuse.org/opensuse/leap',
        ['__proto__']: 'x',
        a: { b: { 'c.d': '1979-05-27T07:32:00.000' } },
        n: -350,
        s: 'one two\u00e9',
        l: 'C:\\x',
      },
    });
    expect(Object.getPrototypeOf({})).not.toHaveProperty('x');
    expect(Object.getPrototypeOf(parseToml('[t]\n"__proto__" = "x"', 'F')['t'])).toBeNull();
  });

  it('keeps a quoted "true" a string, and numbers numbers: never a host or a flag by accident', () => {
    expect(parse('insecure = "true"\nx = 1')).toEqual({ insecure: 'true', x: 1 });
  });

  it.each([
    ['a = "x"\na = "y"', 2],
    ['[t]\n[t]', 2],
    ['a = 1\n[[a]]', 2],
    ['a = "open', 1],
    ['a = "\\q"', 1],
    ['a = [1 2]', 1],
    ['\n\n= 1', 3],
    ['a = "x"\na.b = 1', 2],
    ['y = True', 1],
  ])('refuses %j naming the file and line', (text, line) => {
    expect(problem(text)).toMatch(new RegExp(`^F:${line}: not valid TOML: `));
  });

  it('fails on random input only with a file:line error (seeded, 3000 inputs)', () => {
    const alphabet = [
      '[',
      ']',
      '[[',
      ']]',
      '{',
      '}',
      '"',
      "'",
      '"""',
      "'''",
      '=',
      ',',
      '.',
      '#',
      '\\',
      '\\u',
      '\\U0011',
      'a',
      'b',
      '1',
      ' ',
      '\n',
      '\r\n',
      'true',
      '\u0000',
      'é',
    ];
    let seed = 12345;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 3000; i++) {
      const text = Array.from({ length: 1 + next(40) }, () => alphabet[next(alphabet.length)]).join('');
      try {
        parseToml(text, 'F');
      } catch (err) {
        expect({ text, code: (err as { code?: string }).code }).toEqual({ text, code: 'INPUT_INVALID' });
        expect((err as Error).message).toMatch(/^F:\d+: /);
      }
    }
  });

  it('stops a hundred thousand nested brackets at the depth cap', () => {
    expect(problem(`a = ${'['.repeat(100_000)}`)).toContain('excessively nested');
    expect(problem(`a = ${'{b='.repeat(100_000)}`)).toContain('excessively nested');
    expect(problem(`a = ${'['.repeat(MAX_TOML_DEPTH + 2)}${']'.repeat(MAX_TOML_DEPTH + 2)}`)).toContain('excessively nested');
  });
});

describe('registries.conf', () => {
  const write = async (path: string, text: string | Buffer): Promise<string> => {
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, text);
    return path;
  };

  it('finds CONTAINERS_REGISTRIES_CONF, then the drop-ins of the system and user directories in name order', async () => {
    const root = join(tmp.path, 'find');
    const main = await write(join(root, 'main.conf'), '');
    await write(join(root, 'sys.d', 'b.conf'), '');
    await write(join(root, 'sys.d', 'a.conf'), '');
    await write(join(root, 'sys.d', 'ignored.txt'), '');
    await write(join(root, 'home', '.config', 'containers', 'registries.conf.d', 'u.conf'), '');
    const home = join(root, 'home');
    const opts = { homeDir: home, systemDir: join(root, 'sys.d'), systemFile: join(root, 'none') };
    expect(await registriesConfFiles({ ...opts, env: { CONTAINERS_REGISTRIES_CONF: main } })).toEqual([
      main,
      join(root, 'sys.d', 'a.conf'),
      join(root, 'sys.d', 'b.conf'),
      join(home, '.config', 'containers', 'registries.conf.d', 'u.conf'),
    ]);
    // The user's registries.conf replaces the system one and its drop-in directory.
    const userFile = await write(join(home, '.config', 'containers', 'registries.conf'), '');
    expect(await registriesConfFiles({ ...opts, env: {} })).toEqual([userFile, join(home, '.config', 'containers', 'registries.conf.d', 'u.conf')]);
  });

  it('merges by prefix (later files win) and matches host[:port] or a *.domain wildcard, never a namespace', async () => {
    const root = join(tmp.path, 'merge');
    const main = await write(
      join(root, 'main.conf'),
      '[[registry]]\nlocation = "plain.lan:5000"\ninsecure = true\n[[registry]]\nprefix = "team.lan/ns"\ninsecure = true\n[[registry]]\nprefix = "*.corp"\ninsecure = true\n[[registry]]\nlocation = "tls.lan"\ninsecure = true\n',
    );
    await write(join(root, 'd', '50-override.conf'), '[[registry]]\nprefix = "tls.lan"\nlocation = "elsewhere.lan"\ninsecure = false\n');
    const entries = await loadRegistriesConf({ env: { CONTAINERS_REGISTRIES_CONF: main }, homeDir: join(root, 'nohome'), systemDir: join(root, 'd') });
    const insecure = (host: string): boolean | undefined => registryEntryFor(entries, host)?.insecure;
    expect(insecure('plain.lan:5000')).toBe(true);
    expect(insecure('PLAIN.lan:5000')).toBe(true);
    expect(insecure('plain.lan')).toBeUndefined();
    expect(insecure('plain.lan:5001')).toBeUndefined();
    expect(insecure('team.lan')).toBeUndefined();
    expect(insecure('reg.corp:8443')).toBe(true);
    expect(insecure('corp')).toBeUndefined();
    expect(insecure('tls.lan')).toBe(false);
  });

  it('reads the v1 format', async () => {
    const main = await write(
      join(tmp.path, 'v1', 'main.conf'),
      "[registries.search]\nregistries = ['docker.io']\n[registries.insecure]\nregistries = ['old.lan:5000', 'both.lan']\n[registries.block]\nregistries = ['banned.lan', 'both.lan']\n",
    );
    const entries = await loadRegistriesConf({
      env: { CONTAINERS_REGISTRIES_CONF: main },
      homeDir: join(tmp.path, 'nohome'),
      systemDir: join(tmp.path, 'none'),
    });
    expect(registryEntryFor(entries, 'old.lan:5000')).toMatchObject({ insecure: true, blocked: false });
    expect(registryEntryFor(entries, 'banned.lan')).toMatchObject({ insecure: false, blocked: true });
    expect(registryEntryFor(entries, 'both.lan')).toMatchObject({ insecure: true, blocked: true });
  });

  it('reads blocked = true, and a later file can lift it', async () => {
    const root = join(tmp.path, 'blocked');
    const main = await write(
      join(root, 'main.conf'),
      '[[registry]]\nprefix = "*.banned"\nblocked = true\n[[registry]]\nlocation = "lifted.lan"\nblocked = true\n',
    );
    await write(join(root, 'd', '50-lift.conf'), '[[registry]]\nlocation = "lifted.lan"\nblocked = false\n');
    const entries = await loadRegistriesConf({ env: { CONTAINERS_REGISTRIES_CONF: main }, homeDir: join(root, 'nohome'), systemDir: join(root, 'd') });
    expect(registryEntryFor(entries, 'reg.banned:5000')?.blocked).toBe(true);
    expect(registryEntryFor(entries, 'lifted.lan')?.blocked).toBe(false);
    expect(registryEntryFor(entries, 'quay.io')).toBeUndefined();
  });

  it('refuses a huge file and broken TOML, naming the file; a missing one is none', async () => {
    const opts = (file: string) => ({ env: { CONTAINERS_REGISTRIES_CONF: file }, homeDir: join(tmp.path, 'nohome'), systemDir: join(tmp.path, 'none') });
    const huge = await write(join(tmp.path, 'hostile', 'huge.conf'), Buffer.alloc(MAX_REGISTRIES_CONF_BYTES + 1, 0x23));
    await expect(loadRegistriesConf(opts(huge))).rejects.toThrow(`more than a registries.conf may have (${MAX_REGISTRIES_CONF_BYTES})`);
    const broken = await write(join(tmp.path, 'hostile', 'broken.conf'), '[[registry]]\nlocation = "x.lan\n');
    await expect(loadRegistriesConf(opts(broken))).rejects.toThrow(new RegExp(`^${broken}:2: not valid TOML: `));
    // A missing default file is no configuration; a missing named one is a mistake (as in containers/image).
    const missing = join(tmp.path, 'hostile', 'missing.conf');
    expect(await loadRegistriesConf({ env: {}, systemFile: missing, homeDir: join(tmp.path, 'nohome'), systemDir: join(tmp.path, 'none') })).toEqual([]);
    await expect(loadRegistriesConf(opts(missing))).rejects.toThrow(`CONTAINERS_REGISTRIES_CONF names ${missing}, which is not a file`);
    // A directory named as the file is refused too.
    await expect(loadRegistriesConf(opts(join(tmp.path, 'hostile')))).rejects.toThrow('which is not a file');
  });

  it("reads this machine's own files when there are any (Debian ships shortnames.conf)", async () => {
    await expect(loadRegistriesConf({ env: {}, homeDir: join(tmp.path, 'nohome') })).resolves.toBeInstanceOf(Array);
  });
});
