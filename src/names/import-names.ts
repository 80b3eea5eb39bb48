/**
 * Where each image of a bundle lands: the `--to` target and the name mapping of `bundle import`.
 *
 * Rules (documented in the README; scripts rely on them):
 * 1. By default the upstream host stays in the namespace: `quay.io/coreos/etcd:v3.3` lands as
 *    `HOST/PREFIX/quay.io/coreos/etcd:v3.3`, `docker.io/library/busybox:musl` as
 *    `HOST/PREFIX/docker.io/library/busybox:musl`.
 * 2. A repository path may not contain `:`, so a port becomes `_PORT`: `localhost:5000/x:1` lands as
 *    `HOST/PREFIX/localhost_5000/x:1`. An IPv6 host `[fe80::1]:5000` becomes `ipv6-fe80--1_5000`.
 *    Host names cannot contain `_`, so the mapping never makes two hosts one.
 * 3. `--strip-host` drops the host: `HOST/PREFIX/coreos/etcd:v3.3`; two images that would then
 *    share a target reference with different content are refused before anything is written.
 * 4. Tags are kept. A name with only a digest (`quay.io/coreos/etcd@sha256:…`) is pushed by digest
 *    and tagged nothing.
 * 5. A name without a host (an `oci:` source's `team/app:1.0`) maps cleanly when it is a valid
 *    repository path with an explicit tag or digest: `HOST/PREFIX/team/app:1.0`. A bare name such
 *    as `v1` (a layout's tag) names no repository and is refused.
 * 6. For `--to oci:DIR` the name in `index.json` is the target reference without host:
 *    `quay.io/coreos/etcd:v3.3` (or `coreos/etcd:v3.3` with `--strip-host`).
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import { MAX_NAME_LENGTH, parseReference } from '../ref/reference.js';
import { LAYOUT_PREFIX } from '../ref/layout-reference.js';

/** Where `bundle import` writes: a registry (with an optional repository prefix) or a layout. */
export type ImportTarget = { kind: 'registry'; host: string; prefix: string } | { kind: 'layout'; dir: string };

/** One bundle image and where it lands. */
export interface ImageMapping {
  /** The name in the bundle. */
  name: string;
  /** Upstream host, undefined for a name without one. */
  registry: string | undefined;
  /** Upstream repository, host included when there is one (what a policy matches). */
  upstreamRepository: string;
  /** Repository path in the target: `PREFIX/quay.io/coreos/etcd`. */
  repository: string;
  /** Tag to apply last; undefined for a digest-only name. */
  tag: string | undefined;
  /** Digest of the image's top manifest or index, as bundled. */
  digest: Digest;
  /** Full target reference: `HOST/REPO:TAG` or `HOST/REPO@DIGEST` (`REPO:TAG` for a layout). */
  reference: string;
}

/** The target as an operator writes it: `HOST/PREFIX` or `oci:DIR`. */
export function describeTarget(target: ImportTarget): string {
  return target.kind === 'layout' ? `oci:${target.dir}` : target.prefix === '' ? target.host : `${target.host}/${target.prefix}`;
}

/** The name an operator would pull: `HOST/REPO:TAG`, `HOST/REPO@DIGEST`, or in a layout `REPO:TAG`. */
export function targetName(target: ImportTarget, repository: string, reference: string): string {
  const name = `${repository}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
  return target.kind === 'layout' ? name : `${target.host}/${name}`;
}

/** A host-like first component, as the reference grammar decides. */
const HOST_LIKE = /^(?:[^/]*[.:][^/]*|localhost|\[[^/]*)$/;

/** One repository path component (distribution `path-component`). */
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** Placeholder host used only to let the reference parser check a host-less path and tag. */
const CHECK_HOST = 'airlock.invalid';

function usage(message: string, hint: string, subject?: string): AirlockError {
  return new AirlockError('USAGE', message, { hint, ...(subject === undefined ? {} : { subject }) });
}

/**
 * Parse `--to`: `HOST[:PORT][/PREFIX]` or `oci:DIR`.
 *
 * @example
 * parseImportTarget('registry.lan:5000/mirror') // { kind: 'registry', host: 'registry.lan:5000', prefix: 'mirror' }
 * parseImportTarget('oci:/srv/images')          // { kind: 'layout', dir: '/srv/images' }
 */
export function parseImportTarget(text: string): ImportTarget {
  const hint = 'write --to HOST[:PORT][/PREFIX] (e.g. registry.lan:5000/mirror) or --to oci:DIR';
  if (text.startsWith(LAYOUT_PREFIX)) {
    const dir = text.slice(LAYOUT_PREFIX.length);
    if (dir === '' || dir.includes(':')) throw usage(`--to ${text}: expected oci:DIR without an image name`, hint, text);
    return { kind: 'layout', dir };
  }
  const trimmed = text.replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const host = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const prefix = slash === -1 ? '' : trimmed.slice(slash + 1);
  if (host === '' || !HOST_LIKE.test(host)) {
    throw usage(`--to ${text}: ${JSON.stringify(host)} is not a registry host (it needs a dot, a port, or to be localhost)`, hint, text);
  }
  let parsed;
  try {
    parsed = parseReference(`${host}/${prefix === '' ? '' : `${prefix}/`}x:t`);
  } catch (err) {
    throw usage(`--to ${text}: ${(err as AirlockError).message.replace(/^invalid reference "[^"]*": /, '')}`, hint, text);
  }
  return { kind: 'registry', host: parsed.registry, prefix };
}

/**
 * The path component an upstream host becomes: ports as `_PORT`, IPv6 as `ipv6-` + the address
 * with `:` as `-`.
 *
 * @example
 * hostComponent('quay.io')        // 'quay.io'
 * hostComponent('localhost:5000') // 'localhost_5000'
 * hostComponent('[::1]:5000')     // 'ipv6---1_5000'
 */
export function hostComponent(registry: string): string {
  let base: string;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    base = `ipv6-${registry.slice(1, close).toLowerCase().replaceAll(':', '-')}`;
    const rest = registry.slice(close + 1);
    port = rest.startsWith(':') ? rest.slice(1) : undefined;
  } else {
    const colon = registry.indexOf(':');
    base = colon === -1 ? registry : registry.slice(0, colon);
    port = colon === -1 ? undefined : registry.slice(colon + 1);
  }
  const component = port === undefined ? base : `${base}_${port}`;
  if (!PATH_COMPONENT_RE.test(component)) {
    throw new AirlockError('UNSUPPORTED', `upstream host ${registry} cannot be written as a repository path component`, {
      subject: registry,
      hint: 'import with --strip-host',
    });
  }
  return component;
}

/** A bundle image name split into upstream host, repository path, tag and digest. */
interface UpstreamName {
  registry: string | undefined;
  path: string;
  tag?: string;
  digest?: Digest;
}

/**
 * Parse a name recorded in a bundle.
 *
 * @throws INPUT_INVALID for a name that is not a registry reference with a tag or digest
 */
export function parseBundleName(name: string): UpstreamName {
  const refuse = (why: string): AirlockError =>
    new AirlockError('INPUT_INVALID', `image ${JSON.stringify(name)} in the bundle cannot be imported: ${why}`, {
      subject: name,
      hint: 'name images HOST/REPOSITORY:TAG when creating the bundle (for an oci: source, give the layout entry a full reference as its name)',
    });
  const first = name.split(/[/@]/)[0] ?? '';
  const hasHost = name.includes('/') && HOST_LIKE.test(first) && !first.includes('@');
  let ref;
  try {
    ref = parseReference(hasHost ? name : `${CHECK_HOST}/${name}`, { defaultTag: false });
  } catch (err) {
    throw refuse((err as AirlockError).message.replace(/^invalid reference "[^"]*": /, ''));
  }
  if (ref.tag === undefined && ref.digest === undefined) {
    throw refuse(hasHost || name.includes('/') ? 'it has neither a tag nor a digest' : 'it is a bare name (a layout tag?), not HOST/REPOSITORY:TAG');
  }
  return {
    registry: hasHost ? ref.registry : undefined,
    path: ref.repository,
    ...(ref.tag === undefined ? {} : { tag: ref.tag }),
    ...(ref.digest === undefined ? {} : { digest: ref.digest }),
  };
}

/** Options of {@link mapImages}. */
export interface MapOptions {
  stripHost?: boolean;
}

/**
 * Map every bundle image to its target repository and reference.
 *
 * @throws INPUT_INVALID for a name that does not map; USAGE when two images would land on the same
 *   reference with different content, or a target name would be too long
 */
export function mapImages(images: ReadonlyArray<{ name: string; digest: Digest }>, target: ImportTarget, opts: MapOptions = {}): ImageMapping[] {
  const prefix = target.kind === 'registry' ? target.prefix : '';
  const byReference = new Map<string, ImageMapping>();
  const out: ImageMapping[] = [];
  for (const image of images) {
    const up = parseBundleName(image.name);
    const parts = [prefix, up.registry === undefined || opts.stripHost === true ? '' : hostComponent(up.registry), up.path];
    const repository = parts.filter((p) => p !== '').join('/');
    const named = up.tag === undefined ? `${repository}@${image.digest}` : `${repository}:${up.tag}`;
    const full = target.kind === 'registry' ? `${target.host}/${repository}` : repository;
    if (full.length > MAX_NAME_LENGTH) {
      throw usage(
        `image ${image.name} would land as ${full}, longer than ${MAX_NAME_LENGTH} characters`,
        'use a shorter --to prefix or --strip-host',
        image.name,
      );
    }
    const mapping: ImageMapping = {
      name: image.name,
      registry: up.registry,
      upstreamRepository: up.registry === undefined ? up.path : `${up.registry}/${up.path}`,
      repository,
      tag: up.tag,
      digest: image.digest,
      reference: target.kind === 'registry' ? `${target.host}/${named}` : named,
    };
    const other = byReference.get(mapping.reference);
    if (other !== undefined && other.digest !== mapping.digest) {
      throw usage(
        `images ${other.name} and ${image.name} would both land as ${mapping.reference}`,
        opts.stripHost === true ? 'import without --strip-host, or into separate --to prefixes' : 'import them into separate --to prefixes',
        mapping.reference,
      );
    }
    byReference.set(mapping.reference, mapping);
    out.push(mapping);
  }
  return out;
}
