/**
 * The network lines of a command, on stderr: one line per retry (unless --quiet), one line per HTTP
 * exchange with --debug, and the number of retries for the final report. Fed by the registry
 * clients' events (`RegistryOptions.onEvent`) and by the copy engine's own retries (whole-blob
 * uploads, as `retry` progress events). URLs arrive redacted (registry/events.ts).
 */
import type { ProgressEvent, ProgressListener } from '../copy/progress.js';
import type { RegistryEvent, RegistryListener } from '../registry/events.js';
import { createReporter, type LogEntry, type Reporter } from './progress.js';
import { count, formatBytes } from '../words.js';
import type { GlobalOptions } from './main.js';

export interface NetworkLog {
  /** The progress listener to hand the operation: retries are counted and printed, the rest drawn. */
  listener: ProgressListener;
  /** The listener to hand the registry clients. */
  network: RegistryListener;
  retries(): number;
  /** The final report's line about retries (none when there were none). */
  summary(): string[];
}

/** `sha256:` and 12 hex digits with an ellipsis, as a retry line shows a digest. */
function shortenDigests(text: string): string {
  return text.replace(/sha256:([0-9a-f]{12})[0-9a-f]{52}/g, 'sha256:$1…');
}

/** `retrying GET quay.io/coreos/etcd/blobs/sha256:ab12cd34ef56… (2/6): connection reset` */
export function retryLine(what: string, attempt: number, attempts: number, reason: string): string {
  return `retrying ${shortenDigests(what)} (${attempt}/${attempts}): ${reason}`;
}

/** `http GET quay.io/v2/coreos/etcd/manifests/v3.5.0 200 1.2 KiB 84 ms` */
export function traceLine(e: Extract<RegistryEvent, { kind: 'http' }>): string {
  const outcome = e.status === undefined ? `failed (${e.error ?? 'no response'})` : String(e.status);
  return `http ${e.method} ${e.url} ${outcome}${e.bytes === undefined ? '' : ` ${formatBytes(e.bytes)}`} ${e.ms} ms`;
}

/**
 * @param reporter draws the lines above its spinner (or logs them as JSON) when it draws progress
 * @param opts `retryLines`: print retries (not with --quiet); `trace`: --debug; `drawn`: the
 *   reporter draws progress (else lines go to `stream` directly, as with --json)
 */
export function networkLog(reporter: Reporter, opts: { retryLines: boolean; trace: boolean; drawn: boolean; stream?: NodeJS.WritableStream }): NetworkLog {
  const stream = opts.stream ?? process.stderr;
  const say = (entry: LogEntry, line: string): void => (opts.drawn ? reporter.record(entry, line) : void stream.write(`${line}\n`));
  let retries = 0;
  const retried = (what: string, attempt: number, attempts: number, reason: string): void => {
    retries++;
    if (opts.retryLines) say({ event: 'retry', what, attempt, attempts, reason }, retryLine(what, attempt, attempts, reason));
  };
  return {
    listener: (e: ProgressEvent) => (e.kind === 'retry' ? retried(e.what, e.attempt, e.attempts, e.reason) : reporter.listener(e)),
    network: (e: RegistryEvent) => {
      if (e.kind === 'retry') retried(`${e.method} ${e.url.replace(/^([^/]+)\/v2\//, '$1/')}`, e.attempt, e.attempts, e.reason);
      else if (opts.trace) {
        const { kind: _, ...http } = e;
        say({ event: 'http', ...http }, traceLine(e));
      }
    },
    retries: () => retries,
    summary: () => (retries === 0 ? [] : [`  ${count(retries, 'retry', 'retries')} after network faults`]),
  };
}

/**
 * The progress and network lines of a command, as the global options ask: a spinner or plain
 * lines, JSON lines with `--log-format json` (even with --json: stdout keeps its one document),
 * nothing but retries and traces with --json, nothing at all with --quiet.
 */
export async function commandProgress(g: GlobalOptions): Promise<{ reporter: Reporter; net: NetworkLog }> {
  const logJson = g.logFormat === 'json';
  const reporter = await createReporter({ quiet: g.quiet || (g.json && !logJson), logFormat: g.logFormat, wide: g.wide });
  const net = networkLog(reporter, { retryLines: !g.quiet, trace: g.debug, drawn: !g.quiet && (logJson || !g.json) });
  return { reporter, net };
}
