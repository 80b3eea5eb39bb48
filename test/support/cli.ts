/**
 * Run the real CLI (`node bin/airlock`, from the compiled `dist/`) as an operator would, and
 * capture its exit code and output. `npm test` builds first (pretest).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const AIRLOCK_BIN = fileURLToPath(new URL('../../bin/airlock', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A CLI run normally takes a second or two here; two minutes means it hangs. */
const CLI_TIMEOUT_MS = 120_000;

export function airlock(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [AIRLOCK_BIN, ...args],
      { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: CLI_TIMEOUT_MS, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
