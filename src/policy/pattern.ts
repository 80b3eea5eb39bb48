/**
 * Name patterns of an import policy: globs (`quay.io/coreos/*`, `docker.io/library/**`) or regular
 * expressions (`{ regex: "^quay\\.io/coreos/etcd(-.*)?$" }`). Both match the WHOLE name: a policy
 * is an allow list, and `quay.io` must not also allow `quay.io.attacker.example`.
 */
import { AirlockError } from '../errors.js';

/** What a policy file holds for one pattern. */
export type PatternSpec = string | { regex: string };

/** A compiled pattern; `text` is how it is quoted in messages. */
export interface NamePattern {
  text: string;
  test(name: string): boolean;
}

/** Regex metacharacters, escaped when a glob character is meant literally. */
const REGEX_SPECIAL = /[.+^${}()|[\]\\]/g;

/**
 * Translate a glob to an anchored regular expression source.
 * - `**` matches anything, `/` included (any depth of path);
 * - `*` matches anything within one path component (no `/`);
 * - `?` matches one character other than `/`;
 * - everything else is literal (so `[::1]:5000` is a plain host name).
 *
 * @example
 * globToRegExp('quay.io/coreos/*').test('quay.io/coreos/etcd')      // true
 * globToRegExp('quay.io/coreos/*').test('quay.io/coreos/etcd/tools') // false
 * globToRegExp('docker.io/**').test('docker.io/library/busybox')     // true
 */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (c === '*') {
      source += '[^/]*';
    } else if (c === '?') {
      source += '[^/]';
    } else {
      source += c.replace(REGEX_SPECIAL, '\\$&');
    }
  }
  return new RegExp(`^(?:${source})$`, 'u');
}

/**
 * Compile one pattern from a policy file.
 *
 * @param where names the pattern in errors, e.g. `policy.yaml: repositories.allow[2]`
 * @throws INPUT_INVALID when a regex does not compile
 */
export function compilePattern(spec: PatternSpec, where: string): NamePattern {
  if (typeof spec === 'string') {
    const re = globToRegExp(spec);
    return { text: spec, test: (name) => re.test(name) };
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${spec.regex})$`, 'u');
  } catch (err) {
    throw new AirlockError('INPUT_INVALID', `${where}: regex ${JSON.stringify(spec.regex)} is not valid: ${(err as Error).message}`, {
      subject: where,
      hint: 'write a JavaScript regular expression; it is matched against the whole name',
      cause: err,
    });
  }
  return { text: `regex ${spec.regex}`, test: (name) => re.test(name) };
}

/** The first pattern that matches `name`, or undefined. */
export function firstMatch(patterns: readonly NamePattern[], name: string): NamePattern | undefined {
  return patterns.find((p) => p.test(name));
}
