/**
 * Which files `mirror-config` writes, under an output directory laid out like `/etc`, so that a
 * node takes each client's part with one copy:
 *
 *     DIR/containerd/certs.d/<upstream>/hosts.toml           → /etc/containerd/certs.d/
 *     DIR/containers/registries.conf.d/50-airlock-mirror.conf → /etc/containers/registries.conf.d/
 *     DIR/containers/certs.d/<mirror>/ca.crt (with a CA)      → /etc/containers/certs.d/
 *     DIR/rancher/registries.yaml                            → /etc/rancher/k3s/ or /etc/rancher/rke2/
 *     DIR/docker/daemon.json (when Docker can use the mirror) → merged into /etc/docker/daemon.json
 */
import { containerdHostsToml, dockerDaemonJson, k3sRegistriesYaml, registriesConf, type MirrorSpec } from './client-config.js';

/** The client family a file is for. */
export type MirrorClient = 'containerd' | 'containers' | 'k3s' | 'docker';

/** One file to write, relative to the output directory. */
export interface PlannedFile {
  client: MirrorClient;
  /** Relative path, `/`-separated. */
  path: string;
  /** The text, or the CA files to concatenate (a copy of the operator's PEM). */
  content: { text: string } | { copyOf: readonly string[] };
  /** The upstream host the file is for (containerd: one file per host). */
  upstream?: string;
}

export const CONTAINERD_DIR = 'containerd/certs.d';
export const REGISTRIES_CONF = 'containers/registries.conf.d/50-airlock-mirror.conf';
export const K3S_FILE = 'rancher/registries.yaml';
export const DOCKER_FILE = 'docker/daemon.json';

/** The files for `upstreams` (sorted, distinct), and the limitations to tell the operator. */
export function planMirrorFiles(
  spec: MirrorSpec,
  upstreams: readonly string[],
  caSources: readonly string[] = spec.caFiles,
): { files: PlannedFile[]; notes: string[] } {
  const files: PlannedFile[] = upstreams.map((upstream) => ({
    client: 'containerd',
    // containerd looks up `host:port` as it is (and as `host_port_`): a plain directory name on Linux.
    path: `${CONTAINERD_DIR}/${upstream}/hosts.toml`,
    content: { text: containerdHostsToml(spec, upstream) },
    upstream,
  }));
  files.push({ client: 'containers', path: REGISTRIES_CONF, content: { text: registriesConf(spec, upstreams) } });
  if (caSources.length > 0) files.push({ client: 'containers', path: `containers/certs.d/${spec.host}/ca.crt`, content: { copyOf: caSources } });
  files.push({ client: 'k3s', path: K3S_FILE, content: { text: k3sRegistriesYaml(spec, upstreams) } });
  const docker = dockerDaemonJson(spec, upstreams);
  if (docker.text !== undefined) files.push({ client: 'docker', path: DOCKER_FILE, content: { text: docker.text } });
  const notes = [
    ...(spec.upstreamFallback
      ? []
      : ['containerd: the mirror is also the server: an image it lacks fails as not found (--upstream-fallback tries the upstream after it)']),
    ...(spec.allowUpstream ? [] : ['containers: the upstream registries are blocked: only the mirror is asked (--allow-upstream tries them after it)']),
    'k3s: containerd tries the upstream after the mirror unless k3s runs with --disable-default-registry-endpoint (k3s v1.26.13 and later)',
    ...docker.notes,
  ];
  return { files, notes };
}
