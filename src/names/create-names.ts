/**
 * Names `bundle create` records must be names `bundle import` can map: checked before anything is
 * fetched, so a bundle is never signed that the other side of the gap refuses for its names.
 */
import { AirlockError, isAirlockError } from '../errors.js';
import { LAYOUT_PREFIX } from '../ref/layout-reference.js';
import type { ImageToResolve } from '../copy/resolve.js';
import { parseBundleName } from './import-names.js';
import { checkNameCollisions } from './name-claims.js';

/** How to give the `oci:` image `sourceRef` a name import can map. */
function renameHint(sourceRef: string): string {
  return `record it under a full name in an image list: - { ref: "${sourceRef}", as: "HOST/REPOSITORY:TAG" }, e.g. as: docker.io/library/busybox:musl`;
}

/**
 * @throws INPUT_INVALID for a name import cannot map (a bare `oci:` name such as `busybox-musl`,
 *   as skopeo writes them), naming the image and how to rename it; or for two names that would land
 *   in one repository
 */
export function checkImageNames(images: readonly ImageToResolve[]): void {
  for (const image of images) {
    try {
      parseBundleName(image.name);
    } catch (err) {
      if (!isAirlockError(err, 'INPUT_INVALID')) throw err;
      const layout = image.sourceRef.startsWith(LAYOUT_PREFIX);
      const why = err.message.replace(/^image "[^"]*" in the bundle cannot be imported: /, '');
      throw new AirlockError('INPUT_INVALID', `${image.sourceRef}: ${JSON.stringify(image.name)} cannot be mapped to a target name at import: ${why}`, {
        subject: image.name,
        hint: layout ? renameHint(image.sourceRef) : 'name images HOST/REPOSITORY:TAG',
        cause: err,
      });
    }
  }
  checkNameCollisions(
    images.map((i) => i.name),
    'rename one of them (as: in the image list, for an oci: source) or bundle them separately',
  );
}
