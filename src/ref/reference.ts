/**
 * Registry image references: `[host[:port]/]path[:tag][@digest]`.
 *
 * Parsing follows the docker/distribution reference grammar and Docker's normalisation, so that
 * a reference means in airlock what it means to `docker pull`: no host is `docker.io`,
 * `index.docker.io` and `registry-1.docker.io` are `docker.io`, and a one-component Docker Hub
 * repository lives under `library/`. A reference is parsed once, at the edge; everything after
 * works with {@link ImageReference}.
 */
import { AirlockError } from '../errors.js';
import { parseDigest, type Digest } from '../digest/digest.js';

/** A parsed, normalised registry reference. */
export interface ImageReference {
  /** Registry host, lower case, with `:port` when given: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository path within the registry: `library/busybox`, `coreos/etcd`. */
  repository: string;
  /** Tag, when given (or defaulted to {@link DEFAULT_TAG}). */
  tag?: string;
  /** Manifest digest, when given. When both are present the digest is authoritative. */
  digest?: Digest;
}

/** Options for {@link parseReference}. */
export interface ParseReferenceOptions {
  /**
   * Add {@link DEFAULT_TAG} when the text names neither a tag nor a digest. Default `true`, as
   * Docker does; pass `false` to parse a repository whose tags are chosen later by a filter.
   */
  defaultTag?: boolean;
}

/** The registry used when a reference names no host: Docker Hub, as Docker resolves it. */
export const DEFAULT_REGISTRY = 'docker.io';
/** The tag used when a reference names neither a tag nor a digest, as `docker pull` does. */
export const DEFAULT_TAG = 'latest';
/** Docker Hub's namespace for official images: `busybox` is `library/busybox`. */
const DOCKER_HUB_OFFICIAL_NAMESPACE = 'library';
/** Other names of Docker Hub; all are folded into {@link DEFAULT_REGISTRY}. */
const DOCKER_HUB_ALIASES = new Set(['index.docker.io', 'registry-1.docker.io']);
/**
 * Longest name (normalised host, `/`, repository path) Docker accepts; registries reject longer
 * ones (distribution `NameTotalLengthMax`, checked on the normalised name as Docker does).
 */
export const MAX_NAME_LENGTH = 255;

/** One path component (distribution `path-component`). */
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** A tag (distribution `tag`): 1 to 128 characters. */
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
/** A DNS label: letters, digits and inner dashes. */
const DOMAIN_LABEL_RE = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
/** A bracketed IPv6 address, as in URLs. */
const IPV6_RE = /^\[[a-fA-F0-9:]+\]$/;
/** Highest TCP port number. */
const MAX_PORT = 65535;
/** skopeo's and podman's spelling of a registry reference. */
export const DOCKER_TRANSPORT = 'docker://';
/**
 * Transports of containers/image that airlock does not read. Without this check
 * `oci-archive:x.tar` would parse as the Docker Hub image `library/oci-archive` at tag `x.tar`.
 * (`dir:` is left out: `dir:v1` is also a valid Docker Hub reference.)
 */
const OTHER_TRANSPORTS = ['oci-archive', 'containers-storage', 'docker-archive', 'docker-daemon', 'ostree', 'sif'];

/**
 * A registry reference as an operator may write it for skopeo, without its `docker://`. Applied
 * where operators write references (arguments, image lists: see `parseAnyReference`), not by
 * {@link parseReference} itself, which also parses names found in bundles and layouts.
 *
 * @throws AirlockError `USAGE` for another transport of skopeo's (`oci-archive:`, `containers-storage:` …)
 * @example
 * withoutDockerTransport('docker://quay.io/coreos/etcd:v3.5.0') // 'quay.io/coreos/etcd:v3.5.0'
 */
export function withoutDockerTransport(text: string): string {
  const transport = /^([a-z-]+):/.exec(text)?.[1];
  if (transport !== undefined && OTHER_TRANSPORTS.includes(transport)) {
    throw new AirlockError('USAGE', `${JSON.stringify(text)}: airlock does not read the ${transport}: transport`, {
      subject: text,
      hint: 'name a registry image (quay.io/coreos/etcd:v3.5.0, docker:// in front is accepted) or an OCI layout directory (oci:DIR[:NAME])',
    });
  }
  return text.startsWith(DOCKER_TRANSPORT) ? text.slice(DOCKER_TRANSPORT.length) : text;
}

/**
 * Parse and normalise a registry reference.
 *
 * The first path component is a host when it contains `.` or `:`, is `localhost`, or is a
 * bracketed IPv6 address; otherwise the reference is on Docker Hub. The host is lower-cased.
 *
 * @throws AirlockError `REF_INVALID` naming the input and what is wrong with it; `UNSUPPORTED` for
 *   a well-formed digest of an algorithm other than sha256.
 * @example
 * parseReference('busybox');
 * // { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }
 * parseReference('localhost:5000/app:1.0@sha256:…');
 * // { registry: 'localhost:5000', repository: 'app', tag: '1.0', digest: 'sha256:…' }
 */
export function parseReference(text: string, options: ParseReferenceOptions = {}): ImageReference {
  const defaultTag = options.defaultTag ?? true;
  const fail = (problem: string, hint?: string): never => {
    throw invalid(text, problem, hint);
  };
  if (text === '') fail('empty reference', 'give an image reference such as docker.io/library/busybox:latest');
  if (/\s/.test(text)) fail('contains white space');
  if (text.includes('://')) {
    fail('has a URL scheme', 'write registry references without a scheme (quay.io/coreos/etcd), layout references as oci:DIR[:NAME]');
  }

  const at = text.indexOf('@');
  const name = at === -1 ? text : text.slice(0, at);
  const digestText = at === -1 ? undefined : text.slice(at + 1);
  if (name === '') fail('missing repository name before "@"');

  const { host, rest } = splitHost(name);
  const colon = rest.lastIndexOf(':');
  const path = colon === -1 ? rest : rest.slice(0, colon);
  const tag = colon === -1 ? undefined : rest.slice(colon + 1);

  if (host !== undefined) checkHost(text, host);
  checkPath(text, path);
  if (tag !== undefined) checkTag(text, tag);
  const digest = digestText === undefined ? undefined : parseDigest(digestText, `reference ${JSON.stringify(text)}: digest`);

  const registry = normaliseHost(host);
  const repository = registry === DEFAULT_REGISTRY && !path.includes('/') ? `${DOCKER_HUB_OFFICIAL_NAMESPACE}/${path}` : path;
  const nameLength = registry.length + 1 + repository.length;
  if (nameLength > MAX_NAME_LENGTH) {
    fail(
      `name is ${nameLength} characters with its registry, longer than ${MAX_NAME_LENGTH}`,
      `registries reject longer names; ${registry}/${repository.slice(0, 20)}… needs a shorter repository path`,
    );
  }
  const ref: ImageReference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  else if (digest === undefined && defaultTag) ref.tag = DEFAULT_TAG;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/**
 * The canonical text of a reference: `docker.io/library/busybox:latest`, `host/repo@sha256:…`, or
 * `host/repo:tag@sha256:…`. Parsing the result gives the same reference back.
 */
export function formatReference(ref: ImageReference): string {
  const tag = ref.tag === undefined ? '' : `:${ref.tag}`;
  const digest = ref.digest === undefined ? '' : `@${ref.digest}`;
  return `${repositoryName(ref)}${tag}${digest}`;
}

/** `host/repo`, without tag or digest: the name under which a registry stores the image. */
export function repositoryName(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}`;
}

/**
 * True when `tag` fits the tag grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`). Tags a registry lists
 * are untrusted: `.` or `../../v2/x/manifests/1` would otherwise go into a URL and a bundle.
 */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/**
 * The same repository at `digest`. A tag is kept, recording which tag resolved to the digest;
 * the digest is what gets fetched.
 */
export function withDigest(ref: ImageReference, digest: Digest | string): ImageReference {
  const parsed = parseDigest(digest, `digest for ${repositoryName(ref)}`);
  return ref.tag === undefined
    ? { registry: ref.registry, repository: ref.repository, digest: parsed }
    : { registry: ref.registry, repository: ref.repository, tag: ref.tag, digest: parsed };
}

/**
 * The same repository at `tag`. Any digest is dropped: it pinned the old content, and keeping it
 * would make the new tag meaningless.
 *
 * @throws AirlockError `REF_INVALID` when `tag` is not a valid tag.
 */
export function withTag(ref: ImageReference, tag: string): ImageReference {
  checkTag(`${repositoryName(ref)}:${tag}`, tag);
  return { registry: ref.registry, repository: ref.repository, tag };
}

/** Split off the host when the first component is one, as Docker does. */
function splitHost(name: string): { host: string | undefined; rest: string } {
  const slash = name.indexOf('/');
  if (slash === -1) return { host: undefined, rest: name };
  const first = name.slice(0, slash);
  const isHost = first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[');
  return isHost ? { host: first, rest: name.slice(slash + 1) } : { host: undefined, rest: name };
}

function normaliseHost(host: string | undefined): string {
  if (host === undefined) return DEFAULT_REGISTRY;
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DEFAULT_REGISTRY : lower;
}

function checkHost(text: string, host: string): void {
  let hostname = host;
  let port: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close === -1) throw invalid(text, `host ${JSON.stringify(host)} has "[" without "]"`);
    hostname = host.slice(0, close + 1);
    const after = host.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) {
        throw invalid(text, `unexpected ${JSON.stringify(after)} after IPv6 address ${hostname}`);
      }
      port = after.slice(1);
    }
    if (!IPV6_RE.test(hostname)) throw invalid(text, `host ${JSON.stringify(hostname)} is not a valid IPv6 address`);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) {
      hostname = host.slice(0, colon);
      port = host.slice(colon + 1);
    }
    if (hostname === '') throw invalid(text, `host ${JSON.stringify(host)} has no name before the port`);
    if (!hostname.split('.').every((label) => DOMAIN_LABEL_RE.test(label))) {
      throw invalid(
        text,
        `host ${JSON.stringify(hostname)} is not a valid host name`,
        'host names are letters, digits, "-" inside labels, and "." between labels',
      );
    }
  }
  if (port !== undefined) {
    const number = /^[0-9]{1,5}$/.test(port) ? Number(port) : NaN;
    if (!(number >= 1 && number <= MAX_PORT)) {
      throw invalid(text, `port ${JSON.stringify(port)} of host ${hostname} is not a number from 1 to ${MAX_PORT}`);
    }
  }
}

function checkPath(text: string, path: string): void {
  if (path === '') throw invalid(text, 'missing repository name');
  for (const component of path.split('/')) {
    if (component === '') {
      throw invalid(text, `repository ${JSON.stringify(path)} has an empty path component`, 'remove the extra "/"');
    }
    if (PATH_COMPONENT_RE.test(component)) continue;
    if (PATH_COMPONENT_RE.test(component.toLowerCase())) {
      throw invalid(text, `repository ${JSON.stringify(path)} contains upper-case letters`, `repository names must be lower case: ${path.toLowerCase()}`);
    }
    throw invalid(
      text,
      `repository path component ${JSON.stringify(component)} is not valid`,
      'path components are lower-case letters and digits, separated by ".", "_", "__" or dashes',
    );
  }
}

function checkTag(text: string, tag: string): void {
  if (tag === '') throw invalid(text, 'empty tag after ":"', 'remove the ":" or name a tag');
  if (!TAG_RE.test(tag)) {
    throw invalid(text, `tag ${JSON.stringify(tag)} is not valid`, 'a tag is up to 128 letters, digits, "_", "." and "-", and does not start with "." or "-"');
  }
}

function invalid(text: string, problem: string, hint?: string): AirlockError {
  return new AirlockError('REF_INVALID', `invalid reference ${JSON.stringify(text)}: ${problem}`, {
    subject: text,
    ...(hint === undefined ? {} : { hint }),
  });
}
