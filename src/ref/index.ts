/**
 * Image references: registry references (`[host[:port]/]path[:tag][@digest]`, normalised as
 * Docker does) and OCI image layout references (`oci:DIR[:NAME]`).
 */
export {
  DEFAULT_REGISTRY,
  DEFAULT_TAG,
  MAX_NAME_LENGTH,
  formatReference,
  isValidTag,
  parseReference,
  repositoryName,
  withDigest,
  withTag,
  withoutDockerTransport,
  type ImageReference,
  type ParseReferenceOptions,
} from './reference.js';
export {
  LAYOUT_PREFIX,
  formatAnyReference,
  formatLayoutReference,
  parseAnyReference,
  parseLayoutReference,
  type AnyReference,
  type LayoutReference,
} from './layout-reference.js';
