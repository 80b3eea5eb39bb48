/** Images named on the command line and in `-f` files, merged into one list. */
import { AirlockError } from '../errors.js';
import { parsePlatform, type Platform } from '../oci/descriptor.js';
import { imageListFromRefs, loadImageList, type ImageListEntry } from '../imagelist/index.js';

/**
 * @param refs references given as arguments
 * @param files image list files (`-f`)
 * @param platformFlags `--platform` values: they override the platforms of every entry
 */
export async function listedImages(refs: string[], files: string[], platformFlags: string[]): Promise<ImageListEntry[]> {
  const platforms = platformFlags.map((text): Platform => {
    const p = parsePlatform(text);
    if (p === undefined) {
      throw new AirlockError('USAGE', `--platform ${text}: not os/arch[/variant]`, { hint: 'for example --platform linux/arm64' });
    }
    return p;
  });
  const entries: ImageListEntry[] = [...imageListFromRefs(refs).entries];
  for (const file of files) entries.push(...(await loadImageList(file)).entries);
  if (entries.length === 0) {
    throw new AirlockError('USAGE', 'no images given', { hint: 'name images as arguments or pass -f images.yaml' });
  }
  return platforms.length === 0 ? entries : entries.map((e) => ({ ...e, platforms }));
}
