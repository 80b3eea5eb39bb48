/**
 * Drawing progress, always on stderr so stdout stays clean for results and --json:
 * - on a sized terminal, an ora spinner with bytes, share, rate, ETA and the image in flight, and
 *   a line above it for every image resolved and completed;
 * - on anything else (a log, a pipe, a pty that reports no size), plain greppable lines: the
 *   phases, a line per image, and a progress line at most every 10 s while bytes flow; never a
 *   cursor movement;
 * - with `--log-format json`, one JSON object per line (schemas/log-line.schema.json);
 * - nothing with --quiet.
 */
import type { Ora } from 'ora';
import type { ProgressEvent, ProgressListener } from '../copy/progress.js';
import { cleanText } from '../redact.js';
import { count, digestCell, formatBytes, formatDuration } from '../words.js';
import { toJson } from './output.js';

/** Redraw at most this often: a spinner updated per chunk would cost more than the copy. */
const REDRAW_MS = 120;

/**
 * Without a spinner, a progress line at most this often while bytes flow: 10 s, so a transfer of
 * hours is never hours without a line, and a log stays small. `AIRLOCK_PROGRESS_INTERVAL`
 * (seconds) changes it.
 */
export const DEFAULT_PROGRESS_INTERVAL_MS = 10_000;

/** The plain-line interval from the environment, or the default. */
export function progressIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const text = env['AIRLOCK_PROGRESS_INTERVAL'];
  const seconds = text === undefined || text.trim() === '' ? Number.NaN : Number(text);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : DEFAULT_PROGRESS_INTERVAL_MS;
}

export type LogFormat = 'text' | 'json';

/** One JSON log line before its `time`: `event` names it (see schemas/log-line.schema.json). */
export interface LogEntry {
  event: string;
  [field: string]: unknown;
}

export interface Reporter {
  listener: ProgressListener;
  /** A line that is part of the normal output (above the spinner); a `message` entry in a JSON log. */
  info(line: string): void;
  /** Something with a structure of its own: `entry` in a JSON log, `text` otherwise. */
  record(entry: LogEntry, text: string): void;
  /** Stop drawing; `ok` decides the final symbol. */
  stop(ok: boolean): void;
}

export interface ReporterOptions {
  /** Print no progress (--quiet; --json without --log-format json). */
  quiet: boolean;
  logFormat?: LogFormat;
  /** Whole digests in progress lines (--wide). */
  wide?: boolean;
  stream?: NodeJS.WriteStream;
  /** The environment (`CI`, `TERM`, `AIRLOCK_PROGRESS_INTERVAL`); `process.env` by default. */
  env?: NodeJS.ProcessEnv;
}

/** Where the current phase stands: what every drawing of progress reads. */
class PhaseState {
  phase = '';
  total: number | undefined;
  done = 0;
  started = Date.now();
  /** The image of the blob begun last. */
  image: string | undefined;

  begin(e: Extract<ProgressEvent, { kind: 'phase' }>): void {
    this.phase = e.phase;
    this.total = e.total;
    this.done = 0;
    this.started = Date.now();
    this.image = undefined;
  }

  /** A blob is begun: its image is the one in flight (one already there is not being copied). */
  blobBegun(e: Extract<ProgressEvent, { kind: 'blob' }>): void {
    if (e.image !== undefined && e.skipped !== true) this.image = e.image;
  }

  seconds(now = Date.now()): number {
    return Math.max((now - this.started) / 1000, 0.001);
  }

  rate(now = Date.now()): number {
    return this.done / this.seconds(now);
  }

  /** `copying blobs: 1.2 GiB / 3.4 GiB (35%), ETA 2m10s, 9.8 MiB/s` */
  status(now: number): string {
    const rate = this.rate(now);
    let text = `${this.phase}: ${formatBytes(this.done)}`;
    if (this.total !== undefined && this.total > 0) {
      text += ` / ${formatBytes(this.total)} (${Math.floor((100 * this.done) / this.total)}%)`;
      if (rate > 0) text += `, ETA ${formatDuration((this.total - this.done) / rate)}`;
    }
    return `${text}, ${formatBytes(rate)}/s`;
  }

  /** `copying blobs: done, 256 KiB in 0.1s (1.8 MiB/s)` */
  summary(): string {
    const secs = (Date.now() - this.started) / 1000;
    const rate = secs > 0 ? ` (${formatBytes(this.done / secs)}/s)` : '';
    return `${this.phase}: done${this.done > 0 ? `, ${formatBytes(this.done)} in ${secs.toFixed(1)}s${rate}` : ''}`;
  }
}

/** `copying blobs: 19 blobs, 2 more with their tags (256 KiB)` */
function phaseLine(e: Extract<ProgressEvent, { kind: 'phase' }>): string {
  const items = e.items === undefined ? '' : `: ${count(e.items, e.noun ?? 'item')}`;
  const detail = e.detail === undefined ? '' : `${items === '' ? ':' : ','} ${e.detail}`;
  const size = e.total === undefined ? '' : ` (${formatBytes(e.total)})`;
  return `${e.phase}${items}${detail}${size}`;
}

/** `  stored quay.io/coreos/etcd:v3.5.0 (linux/amd64,linux/arm64/v8, 12.3 MiB)` */
function imageDoneLine(e: Extract<ProgressEvent, { kind: 'image-done' }>): string {
  const about = [e.detail, e.bytes === undefined ? undefined : formatBytes(e.bytes)].filter((x) => x !== undefined);
  return `  ${e.action} ${e.name}${about.length === 0 ? '' : ` (${about.join(', ')})`}`;
}

/**
 * Whether a spinner is drawn on `stream`: a terminal that reports its size, and is not a CI
 * runner's (`CI` set: its log keeps every frame) or a dumb one (`TERM=dumb`), as ora's own rule
 * has it. A terminal that reports 0 columns (a pty nobody sized) gets lines: ora would clear
 * without end.
 */
export function drawsSpinner(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): boolean {
  return stream.isTTY === true && (stream.columns ?? 0) > 0 && !('CI' in env) && env['TERM'] !== 'dumb';
}

/**
 * The reporter for one command. ora (and its dependencies, ~50 ms to load) is loaded only when a
 * spinner will be drawn: not with --quiet, --json or a JSON log, not when stderr is not a terminal.
 */
export async function createReporter(opts: ReporterOptions): Promise<Reporter> {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet) return { listener: () => undefined, info: () => undefined, record: () => undefined, stop: () => undefined };
  if (opts.logFormat === 'json') return jsonReporter(stream, opts.env ?? process.env);
  const columns = (): number => stream.columns ?? 0;
  const tty = drawsSpinner(stream, opts.env ?? process.env);
  const ora = tty ? (await import('ora')).default : undefined;
  const wide = opts.wide === true;
  const state = new PhaseState();
  let spinner: Ora | undefined;
  let lastDraw = 0;
  const lineEvery = progressIntervalMs(opts.env);
  let lastLine = Date.now();

  const finishPhase = (): void => {
    if (state.phase === '') return;
    if (spinner !== undefined) spinner.succeed(state.summary());
    else stream.write(`${state.summary()}\n`);
    spinner = undefined;
  };
  /** The status and the image in flight, cut to what one line of the terminal holds. */
  const spinnerText = (now: number): string => {
    // ora draws its symbol and a space before the text; a line that wraps is redrawn as two.
    const room = Math.max(columns() - 3, 10);
    const status = cleanText(state.status(now));
    const image = state.image === undefined ? '' : cleanText(state.image);
    if (status.length > room) return `${status.slice(0, room - 1)}…`;
    const left = room - status.length - 3;
    // An image name too long for the line keeps its end: the repository's last part and the tag.
    if (image === '' || left < 12) return status;
    return `${status} · ${image.length <= left ? image : `…${image.slice(image.length - left + 1)}`}`;
  };
  const draw = (force = false): void => {
    const now = Date.now();
    if (!force && now - lastDraw < REDRAW_MS) return;
    lastDraw = now;
    if (spinner !== undefined) spinner.text = spinnerText(now);
  };
  const line = (): void => {
    const now = Date.now();
    if (now - lastLine < lineEvery) return;
    lastLine = now;
    stream.write(`${cleanText(`${state.status(now)}${state.image === undefined ? '' : `, image ${state.image}`}`)}\n`);
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
        state.begin(e);
        lastLine = state.started;
        if (ora !== undefined) {
          // discardStdin: false, or ora puts the terminal in raw mode and Ctrl-C sends no SIGINT.
          // isEnabled: the rule above decided (ora's own would read process.env, not opts.env).
          spinner = ora({ text: cleanText(phaseLine(e)), stream, discardStdin: false, isEnabled: true }).start();
          if (e.total !== undefined) draw(true);
        } else {
          stream.write(`${cleanText(phaseLine(e))}\n`);
        }
        break;
      case 'image':
        info(`  ${e.name} ${digestCell(e.digest, wide)}${e.detail === undefined ? '' : ` ${e.detail}`}`);
        break;
      case 'image-done':
        info(imageDoneLine(e));
        break;
      case 'bytes':
        state.done += e.bytes;
        if (tty) draw();
        else line();
        break;
      case 'warning':
        info(`warning: ${e.message}`);
        break;
      case 'blob':
        state.blobBegun(e);
        break;
      case 'retry':
        break;
    }
  };
  return {
    listener,
    info,
    record: (_entry, text) => info(text),
    stop(ok: boolean): void {
      if (ok) finishPhase();
      else spinner?.fail();
      spinner = undefined;
      state.phase = '';
    },
  };
}

/**
 * `--log-format json`: one object per line, `time` and `event` first, for log shippers. Byte
 * counts are summed into a `progress` entry at most once per interval, as the plain lines are.
 */
function jsonReporter(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv): Reporter {
  const state = new PhaseState();
  const lineEvery = progressIntervalMs(env);
  let lastLine = Date.now();
  const write = (entry: LogEntry): void => {
    stream.write(`${logLine(entry)}\n`);
  };
  const finishPhase = (ok: boolean): void => {
    if (state.phase === '') return;
    write({ event: 'phase-done', phase: state.phase, ok, bytes: state.done, seconds: round(state.seconds(), 3) });
    state.phase = '';
  };
  const progress = (now: number): LogEntry => {
    const rate = state.rate(now);
    const total = state.total;
    return {
      event: 'progress',
      phase: state.phase,
      bytes: state.done,
      ...(total === undefined ? {} : { total, percent: total > 0 ? Math.floor((100 * state.done) / total) : 100 }),
      rate: Math.round(rate),
      ...(total !== undefined && rate > 0 ? { eta: Math.ceil((total - state.done) / rate) } : {}),
      ...(state.image === undefined ? {} : { image: state.image }),
    };
  };
  const listener = (e: ProgressEvent): void => {
    switch (e.kind) {
      case 'phase':
        finishPhase(true);
        state.begin(e);
        lastLine = state.started;
        write({
          event: 'phase',
          phase: e.phase,
          ...(e.items === undefined ? {} : { items: e.items, noun: e.noun ?? 'item' }),
          ...(e.detail === undefined ? {} : { detail: e.detail }),
          ...(e.total === undefined ? {} : { total: e.total }),
        });
        break;
      case 'image':
        write({ event: 'image', name: e.name, digest: e.digest, ...(e.detail === undefined ? {} : { detail: e.detail }) });
        break;
      case 'image-done':
        write({
          event: 'image-done',
          name: e.name,
          action: e.action,
          ...(e.detail === undefined ? {} : { detail: e.detail }),
          ...(e.bytes === undefined ? {} : { bytes: e.bytes }),
        });
        break;
      case 'bytes': {
        state.done += e.bytes;
        const now = Date.now();
        if (now - lastLine >= lineEvery) {
          lastLine = now;
          write(progress(now));
        }
        break;
      }
      case 'warning':
        write({ event: 'warning', message: e.message });
        break;
      case 'blob':
        state.blobBegun(e);
        break;
      case 'retry':
        break;
    }
  };
  return {
    listener,
    info: (line) => write({ event: 'message', message: line }),
    record: (entry) => write(entry),
    stop: (ok) => finishPhase(ok),
  };
}

function round(n: number, places: number): number {
  const f = 10 ** places;
  return Math.round(n * f) / f;
}

/**
 * One JSON log line: `time` (ISO 8601, UTC, milliseconds) and `event` first. Text from registries
 * and bundles stays exact, with what a terminal would act on escaped, as in --json output.
 */
export function logLine(entry: LogEntry, now: Date = new Date()): string {
  const { event, ...rest } = entry;
  return toJson({ time: now.toISOString(), event, ...rest });
}
