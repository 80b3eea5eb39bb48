/**
 * The network lines of a command, on stderr: one line per retry (unless --quiet), one line per HTTP
 * exchange with --debug, and the number of retries for the final report. Fed by the registry
 * clients' events (`RegistryOptions.onEvent`) and by the copy engine's own retries (whole-blob
 * uploads, as `retry` progress events). URLs arrive redacted (registry/events.ts).
 */
import type { ProgressEvent, ProgressListener } from '../copy/progress.js';
import type { RegistryEvent, RegistryListener } from '../registry/events.js';
import { formatBytes, type Reporter } from './progress.js';

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
 * @param reporter draws the lines above its spinner when it draws progress
 * @param opts `retryLines`: print retries (not with --quiet); `trace`: --debug; `drawn`: the
 *   reporter draws progress (else lines go to `stream` directly, as with --json)
 */
export function networkLog(reporter: Reporter, opts: { retryLines: boolean; trace: boolean; drawn: boolean; stream?: NodeJS.WritableStream }): NetworkLog {
  const stream = opts.stream ?? process.stderr;
  const say = (line: string): void => (opts.drawn ? reporter.info(line) : void stream.write(`${line}\n`));
  let retries = 0;
  const retried = (what: string, attempt: number, attempts: number, reason: string): void => {
    retries++;
    if (opts.retryLines) say(retryLine(what, attempt, attempts, reason));
  };
  return {
    listener: (e: ProgressEvent) => (e.kind === 'retry' ? retried(e.what, e.attempt, e.attempts, e.reason) : reporter.listener(e)),
    network: (e: RegistryEvent) => {
      if (e.kind === 'retry') retried(`${e.method} ${e.url.replace(/^([^/]+)\/v2\//, '$1/')}`, e.attempt, e.attempts, e.reason);
      else if (opts.trace) say(traceLine(e));
    },
    retries: () => retries,
    summary: () => (retries === 0 ? [] : [`  ${retries} ${retries === 1 ? 'retry' : 'retries'} after network faults`]),
  };
}
