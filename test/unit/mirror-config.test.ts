/**
 * The text `mirror-config` writes for each client, exactly, for a plain-HTTP and a TLS mirror, with
 * a prefix and with --strip-host; and the command's checks before it writes anything.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AirlockError } from '../../src/errors.js';
import { containerdHostsToml, dockerDaemonJson, k3sRegistriesYaml, mirrorPath, registriesConf, type MirrorSpec } from '../../src/mirror/client-config.js';
import { planMirrorFiles } from '../../src/mirror/files.js';
import { parseImportTarget } from '../../src/names/import-names.js';
import { parseUpstreamHost, writeMirrorConfig } from '../../src/ops/mirror-config.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const HEADER = '# Written by airlock mirror-config; running it again replaces this file.';

const PLAIN: MirrorSpec = {
  host: 'registry.lan:5000',
  prefix: 'mirror',
  stripHost: false,
  plainHttp: true,
  caFiles: [],
  upstreamFallback: false,
  allowUpstream: false,
};
const TLS: MirrorSpec = { ...PLAIN, host: 'registry.lan', plainHttp: false, caFiles: ['/etc/pki/mirror "ca".pem'] };
const STRIP: MirrorSpec = { ...PLAIN, prefix: '', stripHost: true };

function lines(...l: string[]): string {
  return `${l.join('\n')}\n`;
}

describe('mirrorPath', () => {
  it('is the import mapping: prefix, then the host component', () => {
    expect(mirrorPath(PLAIN, 'docker.io')).toBe('mirror/docker.io');
    expect(mirrorPath(PLAIN, 'localhost:5000')).toBe('mirror/localhost_5000');
    expect(mirrorPath({ prefix: '', stripHost: false }, 'quay.io')).toBe('quay.io');
    expect(mirrorPath({ prefix: 'a/b', stripHost: true }, 'quay.io')).toBe('a/b');
    expect(mirrorPath(STRIP, 'quay.io')).toBe('');
  });
});

describe('containerd hosts.toml', () => {
  it('plain HTTP with a prefix: the mirror is server and [host], override_path on both', () => {
    expect(containerdHostsToml(PLAIN, 'docker.io')).toBe(
      lines(
        HEADER,
        '# docker.io images come from the mirror registry.lan:5000, under registry.lan:5000/mirror/docker.io.',
        '# The mirror is the server too: a missing image fails as not found, nothing tries the upstream.',
        'server = "http://registry.lan:5000/v2/mirror/docker.io"',
        'capabilities = ["pull", "resolve"]',
        'override_path = true',
        '',
        '[host."http://registry.lan:5000/v2/mirror/docker.io"]',
        '  capabilities = ["pull", "resolve"]',
        '  override_path = true',
      ),
    );
  });

  it('TLS with a CA (escaped), and --upstream-fallback keeps the upstream as server', () => {
    expect(containerdHostsToml({ ...TLS, upstreamFallback: true }, 'docker.io')).toBe(
      lines(
        HEADER,
        '# docker.io images come from the mirror registry.lan, under registry.lan/mirror/docker.io.',
        '# When the mirror lacks an image, containerd tries https://registry-1.docker.io.',
        'server = "https://registry-1.docker.io"',
        '',
        '[host."https://registry.lan/v2/mirror/docker.io"]',
        '  capabilities = ["pull", "resolve"]',
        '  override_path = true',
        '  ca = "/etc/pki/mirror \\"ca\\".pem"',
      ),
    );
    expect(containerdHostsToml({ ...TLS, upstreamFallback: true }, 'quay.io')).toContain('server = "https://quay.io"\n');
  });

  it('TLS, pinned, two CA files: ca on the server and the host', () => {
    const text = containerdHostsToml({ ...TLS, caFiles: ['/a.pem', '/b.pem'] }, 'quay.io');
    expect(text).toContain(
      'server = "https://registry.lan/v2/mirror/quay.io"\ncapabilities = ["pull", "resolve"]\noverride_path = true\nca = ["/a.pem", "/b.pem"]\n',
    );
    expect(text).toContain(
      '\n[host."https://registry.lan/v2/mirror/quay.io"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n  ca = ["/a.pem", "/b.pem"]\n',
    );
    expect(text).not.toContain('skip_verify');
  });

  it('--strip-host without a prefix: the API root is /v2 itself', () => {
    expect(containerdHostsToml(STRIP, 'quay.io')).toContain('\n[host."http://registry.lan:5000/v2"]\n');
  });
});

describe('registries.conf drop-in', () => {
  it('plain HTTP: one [[registry]] per upstream, blocked, the mirror insecure', () => {
    expect(registriesConf(PLAIN, ['docker.io', 'quay.io'])).toBe(
      lines(
        HEADER,
        '# Images of docker.io, quay.io come from the mirror registry.lan:5000.',
        '# The mirror speaks plain HTTP (insecure = true).',
        '',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "docker.io"',
        'blocked = true',
        '',
        '[[registry.mirror]]',
        'location = "registry.lan:5000/mirror/docker.io"',
        'insecure = true',
        '',
        '[[registry]]',
        'prefix = "quay.io"',
        'location = "quay.io"',
        'blocked = true',
        '',
        '[[registry.mirror]]',
        'location = "registry.lan:5000/mirror/quay.io"',
        'insecure = true',
      ),
    );
  });

  it('TLS with a CA, --allow-upstream: not blocked, not insecure, the CA location named', () => {
    expect(registriesConf({ ...TLS, allowUpstream: true }, ['quay.io'])).toBe(
      lines(
        HEADER,
        '# Images of quay.io come from the mirror registry.lan.',
        '# Its CA goes to /etc/containers/certs.d/registry.lan/ca.crt (containers read no CA path from this file).',
        '',
        '[[registry]]',
        'prefix = "quay.io"',
        'location = "quay.io"',
        '',
        '[[registry.mirror]]',
        'location = "registry.lan/mirror/quay.io"',
      ),
    );
  });

  it('--strip-host without a prefix: the mirror location is the host alone', () => {
    expect(registriesConf(STRIP, ['quay.io'])).toContain('[[registry.mirror]]\nlocation = "registry.lan:5000"\ninsecure = true\n');
  });
});

describe('k3s registries.yaml', () => {
  it('plain HTTP with a prefix: endpoint and rewrite per upstream', () => {
    expect(k3sRegistriesYaml(PLAIN, ['docker.io', 'quay.io'])).toBe(
      lines(
        HEADER,
        '# Images of docker.io, quay.io come from the mirror registry.lan:5000.',
        'mirrors:',
        '  "docker.io":',
        '    endpoint:',
        '      - "http://registry.lan:5000"',
        '    rewrite:',
        '      "^(.*)$": "mirror/docker.io/$1"',
        '  "quay.io":',
        '    endpoint:',
        '      - "http://registry.lan:5000"',
        '    rewrite:',
        '      "^(.*)$": "mirror/quay.io/$1"',
      ),
    );
  });

  it('TLS with a CA: configs.<mirror>.tls.ca_file; --strip-host without prefix: no rewrite', () => {
    expect(k3sRegistriesYaml({ ...TLS, prefix: '', stripHost: true }, ['quay.io'])).toBe(
      lines(
        HEADER,
        '# Images of quay.io come from the mirror registry.lan.',
        'mirrors:',
        '  "quay.io":',
        '    endpoint:',
        '      - "https://registry.lan"',
        'configs:',
        '  "registry.lan":',
        '    tls:',
        '      ca_file: "/etc/pki/mirror \\"ca\\".pem"',
      ),
    );
  });
});

describe('Docker daemon.json', () => {
  it('only for docker.io at the mirror root (--strip-host, no prefix), with the limitation told', () => {
    const docker = dockerDaemonJson(STRIP, ['docker.io', 'quay.io']);
    expect(docker.text).toBe(
      lines('{', '  "registry-mirrors": [', '    "http://registry.lan:5000"', '  ],', '  "insecure-registries": [', '    "registry.lan:5000"', '  ]', '}'),
    );
    expect(docker.notes[0]).toMatch(/serve docker\.io only; for quay\.io pull them by their mirror names/);
    expect(dockerDaemonJson({ ...STRIP, plainHttp: false }, ['docker.io']).text).toBe(
      lines('{', '  "registry-mirrors": [', '    "https://registry.lan:5000"', '  ]', '}'),
    );
  });

  it('none when the mirror holds docker.io under a path, and none without docker.io', () => {
    const docker = dockerDaemonJson(PLAIN, ['docker.io']);
    expect(docker.text).toBeUndefined();
    expect(docker.notes.join('\n')).toMatch(/no daemon\.json: .* under \/v2\/mirror\/docker\.io\//);
    expect(dockerDaemonJson(STRIP, ['quay.io']).text).toBeUndefined();
  });
});

describe('planMirrorFiles', () => {
  it('lays the files out like /etc, one hosts.toml per upstream, the CA copied for containers', () => {
    const plan = planMirrorFiles(TLS, ['docker.io', 'localhost:5000']);
    expect(plan.files.map((f) => `${f.client} ${f.path}`)).toEqual([
      'containerd containerd/certs.d/docker.io/hosts.toml',
      'containerd containerd/certs.d/localhost:5000/hosts.toml',
      'containers containers/registries.conf.d/50-airlock-mirror.conf',
      'containers containers/certs.d/registry.lan/ca.crt',
      'k3s rancher/registries.yaml',
    ]);
    expect(plan.notes.join('\n')).toMatch(/disable-default-registry-endpoint/);
  });
});

describe('writeMirrorConfig', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir('mirror-unit');
  });
  afterEach(async () => {
    await tmp.remove();
  });

  it('writes every file for --host names, canonical and sorted', async () => {
    const dir = join(tmp.path, 'out', 'deeper');
    const result = await writeMirrorConfig({
      dir,
      target: parseImportTarget('registry.lan:5000/mirror'),
      hosts: ['quay.io', 'index.docker.io'],
      plainHttp: true,
    });
    expect(result.upstreams).toEqual(['docker.io', 'quay.io']);
    expect(result.mirror).toBe('registry.lan:5000/mirror');
    expect(await readFile(join(dir, 'containerd', 'certs.d', 'docker.io', 'hosts.toml'), 'utf8')).toBe(containerdHostsToml(PLAIN, 'docker.io'));
    expect(await readdir(join(dir, 'containerd', 'certs.d'))).toEqual(['docker.io', 'quay.io']);
    expect(result.files.map((f) => f.path)).toContain(join(dir, 'rancher', 'registries.yaml'));
  });

  it('copies the CA for containers and refers to it by absolute path', async () => {
    const { writeFile } = await import('node:fs/promises');
    const ca = join(tmp.path, 'ca.pem');
    await writeFile(ca, '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----');
    const dir = join(tmp.path, 'out');
    await writeMirrorConfig({ dir, target: parseImportTarget('registry.lan'), hosts: ['quay.io'], caFiles: [ca] });
    expect(await readFile(join(dir, 'containers', 'certs.d', 'registry.lan', 'ca.crt'), 'utf8')).toBe(
      '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
    );
    expect(await readFile(join(dir, 'containerd', 'certs.d', 'quay.io', 'hosts.toml'), 'utf8')).toContain(`ca = ${JSON.stringify(ca)}`);
  });

  it('refuses before writing: a layout, no hosts, a bad host, the mirror as upstream, a missing CA', async () => {
    const dir = join(tmp.path, 'out');
    const code = (p: Promise<unknown>): Promise<string> =>
      p.then(
        () => 'resolved',
        (err: unknown) => (err instanceof AirlockError ? err.code : String(err)),
      );
    expect(await code(writeMirrorConfig({ dir, target: parseImportTarget('oci:/x'), hosts: ['quay.io'] }))).toBe('USAGE');
    expect(await code(writeMirrorConfig({ dir, target: parseImportTarget('registry.lan'), hosts: [] }))).toBe('USAGE');
    expect(await code(writeMirrorConfig({ dir, target: parseImportTarget('registry.lan'), hosts: ['quay.io/coreos'] }))).toBe('USAGE');
    expect(await code(writeMirrorConfig({ dir, target: parseImportTarget('registry.lan'), hosts: ['registry.lan', 'quay.io'] }))).toBe('USAGE');
    expect(await code(writeMirrorConfig({ dir, target: parseImportTarget('registry.lan'), hosts: ['quay.io'], caFiles: [join(tmp.path, 'nope.pem')] }))).toBe(
      'INPUT_INVALID',
    );
    expect(await readdir(tmp.path)).toEqual([]);
  });
});

describe('parseUpstreamHost', () => {
  it('takes hosts as images name them, Docker Hub aliases as docker.io', () => {
    expect(parseUpstreamHost('quay.io')).toBe('quay.io');
    expect(parseUpstreamHost('registry-1.docker.io')).toBe('docker.io');
    expect(parseUpstreamHost('localhost:5000')).toBe('localhost:5000');
    for (const bad of ['busybox', 'quay.io/coreos', '', 'a b.io']) expect(() => parseUpstreamHost(bad), bad).toThrow(AirlockError);
  });
});
