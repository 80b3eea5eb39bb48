/**
 * Image lists: which images (or repositories, filtered by tag) go into a bundle, loaded from a
 * YAML or JSON file (`-f images.yaml`, format in `schemas/images.schema.json`) or built from
 * references on the command line.
 */
export {
  COMMAND_LINE,
  imageListFromRefs,
  type FromRefsOptions,
  type ImageList,
  type ImageListEntry,
} from './image-list.js';
export { MAX_IMAGE_LIST_BYTES, loadImageList } from './load.js';
export { IMAGE_LIST_SCHEMA_ID } from './schema.js';
export { compileTagFilter, selectTags, type FieldLocator, type TagFilter, type TagFilterSpec } from './tag-filter.js';
