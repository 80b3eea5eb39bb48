/** A check that goes on after the first problem keeps 100 of them and counts the rest. */
import { describe, expect, it } from 'vitest';
import { renderError } from '../../src/cli/render-error.js';
import { MAX_PROBLEMS, ProblemList, problemsError, type Problem } from '../../src/bundle/problems.js';

const problem = (i: number, code: Problem['code'] = 'INTEGRITY'): Problem => ({ code, subject: `e${i}`, message: `entry e${i} is not listed` });

describe('ProblemList', () => {
  it('keeps the first 100, counts all, and the error and its rendering say how many', () => {
    const list = new ProblemList();
    for (let i = 0; i < 150; i++) list.add(problem(i));
    expect(list.items).toHaveLength(MAX_PROBLEMS);
    expect(list.count).toBe(150);
    const err = problemsError('b.tar.zst failed verification', list, 'do not import it');
    expect(err.message).toBe('b.tar.zst failed verification: entry e0 is not listed (and 149 more problems)');
    expect(err.details?.problems).toHaveLength(100);
    expect(err.details?.omittedProblems).toBe(50);
    const lines = renderError(err).lines;
    expect(lines).toContain('  - ... and 130 more (--json lists the first 100)');
  });

  it('is SIGNATURE when any problem was about trust, even one past the cap', () => {
    const list = new ProblemList();
    for (let i = 0; i < 120; i++) list.add(problem(i));
    list.add(problem(999, 'SIGNATURE'));
    expect(problemsError('x', list, 'h').code).toBe('SIGNATURE');
  });

  it('a check that stopped at the cap says so instead of a count it does not have', () => {
    const list = new ProblemList();
    for (let i = 0; i < 100; i++) list.add(problem(i));
    list.stopped = true;
    const err = problemsError('x', list, 'h');
    expect(err.message).toContain('(and 99 more problems, where the check stopped: there may be more)');
    expect(err.details?.stoppedAtProblems).toBe(100);
  });

  it('a plain array still works (and is not capped below 100)', () => {
    const err = problemsError('x', [problem(1), problem(2)], 'h');
    expect(err.message).toBe('x: entry e1 is not listed (and 1 more problem)');
    expect(err.details?.omittedProblems).toBeUndefined();
  });
});
