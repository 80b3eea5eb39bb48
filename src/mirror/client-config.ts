/**
 * The client configuration that makes a node pull upstream names from an imported mirror: pure
 * functions from the mirror and its upstream hosts to file text, one per client family.
 *
 * The mirror holds `docker.io/library/busybox:musl` where `bundle import` put it:
 * `MIRROR/PREFIX/docker.io/library/busybox:musl` (see names/import-names.ts), or
 * `MIRROR/PREFIX/library/busybox:musl` with `--strip-host`. Every format below maps an upstream
 * host to that path:
 * - containerd (`hosts.toml`, read through `config_path` or `ctr --hosts-dir`): the mirror as a
 *   `[host]` whose URL is the API root itself (`override_path`), and by default as `server` too, so
 *   that a missing image is "not found" instead of a fall-through to an upstream the node cannot
 *   reach. containerd 1.6 ignores a hosts.toml without a `[host]` table (it cannot sort the hosts
 *   and falls back to the defaults), so the `[host]` entry is always written.
 * - containers-registries.conf (podman, CRI-O, skopeo, buildah): a `[[registry]]` per upstream with
 *   the mirror as `[[registry.mirror]]`; `blocked` on the upstream stops only the upstream attempt
 *   (a mirror's location matches no `[[registry]]`), so nothing tries to leave the gap.
 * - k3s/RKE2 `registries.yaml`: the mirror as `endpoint`, the path as a `rewrite` of the repository.
 * - Docker `daemon.json`: `registry-mirrors` serves docker.io only, and only from the mirror's root.
 *
 * Hosts come from the reference grammar (letters, digits, `.`, `-`, `:`, `[]`); paths an operator
 * gives (CA files) are escaped for the format they go into.
 */
import { hostComponent } from '../names/import-names.js';

/** The mirror and how clients are to use it. */
export interface MirrorSpec {
  /** The mirror registry, `HOST[:PORT]`, as `bundle import --to` names it. */
  host: string;
  /** Repository prefix of the import (`--to HOST/PREFIX`), '' for none. */
  prefix: string;
  /** The import dropped the upstream host (`--strip-host`). */
  stripHost: boolean;
  /** The mirror speaks plain HTTP. */
  plainHttp: boolean;
  /** CA certificates (PEM) the clients trust for the mirror, as paths on the node. */
  caFiles: readonly string[];
  /** containerd: keep the upstream as `server` (tried after the mirror) instead of the mirror. */
  upstreamFallback: boolean;
  /** registries.conf: leave the upstream unblocked (tried after the mirror). */
  allowUpstream: boolean;
}

/** Docker Hub's API host: what containerd calls for `docker.io` names. */
export const DOCKER_HUB_SERVER = 'https://registry-1.docker.io';

const HEADER = '# Written by airlock mirror-config; running it again replaces this file.';

/**
 * Repository path under which the mirror holds an upstream host's images: `mirror/docker.io`,
 * `mirror` with --strip-host, '' for neither.
 *
 * @example
 * mirrorPath({ prefix: 'mirror', stripHost: false }, 'localhost:5000') // 'mirror/localhost_5000'
 */
export function mirrorPath(spec: Pick<MirrorSpec, 'prefix' | 'stripHost'>, upstream: string): string {
  return [spec.prefix, spec.stripHost ? '' : hostComponent(upstream)].filter((p) => p !== '').join('/');
}

function scheme(spec: MirrorSpec): string {
  return spec.plainHttp ? 'http' : 'https';
}

/** A TOML basic string (the same in go-toml and BurntSushi's toml). */
function tomlString(text: string): string {
  return `"${text.replace(/[\\"\u0000-\u001f\u007f]/g, (c) => (c === '\\' || c === '"' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`))}"`;
}

/** A YAML double-quoted scalar: JSON's string syntax is a subset of it. */
function yamlString(text: string): string {
  return JSON.stringify(text);
}

/** The URL containerd is to treat as the mirror's API root for `upstream`: `https://HOST/v2/PATH`. */
export function containerdMirrorUrl(spec: MirrorSpec, upstream: string): string {
  const path = mirrorPath(spec, upstream);
  return `${scheme(spec)}://${spec.host}/v2${path === '' ? '' : `/${path}`}`;
}

/** What containerd calls for `upstream` when no mirror answers. */
export function upstreamServer(upstream: string): string {
  return upstream === 'docker.io' ? DOCKER_HUB_SERVER : `https://${upstream}`;
}

/**
 * `hosts.toml` for one upstream host (it goes to `CONFIG_PATH/<upstream>/hosts.toml`).
 *
 * @example
 * containerdHostsToml(spec, 'docker.io') // 'server = "http://registry.lan:5000/v2/mirror/docker.io"\n…'
 */
export function containerdHostsToml(spec: MirrorSpec, upstream: string): string {
  const mirror = containerdMirrorUrl(spec, upstream);
  const settings = (indent: string): string[] => [
    `${indent}capabilities = ["pull", "resolve"]`,
    // The URL path is the API root: without this containerd would append /v2 again.
    `${indent}override_path = true`,
    ...(spec.caFiles.length === 0 ? [] : [`${indent}ca = ${caValue(spec.caFiles)}`]),
  ];
  const lines = [HEADER, `# ${upstream} images come from the mirror ${spec.host}, under ${mirror.replace(/^[a-z]+:\/\/[^/]+\/v2/, spec.host)}.`];
  if (spec.upstreamFallback) {
    lines.push(`# When the mirror lacks an image, containerd tries ${upstreamServer(upstream)}.`, `server = ${tomlString(upstreamServer(upstream))}`);
  } else {
    lines.push(
      '# The mirror is the server too: a missing image fails as not found, nothing tries the upstream.',
      `server = ${tomlString(mirror)}`,
      ...settings(''),
    );
  }
  lines.push('', `[host.${tomlString(mirror)}]`, ...settings('  '));
  return `${lines.join('\n')}\n`;
}

function caValue(files: readonly string[]): string {
  return files.length === 1 ? tomlString(files[0]!) : `[${files.map(tomlString).join(', ')}]`;
}

/**
 * A registries.conf drop-in (`/etc/containers/registries.conf.d/50-airlock-mirror.conf`) for every
 * upstream host.
 */
export function registriesConf(spec: MirrorSpec, upstreams: readonly string[]): string {
  const lines = [HEADER, `# Images of ${upstreams.join(', ')} come from the mirror ${spec.host}.`];
  if (spec.plainHttp) lines.push('# The mirror speaks plain HTTP (insecure = true).');
  if (spec.caFiles.length > 0) lines.push(`# Its CA goes to /etc/containers/certs.d/${spec.host}/ca.crt (containers read no CA path from this file).`);
  for (const upstream of upstreams) {
    const path = mirrorPath(spec, upstream);
    lines.push('', '[[registry]]', `prefix = ${tomlString(upstream)}`, `location = ${tomlString(upstream)}`);
    if (!spec.allowUpstream) lines.push('blocked = true');
    lines.push('', '[[registry.mirror]]', `location = ${tomlString(path === '' ? spec.host : `${spec.host}/${path}`)}`);
    if (spec.plainHttp) lines.push('insecure = true');
  }
  return `${lines.join('\n')}\n`;
}

/** k3s/RKE2 `registries.yaml` (`/etc/rancher/k3s/registries.yaml`, `/etc/rancher/rke2/registries.yaml`). */
export function k3sRegistriesYaml(spec: MirrorSpec, upstreams: readonly string[]): string {
  const lines = [HEADER, `# Images of ${upstreams.join(', ')} come from the mirror ${spec.host}.`, 'mirrors:'];
  for (const upstream of upstreams) {
    const path = mirrorPath(spec, upstream);
    lines.push(`  ${yamlString(upstream)}:`, '    endpoint:', `      - ${yamlString(`${scheme(spec)}://${spec.host}`)}`);
    // The rewrite applies to the repository path only (`library/busybox`), not the host.
    if (path !== '') lines.push('    rewrite:', `      "^(.*)$": ${yamlString(`${path}/$1`)}`);
  }
  if (spec.caFiles.length > 0) {
    lines.push('configs:', `  ${yamlString(spec.host)}:`, '    tls:', `      ca_file: ${yamlString(spec.caFiles[0]!)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Docker's `daemon.json` settings, or why there are none. */
export type DockerConfig = { text: string; notes: string[] } | { text: undefined; notes: string[] };

/**
 * Docker's `registry-mirrors`: it mirrors docker.io only, and asks the mirror for
 * `/v2/library/busybox/…`, with no room for a prefix or the host component. So it is written only
 * when docker.io is an upstream and the import kept docker.io images at the mirror's root.
 */
export function dockerDaemonJson(spec: MirrorSpec, upstreams: readonly string[]): DockerConfig {
  const others = upstreams.filter((u) => u !== 'docker.io');
  const pullByName = `pull them by their mirror names (${spec.host}/${mirrorPath(spec, others[0] ?? 'docker.io')}/…)`;
  const notes: string[] = [];
  if (others.length > 0) notes.push(`docker: its registry-mirrors serve docker.io only; for ${others.join(', ')} ${pullByName}`);
  if (!upstreams.includes('docker.io')) return { text: undefined, notes };
  const path = mirrorPath(spec, 'docker.io');
  if (path !== '') {
    notes.push(
      `docker: no daemon.json: Docker asks a mirror for docker.io images at its root (/v2/library/…), and this mirror holds them under /v2/${path}/; import with --strip-host and no prefix for a Docker mirror, or pull by the mirror's names`,
    );
    return { text: undefined, notes };
  }
  const config: Record<string, string[]> = { 'registry-mirrors': [`${scheme(spec)}://${spec.host}`] };
  if (spec.plainHttp) config['insecure-registries'] = [spec.host];
  notes.push('docker: merge daemon.json into /etc/docker/daemon.json and restart dockerd; Docker falls back to Docker Hub when the mirror fails');
  if (spec.caFiles.length > 0) notes.push(`docker: put the mirror's CA in /etc/docker/certs.d/${spec.host}/ca.crt`);
  return { text: `${JSON.stringify(config, null, 2)}\n`, notes };
}
