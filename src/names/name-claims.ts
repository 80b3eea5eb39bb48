/**
 * What a bundle image name can pass for once it is mapped to a target name (import-names.ts), and
 * the names that would become one.
 *
 * The mapping writes a host as a path component (`localhost:6200` → `localhost_6200`), so a name
 * without a host whose first component looks like a mapped host (`localhost_6200/app`, from an
 * `oci:` layout) lands in the very repository `localhost:6200/app` lands in. And a name without a
 * host is, to Docker and every client that normalises as it does, a Docker Hub name: `busybox:1`
 * is `docker.io/library/busybox:1`. So:
 * - two names that map to one target repository from different upstream repositories are refused,
 *   at create (the bundle would be ambiguous) and at import (bundles of older versions);
 * - the import policy sees a host-less name also as every upstream name it can pass for.
 */
import { AirlockError } from '../errors.js';
import { DEFAULT_REGISTRY } from '../ref/reference.js';
import { hostComponent, parseBundleName } from './import-names.js';

/** A DNS label, as the reference grammar has it. */
const DOMAIN_LABEL_RE = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
/** `NAME_PORT`: a host with a port, as a path component. */
const MAPPED_PORT_RE = /^(.+)_([0-9]{1,5})$/;
/** `ipv6-ADDR[_PORT]`: a bracketed IPv6 host, as a path component. */
const MAPPED_IPV6_RE = /^ipv6-([0-9a-f-]+)(?:_([0-9]{1,5}))?$/;

/**
 * The upstream host a path component stands for after mapping, or undefined when it stands for
 * none (`team`, `library`).
 *
 * @example
 * unmapHostComponent('localhost_6200')    // 'localhost:6200'
 * unmapHostComponent('ipv6-fe80--1_5000') // '[fe80::1]:5000'
 * unmapHostComponent('team')              // undefined
 */
export function unmapHostComponent(component: string): string | undefined {
  const v6 = MAPPED_IPV6_RE.exec(component);
  if (v6 !== null) return `[${v6[1]!.replaceAll('-', ':')}]${v6[2] === undefined ? '' : `:${v6[2]}`}`;
  const port = MAPPED_PORT_RE.exec(component);
  if (port !== null && port[1]!.split('.').every((l) => DOMAIN_LABEL_RE.test(l))) return `${port[1]}:${port[2]}`;
  if (component.includes('.') || component === 'localhost') return component;
  return undefined;
}

/** An upstream name a bundle name can pass for: what the policy checks besides the name itself. */
export interface ClaimedName {
  registry: string;
  /** Host included, as policy patterns match it: `localhost:6200/app`. */
  repository: string;
  /** Why the name passes for it, for messages. */
  reading: string;
}

/**
 * Every upstream name a host-less bundle name passes for (none for a name with a host: the
 * mapping keeps its host, and two hosts never map to one component).
 *
 * @example
 * claimedNames('localhost_6200/app:1')
 * // [{ registry: 'localhost:6200', repository: 'localhost:6200/app', … },
 * //  { registry: 'docker.io', repository: 'docker.io/localhost_6200/app', … }]
 */
export function claimedNames(name: string): ClaimedName[] {
  const up = parseBundleName(name);
  if (up.registry !== undefined) return [];
  const claims: ClaimedName[] = [];
  const slash = up.path.indexOf('/');
  const host = slash === -1 ? undefined : unmapHostComponent(up.path.slice(0, slash));
  if (host !== undefined) {
    const repository = `${host}/${up.path.slice(slash + 1)}`;
    claims.push({ registry: host, repository, reading: `it lands where ${repository} lands` });
  }
  const hub = `${DEFAULT_REGISTRY}/${slash === -1 ? `library/${up.path}` : up.path}`;
  claims.push({ registry: DEFAULT_REGISTRY, repository: hub, reading: `Docker reads it as ${hub}` });
  return claims;
}

function writableHost(registry: string): string | undefined {
  try {
    return hostComponent(registry);
  } catch {
    return undefined;
  }
}

/**
 * Refuse names that land in one target repository (with the default mapping, host kept) from
 * different upstream repositories, such as `localhost_6200/app:1` and `localhost:6200/app:2`.
 *
 * @param hint what to do about it, which differs at create and at import
 * @throws INPUT_INVALID naming both images and the repository
 */
export function checkNameCollisions(names: readonly string[], hint: string): void {
  const byRepository = new Map<string, { name: string; upstream: string }>();
  for (const name of names) {
    const up = parseBundleName(name);
    const upstream = up.registry === undefined ? up.path : `${up.registry}/${up.path}`;
    const component = up.registry === undefined ? '' : writableHost(up.registry);
    // A host that cannot be a path component only imports with --strip-host: it maps nowhere here.
    if (component === undefined) continue;
    const repository = up.registry === undefined ? up.path : `${component}/${up.path}`;
    const other = byRepository.get(repository);
    if (other !== undefined && other.upstream !== upstream) {
      throw new AirlockError('INPUT_INVALID', `images ${other.name} and ${name} would both land in repository ${repository} at import`, {
        subject: name,
        hint,
        details: { images: [other.name, name], repository },
      });
    }
    byRepository.set(repository, { name, upstream });
  }
}
