/**
 * Loading an import policy file (`--policy FILE`): read, parse YAML (which also reads JSON),
 * validate against `schemas/policy.schema.json` (ajv's Ajv2020, as the image list does), compile
 * the patterns and load the signer key files. Any problem is one INPUT_INVALID line naming the file.
 */
import { dirname, resolve } from 'node:path';
// schemas/policy.schema.json, compiled at build time (scripts/compile-schemas.mjs).
import validatePolicy from '../generated/policy-validate.js';
import { parse as parseYaml } from 'yaml';
import { AirlockError } from '../errors.js';
import { combinedProblems } from '../imagelist/image-list.js';
import { readSmallFile } from '../fs/small-file.js';
import { loadPublicKey, type TrustedKey } from '../bundle/keys.js';
import { compilePattern, type PatternSpec } from './pattern.js';
import type { ImportPolicy, PatternRules } from './policy.js';

/** A policy lists patterns and keys: 1 MiB is far beyond a real one and stops a wrong path early. */
export const MAX_POLICY_BYTES = 1024 * 1024;

/** YAML aliases expanded at most; more is a "billion laughs" document, not a policy. */
const MAX_ALIAS_COUNT = 100;

/** The policy file as the schema describes it. */
interface RawRules {
  allow?: PatternSpec[];
  deny?: PatternSpec[];
}
interface RawPolicy {
  version: 1;
  registries?: RawRules;
  repositories?: RawRules;
  signers?: { keys?: string[]; keyIds?: string[] };
}

function invalid(path: string, problem: string, cause?: unknown): AirlockError {
  return new AirlockError('INPUT_INVALID', `${path}: ${problem}`, {
    subject: path,
    hint: 'a policy is "version: 1" with optional registries, repositories (allow/deny patterns) and signers; see samples/policy.yaml',
    ...(cause === undefined ? {} : { cause }),
  });
}

async function readPolicyText(path: string): Promise<string> {
  const hint = 'a policy is "version: 1" with optional registries, repositories (allow/deny patterns) and signers; see samples/policy.yaml';
  return (await readSmallFile(path, { maxBytes: MAX_POLICY_BYTES, what: 'policy', hint })).toString('utf8');
}

function compileRules(raw: RawRules | undefined, path: string, field: string): PatternRules {
  const compile = (list: PatternSpec[], kind: string): ReturnType<typeof compilePattern>[] =>
    list.map((spec, i) => compilePattern(spec, `${path}: ${field}.${kind}[${i}]`));
  return {
    ...(raw?.allow === undefined ? {} : { allow: compile(raw.allow, 'allow') }),
    deny: compile(raw?.deny ?? [], 'deny'),
  };
}

/**
 * Load and check a policy file.
 *
 * @throws INPUT_INVALID naming the file and the problem (syntax, schema, a bad regex, a key file
 *   that cannot be read or is not an ed25519 public key)
 * @example
 * const policy = await loadPolicy('samples/policy.yaml');
 * checkImagesAllowed(policy, [{ name: 'quay.io/coreos/etcd:v3.3', registry: 'quay.io', repository: 'quay.io/coreos/etcd' }]);
 */
export async function loadPolicy(path: string): Promise<ImportPolicy> {
  const text = await readPolicyText(path);
  if (text.includes('\u0000')) throw invalid(path, 'binary content, not a YAML or JSON policy');
  let data: unknown;
  try {
    data = parseYaml(text, { maxAliasCount: MAX_ALIAS_COUNT, uniqueKeys: true });
  } catch (err) {
    throw invalid(path, `not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`, err);
  }
  const validate = validatePolicy;
  if (!validate(data)) {
    // Every problem at once (the validator collects them all), each once, in the schema's order.
    const said = (validate.errors ?? [])
      .filter((e) => e.keyword !== 'if')
      .map((e) => {
        const where = e.instancePath === '' ? '' : `${e.instancePath.slice(1).replaceAll('/', '.')}: `;
        const extra = e.keyword === 'additionalProperties' ? ` "${String(e.params['additionalProperty'])}"` : '';
        return `${where}${e.message ?? 'does not match the policy schema'}${extra}`;
      });
    const problems = [...new Set(said)].map((problem) => invalid(path, problem));
    throw problems.length === 0 ? invalid(path, 'does not match the policy schema') : combinedProblems(problems);
  }
  const raw = data as RawPolicy;
  const policy: ImportPolicy = {
    source: path,
    registries: compileRules(raw.registries, path, 'registries'),
    repositories: compileRules(raw.repositories, path, 'repositories'),
  };
  if (raw.signers !== undefined) {
    const keys: TrustedKey[] = [];
    for (const file of raw.signers.keys ?? []) keys.push(await loadPublicKey(resolve(dirname(path), file)));
    policy.signers = { keys, keyIds: raw.signers.keyIds ?? [] };
  }
  return policy;
}
