/**
 * Ctrl-C and SIGTERM.
 *
 * The first signal aborts the command's AbortSignal: requests, copy loops, workers and waits stop,
 * `OUT.partial` of a create is kept, and the command ends with INTERRUPTED (exit 130) and one line
 * saying that the same command continues. The bound does not depend on every await in the code
 * base honouring the signal: if the process is still alive {@link STOP_GRACE_MS} later (a read
 * stuck in the kernel, a busy worker), it prints the same line and exits 130 anyway. A second
 * signal does that at once.
 *
 * Exiting at any instant is safe by construction: every file airlock writes is renamed into place
 * complete (temp + rename), and `OUT.partial` is checked entry by entry before a rerun reuses any of
 * it, so a forced exit in the middle of a write is no worse than kill -9 at that byte.
 */

/**
 * Time the run gets to stop on its own after the first signal: 1.5 s, leaving room within the 2 s
 * the README promises for the exit itself on a loaded machine.
 */
export const STOP_GRACE_MS = 1500;

/** The rerun hint when a command has not set its own. */
export const DEFAULT_RERUN_HINT = 'run the same command again';

export interface SignalWatch {
  /** Aborted by the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** What running the command again does, for the line printed on an interruption. */
  setHint(hint: string): void;
  /** The command has ended and printed its result or error: a forced exit now prints nothing more. */
  settled(): void;
  /** Stop listening (the process stays armed to exit if a signal came and it does not end). */
  dispose(): void;
}

export interface SignalWatchOptions {
  write?: (text: string) => void;
  exit?: (code: number) => void;
  /** True when stderr is a terminal: the spinner's line is cleared and the cursor shown first. */
  tty?: boolean;
  graceMs?: number;
}

/** The one line printed when a run is interrupted. */
export function interruptedLine(hint: string): string {
  return `airlock: interrupted; ${hint}`;
}

export function watchSignals(opts: SignalWatchOptions = {}): SignalWatch {
  const write = opts.write ?? ((text: string) => void process.stderr.write(text));
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const tty = opts.tty ?? process.stderr.isTTY === true;
  const controller = new AbortController();
  let hint = DEFAULT_RERUN_HINT;
  let done = false;
  let forced = false;

  const forceExit = (): void => {
    if (forced) return;
    forced = true;
    if (!done) {
      // The spinner may be mid-line and the cursor hidden: clear the line, show the cursor.
      write(`${tty ? '\r\u001b[2K\u001b[?25h' : ''}${interruptedLine(hint)}\n`);
      exit(130);
      return;
    }
    exit(typeof process.exitCode === 'number' ? process.exitCode : 130);
  };
  const onSignal = (): void => {
    if (controller.signal.aborted) {
      forceExit();
      return;
    }
    controller.abort();
    // unref: a run that ends by itself is not held up; one that hangs is ended here.
    setTimeout(forceExit, opts.graceMs ?? STOP_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    setHint(h: string): void {
      hint = h;
    },
    settled(): void {
      done = true;
    },
    dispose(): void {
      // Keep a listener while the run winds down after a signal: a second Ctrl-C must still exit at once.
      if (controller.signal.aborted) return;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
