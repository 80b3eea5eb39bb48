/**
 * Drawing progress: an ora spinner with bytes, rate and ETA when stderr is a sized terminal; plain,
 * greppable lines otherwise (the phases, and a progress line at most every 10 s while bytes flow,
 * never a cursor movement); nothing with --quiet. Progress always goes to stderr so stdout stays
 * clean for results and --json.
 */
import type { Ora } from 'ora';
import type { ProgressEvent, ProgressListener } from '../copy/progress.js';
import { cleanText } from '../redact.js';

/** Redraw at most this often: a spinner updated per chunk would cost more than the copy. */
const REDRAW_MS = 120;

/**
 * Without a spinner (a log, a pipe, a terminal that reports no size), a progress line at most this
 * often while bytes flow: 10 s, so a transfer of hours is never hours without a line, and a log
 * stays small. `AIRLOCK_PROGRESS_INTERVAL` (seconds) changes it.
 */
export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;

/** The plain-line interval from the environment, or the default. */
export function progressIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env['AIRLOCK_PROGRESS_INTERVAL'];
  const seconds = text === undefined || text.trim() === '' ? Number.NaN : Number(text);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_PROGRESS_INTERVAL_MS;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
}

export interface Reporter {
  listener: ProgressListener;
  /** Print a line that is part of the normal (non-JSON) output, above the spinner. */
  info(line: string): void;
  /** Stop drawing; `ok` decides the final symbol. */
  stop(ok: boolean): void;
}

/**
 * The reporter for one command. ora (and its dependencies, ~50 ms to load) is loaded only when a
 * spinner will be drawn: not with --quiet or --json, not when stderr is not a terminal.
 */
export async function createReporter(opts: { quiet: boolean; stream?: NodeJS.WriteStream }): Promise<Reporter> {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { listener: () => undefined, info: () => undefined, stop: () => undefined };
  // A terminal that reports 0 columns (a pty nobody sized) gets lines: ora would clear without end.
  const tty = stream.isTTY === true && (stream.columns ?? 0) > 0;
  const ora = tty ? (await import('ora')).default : undefined;
  let spinner: Ora | undefined;
  let phase = '';
  let total: number | undefined;
  let done = 0;
  let started = Date.now();
  let lastDraw = 0;
  const lineEvery = progressIntervalMs();
  let lastLine = Date.now();

  const finishPhase = (): void => {
    if (phase === '') return;
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? ` (${formatBytes(done / secs)}/s)` : '';
    const summary = `${phase}: done${done > 0 ? `, ${formatBytes(done)} in ${secs.toFixed(1)}s${rate}` : ''}`;
    if (spinner !== undefined) spinner.succeed(summary);
    else stream.write(`${summary}\n`);
    spinner = undefined;
  };
  /** `copying blobs: 1.2 GiB / 3.4 GiB (35%), ETA 2m10s, 9.8 MiB/s` */
  const status = (now: number): string => {
    const secs = Math.max((now - started) / 1000, 0.001);
    const rate = done / secs;
    let text = `${phase}: ${formatBytes(done)}`;
    if (total !== undefined && total > 0) {
      text += ` / ${formatBytes(total)} (${Math.floor((100 * done) / total)}%)`;
      if (rate > 0) text += `, ETA ${formatDuration((total - done) / rate)}`;
    }
    return `${text}, ${formatBytes(rate)}/s`;
  };
  const draw = (force = false): void => {
    const now = Date.now();
    if (!force && now - lastDraw < REDRAW_MS) return;
    lastDraw = now;
    if (spinner !== undefined) spinner.text = status(now);
  };
  const line = (): void => {
    const now = Date.now();
    if (now - lastLine < lineEvery) return;
    lastLine = now;
    stream.write(`${status(now)}\n`);
  };
  // Image names, tags and warnings come from registries and bundles: no terminal control passes.
  const info = (text: string): void => {
    const line = cleanText(text);
    if (spinner !== undefined) {
      spinner.clear();
      stream.write(`${line}\n`);
      spinner.render();
    } else {
      stream.write(`${line}\n`);
    }
  };
  const listener = (e: ProgressEvent): void => {
    switch (e.kind) {
      case 'phase':
        finishPhase();
        phase = e.phase;
        total = e.total;
        done = 0;
        started = Date.now();
        lastLine = started;
        if (ora !== undefined) {
          // discardStdin: false, or ora puts the terminal in raw mode and Ctrl-C sends no SIGINT.
          spinner = ora({ text: phase, stream, discardStdin: false }).start();
          draw(true);
        } else {
          const size = e.total === undefined ? '' : ` (${formatBytes(e.total)})`;
          stream.write(`${phase}${e.items === undefined ? '' : `: ${e.items} items`}${size}\n`);
        }
        break;
      case 'image':
        info(`  ${e.name} ${e.digest}${e.detail === undefined ? '' : ` ${e.detail}`}`);
        break;
      case 'bytes':
        done += e.bytes;
        if (tty) draw();
        else line();
        break;
      case 'warning':
        info(`warning: ${e.message}`);
        break;
      case 'blob':
        break;
    }
  };
  return {
    listener,
    info,
    stop(ok: boolean): void {
      if (ok) finishPhase();
      else spinner?.fail();
      spinner = undefined;
      phase = '';
    },
  };
}
