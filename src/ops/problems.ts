/** Problems found by a check that goes on after the first one, so it can name them all. */
import { AirlockError, type ErrorCode } from '../errors.js';

export interface Problem {
  code: Extract<ErrorCode, 'INTEGRITY' | 'SIGNATURE' | 'POLICY'>;
  /** The entry, blob digest, image name or key the problem is about. */
  subject: string;
  message: string;
}

/**
 * One error for a list of problems: SIGNATURE if any problem is about trust, else INTEGRITY if any
 * is about content, else POLICY (an expired bundle).
 */
export function problemsError(what: string, problems: Problem[], hint: string): AirlockError {
  const has = (code: Problem['code']): boolean => problems.some((p) => p.code === code);
  const code = has('SIGNATURE') ? 'SIGNATURE' : has('INTEGRITY') ? 'INTEGRITY' : 'POLICY';
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})` : '';
  return new AirlockError(code, `${what}: ${first.message}${more}`, {
    subject: first.subject,
    hint,
    details: { problems },
  });
}
