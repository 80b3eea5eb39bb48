/**
 * Expansion: from what the operator listed (references, repositories with tag filters, layout
 * directories) to the concrete images to resolve, each with the endpoint to read it from.
 */
import { AirlockError } from '../errors.js';
import { formatReference, isValidTag, parseReference, type ImageReference } from '../ref/reference.js';
import { selectTags } from '../imagelist/tag-filter.js';
import type { ImageListEntry } from '../imagelist/image-list.js';
import { readIndex } from '../layout/index-file.js';
import { REF_NAME_ANNOTATION } from '../layout/paths.js';
import type { CallOptions, Source } from '../transport/types.js';
import type { ImageToResolve } from './resolve.js';
import { silent, type ProgressListener } from './progress.js';

/** Bad tags named one by one in a warning; more are counted. */
const MAX_TAGS_NAMED = 5;

/** How to reach endpoints; injected so the CLI decides TLS, credentials and so on. */
export interface Endpoints {
  registry(host: string): Source;
  layout(dir: string): Source;
}

/**
 * @param opts.onProgress receives a warning for every repository whose tag list holds tags outside
 *   the tag grammar: they are skipped (a tag named in the list itself was checked when parsed)
 */
export async function expandImages(
  listed: ImageListEntry[],
  endpoints: Endpoints,
  opts: CallOptions & { onProgress?: ProgressListener } = {},
): Promise<ImageToResolve[]> {
  const progress = opts.onProgress ?? silent;
  const call: CallOptions = opts.signal === undefined ? {} : { signal: opts.signal };
  const out: ImageToResolve[] = [];
  for (const item of listed) {
    const platforms = item.platforms === undefined ? {} : { platforms: item.platforms };
    if (item.ref.kind === 'layout') {
      const source = endpoints.layout(item.ref.dir);
      const names = item.ref.name !== undefined ? [item.ref.name] : await layoutNames(item.ref.dir);
      for (const name of names) {
        const recorded = item.as === undefined ? recordedName(name) : formatReference(item.as);
        out.push({ name: recorded, sourceRef: `oci:${item.ref.dir}:${name}`, source, repository: '', reference: name, ...platforms });
      }
      continue;
    }
    const ref = item.ref.ref;
    const source = endpoints.registry(ref.registry);
    if (item.tagFilter === undefined) {
      const reference = ref.digest ?? ref.tag;
      if (reference === undefined) throw new AirlockError('INTERNAL', `${item.source}: reference without tag or digest`);
      const name = formatReference(ref);
      out.push({ name, sourceRef: name, source, repository: ref.repository, reference, ...platforms });
      continue;
    }
    const listedTags = await source.listTags(ref.repository, call);
    const all = validTags(listedTags, `${ref.registry}/${ref.repository}`, progress);
    const tags = selectTags(all, item.tagFilter);
    if (tags.length === 0) {
      throw new AirlockError('NOT_FOUND', `${item.source}: no tag of ${ref.registry}/${ref.repository} matches the filter (${all.length} tags listed)`, {
        subject: `${ref.registry}/${ref.repository}`,
        hint: 'check the tags filter in the image list',
      });
    }
    for (const tag of tags) {
      const name = formatReference({ registry: ref.registry, repository: ref.repository, tag });
      out.push({ name, sourceRef: name, source, repository: ref.repository, reference: tag, ...platforms });
    }
  }
  return dedupe(out);
}

/** The tags of `tags` that fit the tag grammar; a warning names the others. */
function validTags(tags: readonly string[], repository: string, progress: ProgressListener): string[] {
  const bad = tags.filter((t) => !isValidTag(t));
  if (bad.length === 0) return [...tags];
  const named = bad.slice(0, MAX_TAGS_NAMED).map((t) => JSON.stringify(t.length > 80 ? `${t.slice(0, 77)}...` : t));
  const more = bad.length > MAX_TAGS_NAMED ? ` and ${bad.length - MAX_TAGS_NAMED} more` : '';
  progress({
    kind: 'warning',
    message: `${repository}: skipping ${bad.length} listed tag${bad.length === 1 ? '' : 's'} that ${bad.length === 1 ? 'is' : 'are'} not valid tags: ${named.join(', ')}${more}`,
  });
  return tags.filter((t) => isValidTag(t));
}

/** Every named image of a layout, in index order. */
async function layoutNames(dir: string): Promise<string[]> {
  const index = await readIndex(dir);
  const names = index.manifests.map((d) => d.annotations?.[REF_NAME_ANNOTATION]).filter((n): n is string => n !== undefined);
  if (names.length === 0) {
    throw new AirlockError('NOT_FOUND', `oci:${dir} has no named images`, {
      subject: dir,
      hint: 'name the image explicitly: oci:DIR:NAME',
    });
  }
  return [...new Set(names)];
}

/**
 * A layout name that is a full registry reference (`quay.io/coreos/etcd:v3.3`) is recorded in its
 * canonical form, so it imports under its upstream name; any other name (`v1`) is kept as it is.
 */
export function recordedName(name: string): string {
  const first = name.split('/')[0] ?? '';
  if (!name.includes('/') || !/[.:]|^localhost$/.test(first)) return name;
  try {
    return formatReference(parseReference(name) as ImageReference);
  } catch {
    return name;
  }
}

function dedupe(images: ImageToResolve[]): ImageToResolve[] {
  const seen = new Set<string>();
  return images.filter((img) => (seen.has(img.name) ? false : (seen.add(img.name), true)));
}
