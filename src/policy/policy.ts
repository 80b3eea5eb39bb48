/**
 * An import policy: which upstream registries and repositories may be imported, and whose
 * signatures are trusted. Loaded by `load.ts`; applied by `bundle import` after the signature and
 * the signed manifest are checked and before anything is written to the target.
 */
import { AirlockError } from '../errors.js';
import type { TrustedKey } from '../bundle/keys.js';
import { firstMatch, type NamePattern } from './pattern.js';

/** Allow and deny patterns for one kind of name. `allow` undefined: everything not denied. */
export interface PatternRules {
  allow?: NamePattern[];
  deny: NamePattern[];
}

/** A loaded, compiled policy. */
export interface ImportPolicy {
  /** The file it came from, for messages. */
  source: string;
  registries: PatternRules;
  repositories: PatternRules;
  /** Absent: the policy does not restrict signers (`--trust` and `--allow-unsigned` decide). */
  signers?: {
    /** Keys loaded from the policy's own `.pub` files. */
    keys: TrustedKey[];
    /** Key ids listed without a key file. */
    keyIds: string[];
  };
}

/** An image as the policy sees it: where it came from upstream. */
export interface PolicySubject {
  /** The name as bundled, for messages. */
  name: string;
  /** Upstream host (`quay.io`, `localhost:5000`); undefined for a name without host. */
  registry: string | undefined;
  /** Upstream repository, host included when there is one: `quay.io/coreos/etcd`. */
  repository: string;
  /** Set when registry and repository are a name the image passes for, not its own: why. */
  reading?: string;
}

/** Why `rules` refuse `value`, or undefined when they accept it. */
function refusal(rules: PatternRules, value: string | undefined, kind: string): string | undefined {
  if (value === undefined) {
    return rules.allow === undefined
      ? undefined
      : `it has no upstream ${kind}, and the policy allows only listed ${kind === 'registry' ? 'registries' : 'repositories'}`;
  }
  const denied = firstMatch(rules.deny, value);
  if (denied !== undefined) return `${kind} ${value} is denied by pattern ${JSON.stringify(denied.text)}`;
  if (rules.allow !== undefined && firstMatch(rules.allow, value) === undefined) {
    return `${kind} ${value} matches no allowed pattern`;
  }
  return undefined;
}

/** Every reason the policy refuses `image` (empty when it may be imported). */
export function policyRefusals(policy: ImportPolicy, image: PolicySubject): string[] {
  return [refusal(policy.registries, image.registry, 'registry'), refusal(policy.repositories, image.repository, 'repository')].filter(
    (r): r is string => r !== undefined,
  );
}

/**
 * Refuse the whole import when any image is outside the policy, naming each one.
 *
 * @throws POLICY with every refused image in `details.refused`
 */
export function checkImagesAllowed(policy: ImportPolicy, images: readonly PolicySubject[]): void {
  const refused = images.flatMap((image) =>
    policyRefusals(policy, image).map((why) => ({ image: image.name, why: image.reading === undefined ? why : `${why} (${image.reading})` })),
  );
  if (refused.length === 0) return;
  const first = refused[0]!;
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more)` : '';
  throw new AirlockError('POLICY', `policy ${policy.source} refuses image ${first.image}: ${first.why}${more}`, {
    subject: first.image,
    hint: 'nothing was written; import a bundle without these images, or change the policy',
    details: { policy: policy.source, refused },
  });
}

/** The keys an import trusts and whether an unsigned bundle may pass, after the policy. */
export interface EffectiveTrust {
  trusted: TrustedKey[];
  allowUnsigned: boolean;
}

/**
 * Combine `--trust` keys and `--allow-unsigned` with the policy's signers.
 *
 * Without a `signers` section the command line decides alone. With one, the policy's own key files
 * are trusted, a `--trust` key only when the policy lists it (by file or id), and unsigned bundles
 * are refused whatever `--allow-unsigned` says: an operator's policy is not overridden by a flag.
 */
export function effectiveTrust(policy: ImportPolicy | undefined, cliKeys: readonly TrustedKey[], allowUnsigned: boolean): EffectiveTrust {
  if (policy?.signers === undefined) return { trusted: [...cliKeys], allowUnsigned };
  const { keys, keyIds } = policy.signers;
  const allowed = new Set([...keyIds, ...keys.map((k) => k.keyId)]);
  const trusted = [...keys];
  for (const key of cliKeys) {
    if (allowed.has(key.keyId) && !trusted.some((k) => k.keyId === key.keyId)) trusted.push(key);
  }
  return { trusted, allowUnsigned: false };
}
