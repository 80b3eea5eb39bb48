/**
 * Reading and updating a layout's `index.json`.
 *
 * Updates are read-modify-write under an in-process queue and land atomically (temp + rename), so a
 * crash leaves either the old or the new index, never a torn one.
 */
import { join } from 'node:path';
import { AirlockError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { ImageIndex } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { writeFileAtomic } from './atomic.js';
import { INDEX_FILE, REF_NAME_ANNOTATION } from './paths.js';

/** Cap on `index.json`: it lists names, not content; 64 MiB is far beyond any real layout. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

export async function readIndex(dir: string): Promise<ImageIndex> {
  const file = join(dir, INDEX_FILE);
  let bytes: Buffer;
  try {
    bytes = await readSmallFile(file, { maxBytes: MAX_INDEX_BYTES, what: 'OCI layout index.json' });
  } catch (err) {
    if ((err as AirlockError).code === 'INPUT_INVALID' && ((err as AirlockError).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new AirlockError('INPUT_INVALID', `${dir} is not an OCI image layout: it has no index.json`, {
        subject: dir,
        hint: 'point oci: at a directory written by airlock, skopeo or another OCI tool',
      });
    }
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new AirlockError('INPUT_INVALID', `${file} is not valid JSON`, { subject: file });
  }
  const index = doc as ImageIndex;
  if (index === null || typeof index !== 'object' || !Array.isArray(index.manifests)) {
    throw new AirlockError('INPUT_INVALID', `${file} has no manifests array`, { subject: file });
  }
  return index;
}

export function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
}

/** The entries whose `org.opencontainers.image.ref.name` equals `name`. */
export function findByName(index: ImageIndex, name: string): Descriptor[] {
  return index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] === name);
}

/**
 * Insert or replace the entry named `name` (an entry without a name is matched by digest), keeping
 * the other entries in place.
 */
export function upsertEntry(index: ImageIndex, entry: Descriptor): ImageIndex {
  const name = entry.annotations?.[REF_NAME_ANNOTATION];
  const keep = index.manifests.filter((d) => {
    const other = d.annotations?.[REF_NAME_ANNOTATION];
    return name === undefined ? !(other === undefined && d.digest === entry.digest) : other !== name;
  });
  return { ...index, manifests: [...keep, entry] };
}

const queues = new Map<string, Promise<unknown>>();

/** Apply `change` to the index of `dir`, serialised per directory within this process. */
export function updateIndex(dir: string, change: (index: ImageIndex) => ImageIndex): Promise<void> {
  const previous = queues.get(dir) ?? Promise.resolve();
  const next = previous.then(async () => {
    let index: ImageIndex;
    try {
      index = await readIndex(dir);
    } catch (err) {
      if (err instanceof AirlockError && err.message.includes('has no index.json')) index = emptyIndex();
      else throw err;
    }
    const updated = change(index);
    await writeFileAtomic(join(dir, INDEX_FILE), Buffer.from(JSON.stringify(updated, null, 2) + '\n'));
  });
  const settled = next.catch(() => undefined);
  queues.set(dir, settled);
  void settled.then(() => {
    if (queues.get(dir) === settled) queues.delete(dir);
  });
  return next;
}
