/**
 * Turning any thrown value into one line for the operator (plus a hint line), a JSON object for
 * `--json`, and an exit code.
 */
import { AirlockError, fromFsError } from '../errors.js';
import { cleanText } from '../redact.js';
import { EXIT_CODES } from './exit-codes.js';
import { DEFAULT_RERUN_HINT } from './interrupt.js';

/**
 * Credentials must never reach a terminal or a log, nor may a registry's words drive the terminal:
 * every secret airlock loaded or obtained (see `src/redact.ts`) is replaced, terminal control is
 * removed, and so are `user:pass@` in URLs, auth headers and secret-named JSON fields, whoever
 * supplied them. `keepNewlines` is for multi-line text (stack traces).
 */
export function redact(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return cleanText(text, opts)
    .replace(/(\w+:\/\/)[^/@\s:]+:[^/@\s]+@/g, '$1***@')
    .replace(/(authorization:\s*)(basic|bearer)\s+\S+/gi, '$1$2 ***')
    .replace(/("(?:password|secret|token|access_token|refresh_token|identitytoken|auth)"\s*:\s*)"[^"]*"/gi, '$1"***"');
}

/** Field names whose values are secrets wherever they appear in error details. */
const SECRET_KEY = /^(?:password|secret|token|access_token|refresh_token|identitytoken|auth|authorization)$/i;

/** Nesting kept in `--json` error details; deeper values are elided. */
const MAX_JSON_DEPTH = 32;

/** {@link redact} applied to every string of a JSON value (keys too); secret-named fields become `***`. */
function redactValue(value: unknown, depth = MAX_JSON_DEPTH): unknown {
  if (typeof value === 'string') return redact(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth <= 0) return '…';
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth - 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[redact(k)] = SECRET_KEY.test(k) && typeof v === 'string' ? '***' : redactValue(v, depth - 1);
  return out;
}

export function toAirlockError(err: unknown): AirlockError {
  if (err instanceof AirlockError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ABORT_ERR' || (err as Error | undefined)?.name === 'AbortError') {
    return new AirlockError('INTERRUPTED', 'interrupted', { hint: 'run the same command again to continue' });
  }
  // A file-system error that reached here without being given its meaning still names its path.
  const path = (err as NodeJS.ErrnoException | undefined)?.path;
  if (typeof path === 'string') {
    const mapped = fromFsError(err, path, 'accessing');
    if (mapped instanceof AirlockError) return mapped;
  }
  if (code === 'ENOSPC') {
    return new AirlockError('IO', 'no space left on device', { hint: 'free disk space and run again', cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new AirlockError('INTERNAL', `internal error: ${message}`, {
    hint: 'this is a bug in airlock; please report it with the command line and this message',
    cause: err,
  });
}

/** A damaged archive can have thousands of problems; the terminal gets the first ones. */
const MAX_PROBLEM_LINES = 20;

/** A problem is a {@link Problem} (verify's) or a plain line (bundle.json's schema problems). */
function problemText(p: unknown): string {
  if (typeof p === 'string') return p;
  const message = (p as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : JSON.stringify(p);
}

export interface RenderedError {
  lines: string[];
  json: Record<string, unknown>;
  exitCode: number;
}

export function renderError(err: unknown, debug = false): RenderedError {
  const e = toAirlockError(err);
  // Through JSON first: toJSON() output may hold class instances or values JSON cannot carry.
  const json = redactValue(JSON.parse(JSON.stringify({ error: e.toJSON() }))) as Record<string, unknown>;
  if (e.code === 'INTERRUPTED') {
    // One line, the same shape as the one printed when a stuck run is ended (interrupt.ts).
    return { lines: [`airlock: ${redact(e.message)}; ${redact(e.hint ?? DEFAULT_RERUN_HINT)}`], json, exitCode: EXIT_CODES.INTERRUPTED };
  }
  const lines = [`airlock: error: ${redact(e.message)}`];
  const problems = e.details?.problems;
  if (Array.isArray(problems) && problems.length > 1) {
    for (const p of problems.slice(0, MAX_PROBLEM_LINES)) lines.push(`  - ${redact(problemText(p))}`);
    // Checks keep a bounded list (details.omittedProblems counts the rest): say how many in all.
    const omitted = typeof e.details?.omittedProblems === 'number' ? e.details.omittedProblems : 0;
    const more = problems.length + omitted - MAX_PROBLEM_LINES;
    if (more > 0) lines.push(`  - ... and ${more} more (--json lists ${omitted > 0 ? `the first ${problems.length}` : 'them all'})`);
  }
  const tags = e.details?.tags as { moved?: unknown; notMoved?: unknown } | undefined;
  if (tags !== undefined && Array.isArray(tags.moved) && Array.isArray(tags.notMoved)) {
    for (const [label, list] of [
      ['moved', tags.moved],
      ['NOT moved', tags.notMoved],
    ] as const) {
      lines.push(`  tags ${label} (${list.length}):${list.length === 0 ? ' none' : ''}`);
      for (const t of list.slice(0, MAX_PROBLEM_LINES)) lines.push(`    ${redact(String(t))}`);
      if (list.length > MAX_PROBLEM_LINES) lines.push(`    ... and ${list.length - MAX_PROBLEM_LINES} more (--json lists them all)`);
    }
  }
  if (e.hint !== undefined) lines.push(`  hint: ${redact(e.hint)}`);
  if (debug && e.cause instanceof Error && e.cause.stack !== undefined) lines.push(redact(e.cause.stack, { keepNewlines: true }));
  if (debug && e.code === 'INTERNAL' && e.stack !== undefined) lines.push(redact(e.stack, { keepNewlines: true }));
  return { lines, json, exitCode: EXIT_CODES[e.code] };
}
