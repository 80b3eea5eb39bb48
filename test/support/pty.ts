/**
 * Run the CLI inside a real pseudo-terminal of a given size, as an operator's terminal, `tmux`, a
 * CI runner or `kubectl exec -t` would give it: `script` (util-linux) makes the pty, `stty` sets
 * its size (a pty nobody sized reports 0×0) and the command's output comes back as the terminal
 * got it, escape sequences and all.
 */
import { spawn } from 'node:child_process';
import { AIRLOCK_BIN } from './cli.js';

/** One shell word per argument. */
export const shellQuote = (args: string[]): string => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

export interface PtyRun {
  code: number;
  /** Everything the terminal received, stdout and stderr together. */
  output: string;
  ms: number;
}

/** A run still going after this long is killed (with everything it started) and fails. */
const PTY_TIMEOUT_MS = 120_000;

export function airlockInPty(args: string[], size: { rows: number; cols: number }, env: NodeJS.ProcessEnv = {}): Promise<PtyRun> {
  const command = `stty rows ${size.rows} cols ${size.cols}; exec ${shellQuote([process.execPath, AIRLOCK_BIN, ...args])}`;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    // A variable given as undefined is removed (CI, say, which turns a terminal into a log).
    const childEnv = Object.fromEntries(Object.entries({ ...process.env, ...env }).filter(([, v]) => v !== undefined));
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: childEnv });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, PTY_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      child.stdin.end();
      resolve({ code: code ?? -1, output, ms: performance.now() - started });
    });
  });
}
