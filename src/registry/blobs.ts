/**
 * Blob reads: HEAD (existence in one repository) and GET that follows redirects by hand and
 * resumes a broken or truncated download with a Range request.
 *
 * Redirects are followed here rather than by an interceptor so that every hop keeps the Range
 * header, and so that `Authorization` only goes to the registry's own origin (a pre-signed storage
 * URL refuses a request carrying two kinds of credentials, and must not see ours anyway).
 */
import { on } from 'node:events';
import { Readable } from 'node:stream';
import { AirlockError } from '../errors.js';
import type { Descriptor } from '../oci/descriptor.js';
import { repositoryScope } from './auth.js';
import { abandon, discard } from './body.js';
import { networkError, TruncatedBodyError, type Subject } from './errors.js';
import { header, type RegistryHttp, type Response } from './http.js';
import { backoffDelay, isTemporary } from './retry.js';
import { BodyPace, minBytesPerWindow } from './timeouts.js';

/** Registries redirect a blob GET once, to storage; 5 hops allow a CDN in between and end loops. */
export const MAX_REDIRECTS = 5;

/**
 * Pieces of an opened blob buffered ahead of its reader: 16 socket reads (up to 1 MiB). Blob
 * streams hand out the socket's buffers as they come, never concatenated: a byte-mode stream's
 * reader gets everything buffered copied into one new buffer, which for a reader that is busy
 * hashing and writing meant copying (and allocating, and collecting) a quarter of every GiB again.
 */
const PIECES_AHEAD = 16;

const REDIRECTS = [301, 302, 303, 307, 308];

/** How a blob is named in messages, with the hint for a 404. */
export function blobSubject(host: string, repository: string, desc: Descriptor): Subject {
  return {
    host,
    repository,
    what: `blob ${desc.digest} of ${repository}`,
    notFoundHint: `the registry lost a blob its manifest references, or ${repository} is not the repository that holds it`,
  };
}

function blobPath(repository: string, desc: Descriptor): string {
  return `/v2/${repository}/blobs/${desc.digest}`;
}

/** True when the blob is linked into `repository` (HEAD is per repository in distribution). */
export async function hasBlob(http: RegistryHttp, repository: string, desc: Descriptor, push: boolean, signal?: AbortSignal): Promise<boolean> {
  return http.call(
    {
      method: 'HEAD',
      url: blobPath(repository, desc),
      scopes: [repositoryScope(repository, push)],
      repository,
      subject: blobSubject(http.host, repository, desc),
      expect: [200, 404, ...REDIRECTS],
      signal,
    },
    async (res) => {
      await discard(res.body, http.timeouts.bodyMs);
      return res.statusCode !== 404; // a redirect to storage also means it exists
    },
  );
}

/** A blob response positioned at `offset`: `skip` bytes of its body precede that offset. */
interface BlobBody {
  body: Readable;
  skip: number;
}

/** Where a 206 starts: `Content-Range: bytes START-END/TOTAL`. */
export function contentRangeStart(value: string | undefined): number | undefined {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(value?.trim() ?? '');
  return m === null ? undefined : Number(m[1]);
}

/** Check a final (non-redirect) response and say how many bytes to skip to reach `offset`. */
function positionAt(res: Response, offset: number, subject: Subject): BlobBody {
  if (res.statusCode === 416) {
    abandon(res.body);
    throw new AirlockError('INTEGRITY', `${subject.what} on ${subject.host} is shorter than its descriptor (no bytes at offset ${offset})`, {
      subject: subject.what,
      hint: 'the registry holds damaged content; push the image again from its origin',
    });
  }
  if (res.statusCode === 200) return { body: res.body, skip: offset };
  const start = contentRangeStart(header(res, 'content-range'));
  if (start !== offset) {
    abandon(res.body);
    throw new AirlockError(
      'REGISTRY',
      `registry ${subject.host} answered a range of ${subject.what} starting at ${start ?? '(unknown)'}, asked for ${offset}`,
      {
        subject: subject.what,
      },
    );
  }
  return { body: res.body, skip: 0 };
}

/** GET the blob from `offset` on, following redirects (Range is repeated on every hop). */
export async function requestBlob(http: RegistryHttp, repository: string, desc: Descriptor, offset: number, signal?: AbortSignal): Promise<BlobBody> {
  const subject = blobSubject(http.host, repository, desc);
  let url = new URL(blobPath(repository, desc), http.origin);
  for (let hop = 0; ; hop++) {
    const res = await http.call(
      {
        method: 'GET',
        url,
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        scopes: [repositoryScope(repository, false)],
        repository,
        subject,
        expect: [200, 206, 416, ...REDIRECTS],
        signal,
      },
      async (r) => r,
    );
    if (!REDIRECTS.includes(res.statusCode)) return positionAt(res, offset, subject);
    await discard(res.body, http.timeouts.bodyMs);
    const location = header(res, 'location');
    if (location === undefined || hop >= MAX_REDIRECTS) {
      throw new AirlockError(
        'REGISTRY',
        `registry ${http.host} ${location === undefined ? 'redirected without a Location' : `redirected more than ${MAX_REDIRECTS} times`} for ${subject.what}`,
        {
          subject: subject.what,
        },
      );
    }
    url = new URL(location, url);
  }
}

/**
 * The bytes of a blob from a first response on, resuming after a temporary failure, a body that
 * ends before `desc.size` bytes, a silent body (undici's body timeout) or one below the rate floor
 * (`BodyPace`). Failures in a row without progress are bounded by the retry settings; an attempt
 * that carried at least one window's worth of bytes (`minBytesPerWindow`) starts the count again,
 * so a trickle of a few bytes per attempt cannot keep a download going for ever.
 *
 * A response opened ahead may have broken while nobody read it: cut by the server, or silent past
 * the body timeout before undici paused it (a paused body is never timed out). Its error and its
 * `close` are then in the past, so it is checked before listening, and resumed like any other.
 */
async function* resumingBytes(
  http: RegistryHttp,
  repository: string,
  desc: Descriptor,
  state: { current: BlobBody },
  signal: AbortSignal | undefined,
  offset: number,
  onBytes: ((n: number) => void) | undefined,
): AsyncGenerator<Buffer> {
  const subject = blobSubject(http.host, repository, desc);
  const url = new URL(blobPath(repository, desc), http.origin);
  const progress = minBytesPerWindow(http.timeouts.bodyMs);
  /** Position in the blob of the next byte to deliver. */
  let delivered = offset;
  let failures = 0;
  for (;;) {
    const before = delivered;
    try {
      const body = state.current.body;
      if (body.destroyed) throw body.errored ?? new TruncatedBodyError(delivered, desc.size);
      let skip = state.current.skip;
      const pace = new BodyPace(http.timeouts.bodyMs);
      pace.waiting();
      // Each socket read as it came (see PIECES_AHEAD); a destroyed body ends early and counts as truncated.
      for await (const [chunk] of on(body, 'data', { close: ['end', 'close'], highWaterMark: PIECES_AHEAD })) {
        let buf = chunk as Buffer;
        pace.got(buf.length);
        if (skip > 0) {
          if (buf.length <= skip) {
            skip -= buf.length;
            pace.waiting();
            continue;
          }
          buf = buf.subarray(skip);
          skip = 0;
        }
        delivered += buf.length;
        onBytes?.(buf.length);
        yield buf;
        pace.waiting();
      }
      if (delivered >= desc.size) return; // longer content is for the verifier to reject
      throw new TruncatedBodyError(delivered, desc.size);
    } catch (err) {
      if (!state.current.body.destroyed) abandon(state.current.body);
      if (delivered - before >= progress) failures = 0;
      const temporary = signal?.aborted !== true && isTemporary(err, { idempotent: true, contacted: true });
      if (!temporary || failures >= http.retry.retries) {
        throw networkError(err, { subject, plainHttp: http.plainHttp, signal, attempts: failures + 1, timeouts: http.timeouts });
      }
      const delayMs = backoffDelay(failures, http.retry);
      http.retried('GET', url, err, failures + 2, delayMs);
      try {
        await http.retry.sleep(delayMs, signal);
      } catch (sleepErr) {
        throw networkError(sleepErr, { subject, plainHttp: http.plainHttp, signal });
      }
      failures++;
      state.current = await requestBlob(http, repository, desc, delivered, signal);
    }
  }
}

/**
 * Open a blob for reading from byte `offset` on (an interrupted create continues a partly written
 * blob); errors before the first byte (404, auth) are thrown here. `onBytes` hears of each piece
 * as it is handed out (progress without a stream stage).
 */
export async function openBlob(
  http: RegistryHttp,
  repository: string,
  desc: Descriptor,
  signal?: AbortSignal,
  offset = 0,
  onBytes?: (n: number) => void,
): Promise<Readable> {
  const sig = http.signal(signal);
  const state = { current: await requestBlob(http, repository, desc, offset, sig) };
  const stream = Readable.from(resumingBytes(http, repository, desc, state, sig, offset, onBytes), {
    objectMode: true,
    highWaterMark: PIECES_AHEAD,
  });
  // Closed before the end (or before the first read): release the response and its connection.
  stream.once('close', () => {
    if (!state.current.body.destroyed) abandon(state.current.body);
  });
  return stream;
}
