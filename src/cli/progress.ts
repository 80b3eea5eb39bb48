/**
 * Drawing progress: an ora spinner with bytes, rate and ETA when stderr is a terminal; plain,
 * greppable lines otherwise; nothing with --quiet. Progress always goes to stderr so stdout stays
 * clean for results and --json.
 */
import type { Ora } from 'ora';
import type { ProgressEvent, ProgressListener } from '../copy/progress.js';
import { cleanText } from '../redact.js';

/** Redraw at most this often: a spinner updated per chunk would cost more than the copy. */
const REDRAW_MS = 120;

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

  const finishPhase = (): void => {
    if (phase === '') return;
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? ` (${formatBytes(done / secs)}/s)` : '';
    const summary = `${phase}: done${done > 0 ? `, ${formatBytes(done)} in ${secs.toFixed(1)}s${rate}` : ''}`;
    if (spinner !== undefined) spinner.succeed(summary);
    else stream.write(`${summary}\n`);
    spinner = undefined;
  };
  const draw = (force = false): void => {
    const now = Date.now();
    if (!force && now - lastDraw < REDRAW_MS) return;
    lastDraw = now;
    const secs = Math.max((now - started) / 1000, 0.001);
    const rate = done / secs;
    let text = `${phase}: ${formatBytes(done)}`;
    if (total !== undefined && total > 0) {
      text += ` / ${formatBytes(total)} (${Math.floor((100 * done) / total)}%)`;
      if (rate > 0) text += `, ETA ${formatDuration((total - done) / rate)}`;
    }
    text += `, ${formatBytes(rate)}/s`;
    if (spinner !== undefined) spinner.text = text;
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
