/**
 * Seed the source registry from the corpus layout, every digest preserved.
 *
 * OCI images of the main set go up with `skopeo copy --all --preserve-digests`. Docker-media-type
 * images cannot (skopeo's `oci:` reader ignores them) and the tiny images would cost one skopeo
 * process each, so those are pushed over plain HTTP by the tests' seeder
 * (`test/support/seed.js`). Seeding is not measured.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { seedRegistry as pushOverHttp } from '../test/support/seed.js';

const run = promisify(execFile);
const OCI_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json']);
/** Manifests are at most 4 MiB; skopeo prints little. */
const MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * Push `images` from the layout `dir` into the registry `reg`.
 * @param {import('../test/support/registry.js').TestRegistry} reg
 * @param {string} dir
 * @param {import('./corpus.mjs').BenchImage[]} images
 * @param {{ skopeo: boolean }} opts use skopeo for OCI images (else HTTP for all)
 */
export async function seedRegistry(reg, dir, images, opts) {
  const viaSkopeo = opts.skopeo ? images.filter((i) => OCI_TYPES.has(i.mediaType)) : [];
  for (const image of viaSkopeo) {
    const args = [
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci:${dir}:${image.name}`,
      `docker://${reg.host}/${image.repository}:${image.tag}`,
    ];
    try {
      await run('skopeo', args, { maxBuffer: MAX_OUTPUT });
    } catch (err) {
      const e = /** @type {Error & { stderr?: string }} */ (err);
      throw new Error(`seed: skopeo ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  }
  const rest = images.filter((i) => !viaSkopeo.includes(i));
  if (rest.length > 0)
    await pushOverHttp(
      reg,
      dir,
      rest.map((i) => i.name),
    );
}
