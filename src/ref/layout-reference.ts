/**
 * OCI image layout references, `oci:DIR[:NAME]`, as skopeo writes them, and
 * {@link parseAnyReference}, which tells them from registry references.
 */
import { AirlockError } from '../errors.js';
import { formatReference, parseReference, withoutDockerTransport, type ImageReference, type ParseReferenceOptions } from './reference.js';

/** The prefix that marks an OCI image layout reference. */
export const LAYOUT_PREFIX = 'oci:';

/** An image in an OCI image layout directory. */
export interface LayoutReference {
  /** The layout directory, as written (relative paths stay relative). */
  dir: string;
  /**
   * The image's `org.opencontainers.image.ref.name` in the layout's `index.json`, e.g. `v3.3` or
   * `quay.io/coreos/etcd:v3.3`. Absent when the reference names only the directory.
   */
  name?: string;
}

/** A reference to either transport, as accepted on the command line and in image lists. */
export type AnyReference = { kind: 'registry'; ref: ImageReference } | ({ kind: 'layout' } & LayoutReference);

/**
 * A ref name component (image-spec `annotations.md`, `org.opencontainers.image.ref.name`):
 * alphanumerics separated by one of `-._:@+` or by `--`.
 */
const REF_NAME_COMPONENT_RE = /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*$/;

/**
 * Parse `oci:DIR[:NAME]`. DIR ends at the first `:` after the prefix, as in skopeo, so a
 * directory path cannot contain `:`; NAME may contain `/` and `:`.
 *
 * @throws AirlockError `REF_INVALID` for a missing prefix, an empty DIR or an invalid NAME.
 * @example
 * parseLayoutReference('oci:/srv/layout:quay.io/coreos/etcd:v3.3');
 * // { dir: '/srv/layout', name: 'quay.io/coreos/etcd:v3.3' }
 */
export function parseLayoutReference(text: string): LayoutReference {
  if (!text.startsWith(LAYOUT_PREFIX)) {
    throw invalid(text, `does not start with "${LAYOUT_PREFIX}"`, 'write layout references as oci:DIR[:NAME]');
  }
  const body = text.slice(LAYOUT_PREFIX.length);
  const colon = body.indexOf(':');
  const dir = colon === -1 ? body : body.slice(0, colon);
  if (dir === '') throw invalid(text, 'empty directory', 'write layout references as oci:DIR[:NAME], e.g. oci:./layout:v1');
  if (colon === -1) return { dir };
  const name = body.slice(colon + 1);
  if (name === '') throw invalid(text, 'empty image name after ":"', 'remove the ":" or name an image in the layout');
  if (!name.split('/').every((component) => REF_NAME_COMPONENT_RE.test(component))) {
    throw invalid(
      text,
      `image name ${JSON.stringify(name)} is not a valid OCI ref name`,
      'names are letters and digits separated by "/", "-", ".", "_", ":", "@" or "+"; a directory path cannot contain ":"',
    );
  }
  return { dir, name };
}

/** `oci:DIR` or `oci:DIR:NAME`; parsing the result gives the same reference back. */
export function formatLayoutReference(ref: LayoutReference): string {
  return ref.name === undefined ? `${LAYOUT_PREFIX}${ref.dir}` : `${LAYOUT_PREFIX}${ref.dir}:${ref.name}`;
}

/**
 * Parse a layout reference when the text starts with `oci:`, a registry reference otherwise,
 * written with or without skopeo's `docker://` (see {@link withoutDockerTransport}). (So a Docker
 * Hub image called `oci` must be written `docker.io/library/oci:TAG`.)
 *
 * @param options passed to {@link parseReference} for registry references.
 * @throws AirlockError `USAGE` for another transport of skopeo's; else as the two parsers do
 */
export function parseAnyReference(text: string, options: ParseReferenceOptions = {}): AnyReference {
  if (text.startsWith(LAYOUT_PREFIX)) return { kind: 'layout', ...parseLayoutReference(text) };
  return { kind: 'registry', ref: parseReference(withoutDockerTransport(text), options) };
}

/** The canonical text of either kind of reference. */
export function formatAnyReference(ref: AnyReference): string {
  return ref.kind === 'registry' ? formatReference(ref.ref) : formatLayoutReference(ref);
}

function invalid(text: string, problem: string, hint: string): AirlockError {
  return new AirlockError('REF_INVALID', `invalid layout reference ${JSON.stringify(text)}: ${problem}`, {
    subject: text,
    hint,
  });
}
