/**
 * The receiving side of a delta bundle: when some of the blobs a delta does not carry (its
 * `external` list) are nowhere in the target, the one error that names every one of them with the
 * earlier bundle (or the stale inventory) it came from.
 *
 * Where a blob is looked for is the target's business: the check phase HEADs it in every repository
 * of the import that needs it, and a registry then searches its other repositories
 * (registry/blob-search.ts); an OCI layout keeps one blob store for all names, so a file of the
 * right size is enough.
 */
import { AirlockError } from '../errors.js';
import type { Digest } from '../digest/digest.js';
import type { Descriptor } from '../oci/descriptor.js';
import type { BundleManifest, BundleParent } from '../bundle/manifest.js';
import type { SearchReport } from '../transport/types.js';

/** An external blob that neither the bundle nor the target holds. */
export interface MissingBlob {
  desc: Descriptor;
  /** The first image that needs it. */
  image: string;
  /** Target repositories that need it. */
  repositories: string[];
  /** The parent the bundle says delivered it (`external[].bundle`). */
  parent: Digest | undefined;
}

/** Everything {@link missingContentError} says. */
export interface MissingContext {
  path: string;
  /** `HOST/PREFIX` or `oci:DIR`. */
  target: string;
  bundle: BundleManifest;
  missing: readonly MissingBlob[];
  search: SearchReport | undefined;
  /** How to list the target from the secure side: `--registry HOST/PREFIX` or `--layout DIR`. */
  inventoryArgs: string;
}

function describeBlob(m: MissingBlob): string {
  return `blob ${m.desc.digest} (${m.desc.size} bytes, needed by ${m.image})`;
}

function describeParent(p: BundleParent): string {
  return `${p.id} (created ${p.created}${p.keyId === undefined ? '' : `, signed by key ${p.keyId}`})`;
}

/** One line per missing blob, naming where it should have come from. */
function problemFor(m: MissingBlob, parents: ReadonlyMap<string, BundleParent>): { message: string; subject: string } {
  const parent = m.parent === undefined ? undefined : parents.get(m.parent);
  let message: string;
  if (parent?.kind === 'inventory') {
    message = `the inventory ${parent.id} is stale: the target no longer holds ${describeBlob(m)}`;
  } else if (parent !== undefined) {
    message = `${describeBlob(m)} is carried by bundle ${parent.id}, not imported here`;
  } else {
    message = `${describeBlob(m)} is carried by ${m.parent ?? 'an unnamed bundle'}, which the bundle does not list as a parent`;
  }
  return { message, subject: m.desc.digest };
}

/** The next step: the parent bundles to import first (oldest first), or a fresh inventory. */
function nextSteps(ctx: MissingContext, parents: readonly BundleParent[]): string {
  const steps: string[] = [];
  const bundles = parents.filter((p) => p.kind === 'bundle');
  const inventories = parents.filter((p) => p.kind === 'inventory');
  if (bundles.length === 1) steps.push(`import bundle ${describeParent(bundles[0]!)} into ${ctx.target} first, then this one again`);
  if (bundles.length > 1) steps.push(`import bundles ${bundles.map(describeParent).join(', ')} into ${ctx.target} first, in that order, then this one again`);
  for (const inv of inventories) {
    steps.push(
      `the target changed since inventory ${inv.id} was made (${inv.created}): make a new one (airlock inventory ${ctx.inventoryArgs} > have.json), create the delta again with --since have.json, or import a full bundle`,
    );
  }
  if (steps.length === 0)
    steps.push(`import the bundle that carries ${parents.length === 0 ? 'them' : 'it'} into ${ctx.target} first, or import a full bundle`);
  const s = ctx.search;
  if (s !== undefined && (s.exhausted || !s.catalogComplete)) {
    steps.push(
      `the search stopped after ${s.probes} checks${s.catalogComplete ? '' : ` in the first ${s.catalog ?? 0} repositories of the catalog`}: a blob may sit in a repository not searched`,
    );
  } else if (s?.catalogError !== undefined) {
    steps.push(`the catalog could not be searched (${s.catalogError})`);
  }
  return `${steps.join('; ')}. Nothing was written`;
}

/**
 * The NOT_FOUND error for external blobs found nowhere in the target: the message names the
 * first, `details.problems` every one (the CLI prints them), `details.missing` them as data.
 */
export function missingContentError(ctx: MissingContext): AirlockError {
  const parents = new Map((ctx.bundle.parents ?? []).map((p) => [p.id as string, p]));
  const problems = ctx.missing.map((m) => problemFor(m, parents));
  const needed = [...new Set(ctx.missing.map((m) => m.parent))];
  // The parents to act on, in the bundle's order (oldest first); unknown ids only in the problems.
  const involved = (ctx.bundle.parents ?? []).filter((p) => needed.includes(p.id));
  const n = ctx.missing.length;
  const more = n > 1 ? ` (and ${n - 1} more)` : '';
  return new AirlockError(
    'NOT_FOUND',
    `${ctx.path} is a delta bundle; ${ctx.target} lacks ${n} blob${n === 1 ? '' : 's'} it does not carry: ${problems[0]!.message}${more}`,
    {
      subject: ctx.missing[0]!.desc.digest,
      hint: nextSteps(ctx, involved),
      details: {
        problems,
        missing: ctx.missing.map((m) => ({ ...m.desc, image: m.image, repositories: m.repositories, parent: m.parent })),
        parents: involved,
        ...(ctx.search === undefined ? {} : { search: ctx.search }),
      },
    },
  );
}
