/**
 * How long a registry request may wait, and the floor under a transfer's rate.
 *
 * Every wait is bounded: connecting, the response head, and each gap between body bytes have a
 * timeout (undici enforces them), and a body that keeps arriving but too slowly to ever finish (a
 * byte a second) fails the rate floor ({@link BodyPace}). Either is a temporary failure: the
 * request is retried with backoff, a blob download resumes with Range where it stopped.
 */

/** Timeouts of one client, in ms. */
export interface Timeouts {
  /** TCP (and TLS) connect. */
  connectMs: number;
  /** From the end of the request to the response head. */
  headersMs: number;
  /** Longest silence inside a response body; also the window of the rate floor. */
  bodyMs: number;
}

/**
 * Defaults: 30 s to connect, 60 s for the response head, 60 s without a body byte. A satellite or
 * congested link can take seconds per round trip and a busy registry seconds per answer; a minute
 * of complete silence is a dead connection, not a slow one. `--timeout` changes them (see
 * {@link timeoutsFrom}).
 */
export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 30_000, headersMs: 60_000, bodyMs: 60_000 };

/**
 * All three from one value (`--timeout`): the head and each body gap get `ms`, connecting gets
 * half, since a connect is a couple of round trips with nothing for the server to compute.
 */
export function timeoutsFrom(ms: number): Timeouts {
  return { connectMs: Math.max(1, Math.round(ms / 2)), headersMs: ms, bodyMs: ms };
}

/**
 * The rate floor: a body must deliver at least 1 KiB per second of waiting, measured over windows
 * of `bodyMs`. Below that even a small image (30 MiB) takes over 8 hours: the link or the server is
 * broken, and a fresh connection is the better bet. Real slow links (a 64 kbit/s line is 8 KiB/s)
 * stay well above it.
 */
export const MIN_BYTES_PER_SECOND = 1024;

/** `60 s`, `1.5 s`, `500 ms`: a duration in messages. */
export function seconds(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** Bytes one window of `windowMs` must deliver. */
export function minBytesPerWindow(windowMs: number): number {
  return Math.max(1, Math.floor((MIN_BYTES_PER_SECOND * windowMs) / 1000));
}

/**
 * The final PUT of an upload waits for the registry to commit the blob: distribution checks the
 * digest and moves the blob into place, which on object storage is a server-side copy of the whole
 * blob. Its head gets the usual timeout plus one second per 16 MiB (a copy at 16 MiB/s, slow
 * storage): 60 s for small blobs, ~5 min for 4 GiB. A longer wait than that is a stuck registry.
 */
export const COMMIT_BYTES_PER_SECOND = 16 * 1024 * 1024;

export function commitHeadersTimeout(size: number, t: Timeouts): number {
  return t.headersMs + Math.ceil((size / COMMIT_BYTES_PER_SECOND) * 1000);
}

/** A body that stayed below the rate floor for a whole window; temporary, like a timeout. */
export class SlowBodyError extends Error {
  readonly code = 'ESLOWBODY';
  constructor(
    readonly bytes: number,
    readonly windowMs: number,
  ) {
    super(`only ${bytes} bytes arrived in ${Math.round(windowMs / 1000)} s of waiting (the floor is ${MIN_BYTES_PER_SECOND} bytes a second)`);
    this.name = 'SlowBodyError';
  }
}

/**
 * The rate floor of one body, fed by its reader: {@link BodyPace.waiting} when it asks for the next
 * piece, {@link BodyPace.got} when the piece arrives. Only time spent waiting counts, so a body
 * the reader leaves unread (a blob opened ahead) is never blamed for the reader's pause. A silent
 * body is undici's body timeout's business; this catches the one that trickles.
 */
export class BodyPace {
  readonly #windowMs: number;
  readonly #minBytes: number;
  readonly #now: () => number;
  #since: number | undefined;
  #waited = 0;
  #bytes = 0;

  constructor(windowMs: number, now: () => number = Date.now) {
    this.#windowMs = windowMs;
    this.#minBytes = minBytesPerWindow(windowMs);
    this.#now = now;
  }

  /** The reader starts waiting for the next piece. */
  waiting(): void {
    this.#since = this.#now();
  }

  /** A piece of `n` bytes arrived; throws {@link SlowBodyError} when the window fell short. */
  got(n: number): void {
    const now = this.#now();
    if (this.#since !== undefined) this.#waited += now - this.#since;
    this.#since = undefined;
    this.#bytes += n;
    if (this.#waited < this.#windowMs) return;
    if (this.#bytes < this.#minBytes) throw new SlowBodyError(this.#bytes, this.#waited);
    this.#waited = 0;
    this.#bytes = 0;
  }
}
