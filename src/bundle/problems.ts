/** Problems found by a check that goes on after the first one, so it can name them all. */
import { AirlockError, type ErrorCode } from '../errors.js';

export interface Problem {
  code: Extract<ErrorCode, 'INTEGRITY' | 'SIGNATURE' | 'POLICY'>;
  /** The entry, blob digest, image name or key the problem is about. */
  subject: string;
  message: string;
}

/**
 * Most problems one check keeps: 100. A hostile archive can hold a million bad entries; the first
 * hundred show the pattern, the rest are only counted, so memory and `--json` output stay bounded.
 */
export const MAX_PROBLEMS = 100;

/** Problems in the order found: the first {@link MAX_PROBLEMS} kept, all counted. */
export class ProblemList {
  readonly items: Problem[] = [];
  /** Every problem added, kept or not. */
  count = 0;
  /** Set when the check stopped looking once the list was full (it cannot say how many more there are). */
  stopped = false;

  /** True once {@link MAX_PROBLEMS} are kept. */
  get full(): boolean {
    return this.items.length >= MAX_PROBLEMS;
  }
  #signature = false;

  add(...problems: Problem[]): void {
    for (const p of problems) {
      this.count += 1;
      if (p.code === 'SIGNATURE') this.#signature = true;
      if (this.items.length < MAX_PROBLEMS) this.items.push(p);
    }
  }

  /** True when a problem about trust was added (kept or not). */
  get hasSignatureProblem(): boolean {
    return this.#signature;
  }
}

/**
 * One error for a list of problems: SIGNATURE if any problem is about trust, else INTEGRITY if any
 * is about content, else POLICY (an expired bundle).
 * `details.problems` holds the kept ones; `details.omittedProblems` counts those beyond the cap.
 */
export function problemsError(what: string, problems: Problem[] | ProblemList, hint: string): AirlockError {
  let list = problems as ProblemList;
  if (!(problems instanceof ProblemList)) {
    list = new ProblemList();
    list.add(...problems);
  }
  // Problems beyond the cap are the content pass's: INTEGRITY. Only an expired bundle is POLICY alone.
  const integrity = list.count > list.items.length || list.items.some((p) => p.code === 'INTEGRITY');
  const code = list.hasSignatureProblem ? 'SIGNATURE' : integrity ? 'INTEGRITY' : 'POLICY';
  const first = list.items[0]!;
  const rest = list.count - 1;
  const more = list.stopped
    ? ` (and ${rest} more problems, where the check stopped: there may be more)`
    : rest > 0
      ? ` (and ${rest} more problem${rest > 1 ? 's' : ''})`
      : '';
  const omitted = list.count - list.items.length;
  return new AirlockError(code, `${what}: ${first.message}${more}`, {
    subject: first.subject,
    hint,
    details: { problems: list.items, ...(omitted > 0 ? { omittedProblems: omitted } : {}), ...(list.stopped ? { stoppedAtProblems: MAX_PROBLEMS } : {}) },
  });
}
