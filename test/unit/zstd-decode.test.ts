import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import {
  decodePrefix,
  decompressFrames,
  frameDecoder,
  ZstdDecodeError,
  ZstdDecoder,
  type FrameDecoder,
  type ZstdFailure,
} from '../../src/bundle/zstd-decode.js';
import { RAW_BLOCK_MAX, skippableFrame, writeRawBlockHeader, writeRawFrameHeader } from '../../src/bundle/zstd-frames.js';

/**
 * 12 KiB with a random stretch in the middle, compressed with a 1 KiB window: blocks of at most
 * 1 KiB, so that the frame has a dozen of them (compressed and RLE) in under 1 KiB.
 */
const TEXT = Buffer.concat([Buffer.from('a line of text\n'.repeat(300)), randomBytes(500), Buffer.alloc(2000, 0x20), Buffer.from('more text\n'.repeat(500))]);
const FRAME = compress(TEXT, { windowLog: 10 });

/** A frame of Raw blocks of `blockSize` (airlock writes them of RAW_BLOCK_MAX). */
function rawFrame(content: Buffer, blockSize = RAW_BLOCK_MAX): Buffer {
  const blocks = Math.ceil(content.length / blockSize);
  const out = Buffer.alloc(10 + blocks * 3 + content.length);
  let at = writeRawFrameHeader(out, 0, content.length);
  for (let i = 0; i < blocks; i++) {
    const block = content.subarray(i * blockSize, (i + 1) * blockSize);
    at = writeRawBlockHeader(out, at, block.length, i === blocks - 1);
    at += block.copy(out, at);
  }
  return out;
}

/** Everything `chunks` decode to, then end(). Pieces are copied: they may share a buffer. */
function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const chunk of chunks) for (const piece of decoder.decode(chunk)) out.push(Buffer.from(piece));
  decoder.end();
  return Buffer.concat(out);
}

function failure(fn: () => unknown): ZstdDecodeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ZstdDecodeError);
    return err as ZstdDecodeError;
  }
  throw new Error('expected a ZstdDecodeError');
}

function expectFailure(fn: () => unknown, reason: ZstdFailure, message?: RegExp): void {
  const err = failure(fn);
  expect(err.reason, err.message).toBe(reason);
  if (message !== undefined) expect(err.message).toMatch(message);
}

function bytes(buf: Buffer): Buffer[] {
  return [...buf].map((b) => Buffer.from([b]));
}

describe('ZstdDecoder', () => {
  it('decodes a frame split at every byte boundary, and fed a byte at a time', () => {
    // A small step so that most splits also end steps with a full output buffer.
    const decoder = new ZstdDecoder({ frames: 'one', step: 1024 });
    for (let i = 0; i <= FRAME.length; i++) {
      decoder.reset();
      const got = decodeAll(decoder, [FRAME.subarray(0, i), FRAME.subarray(i)]);
      expect(got.equals(TEXT), `split at ${i}`).toBe(true);
      expect(decoder.outputBytes).toBe(TEXT.length);
    }
    decoder.reset();
    expect(decodeAll(decoder, bytes(FRAME)).equals(TEXT)).toBe(true);
  });

  it('decodes a stream of frames with skippable frames between them (many)', () => {
    const second = Buffer.from('second frame '.repeat(1000));
    const stream = Buffer.concat([FRAME, skippableFrame(0x184d2a5e, Buffer.from('index')), compress(second), skippableFrame(0x184d2a5f, Buffer.alloc(8))]);
    const want = Buffer.concat([TEXT, second]);
    for (const size of [1, 7, 4096, stream.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      expect(decodeAll(new ZstdDecoder(), chunks).equals(want), `chunks of ${size}`).toBe(true);
    }
  });

  it('ends a frame whose output fills the last step exactly (no phantom next frame)', () => {
    // After a frame ends with a full output buffer, libzstd asked again without input answers
    // with the next frame's header hint: that must not read as an unfinished frame.
    for (const size of [1 << 20, 2 << 20, 64 << 10]) {
      const content = Buffer.alloc(size, 7);
      const frame = compress(content);
      for (const frames of ['one', 'many'] as const) {
        const decoder = new ZstdDecoder({ frames, step: Math.min(size, 1 << 20) });
        expect(decodeAll(decoder, [frame]).equals(content), `${size} ${frames}`).toBe(true);
      }
    }
  });

  it('refuses a truncated frame at every cut, in either mode', () => {
    for (const frames of ['one', 'many'] as const) {
      const decoder = new ZstdDecoder({ frames, step: 1024 });
      for (let i = frames === 'many' ? 1 : 0; i < FRAME.length; i++) {
        decoder.reset();
        expectFailure(() => decodeAll(decoder, [FRAME.subarray(0, i)]), 'truncated', /ends inside a frame/);
      }
    }
    // With no input at all, a stream of frames is complete and a single frame is not.
    expect(decodeAll(new ZstdDecoder(), []).length).toBe(0);
    // A stream cut between frames is complete.
    expect(decodeAll(new ZstdDecoder(), [FRAME, FRAME]).length).toBe(2 * TEXT.length);
  });

  it("refuses corrupt data with libzstd's message", () => {
    const badMagic = Buffer.from(FRAME);
    badMagic[0] = 0x29;
    expectFailure(() => decodeAll(new ZstdDecoder(), [badMagic]), 'corrupt', /unknown frame descriptor/i);
    const reservedBlock = Buffer.from(FRAME);
    // The first block header follows the frame header: make it block type 3 (reserved).
    const fhd = FRAME[4]!;
    const headerSize = 5 + ((fhd & 0x20) !== 0 ? 0 : 1) + [(fhd & 0x20) !== 0 ? 1 : 0, 2, 4, 8][fhd >>> 6]!;
    reservedBlock[headerSize] = reservedBlock[headerSize]! | 0b110;
    expectFailure(() => decodeAll(new ZstdDecoder({ frames: 'one' }), [reservedBlock]), 'corrupt');
  });

  it('refuses data after the frame in single-frame mode, in the same chunk or a later one', () => {
    expectFailure(() => decodeAll(new ZstdDecoder({ frames: 'one' }), [Buffer.concat([FRAME, FRAME])]), 'trailing-data');
    expectFailure(() => decodeAll(new ZstdDecoder({ frames: 'one' }), [FRAME, Buffer.from([0])]), 'trailing-data');
    const skippable = skippableFrame(0x184d2a50, Buffer.from('x'));
    expectFailure(() => decodeAll(new ZstdDecoder({ frames: 'one' }), [FRAME, skippable]), 'trailing-data');
  });

  it('stops at maxOutput before handing on more, and reset sets a new limit', () => {
    const decoder = new ZstdDecoder({ frames: 'one', step: 1024, maxOutput: TEXT.length - 1 });
    let handed = 0;
    expectFailure(
      () => {
        for (const piece of decoder.decode(FRAME)) handed += piece.length;
      },
      'too-large',
      new RegExp(`more than ${TEXT.length - 1} bytes`),
    );
    expect(handed).toBeLessThan(TEXT.length);
    decoder.reset(TEXT.length);
    expect(decodeAll(decoder, [FRAME]).equals(TEXT)).toBe(true);
    decoder.reset();
    expectFailure(() => decodeAll(decoder, [FRAME]), 'too-large');
  });

  it('inflates a bomb one step per request, only as far as asked', () => {
    const bomb = compress(Buffer.alloc(32 << 20)); // about 1 KiB of input
    expect(bomb.length).toBeLessThan(8 << 10);
    const decoder = new ZstdDecoder({ frames: 'one' });
    const pieces = decoder.decode(bomb);
    expect(pieces.next().value?.length).toBe(1 << 20);
    expect(decoder.outputBytes).toBe(1 << 20);
    pieces.return();
    const limited = new ZstdDecoder({ frames: 'one', maxOutput: 3 << 20 });
    let handed = 0;
    expectFailure(() => {
      for (const piece of limited.decode(bomb)) handed += piece.length;
    }, 'too-large');
    expect(handed).toBe(3 << 20);
  });

  it('stops on an aborted signal between steps', () => {
    const controller = new AbortController();
    const decoder = new ZstdDecoder({ signal: controller.signal });
    const pieces = decoder.decode(compress(Buffer.alloc(8 << 20)));
    expect(pieces.next().done).toBe(false);
    controller.abort();
    expect(() => pieces.next()).toThrow(expect.objectContaining({ name: 'AbortError' }) as Error);
  });

  it('hands out views of one buffer with reuseOutput, and copies only small pieces otherwise', () => {
    const shared = new ZstdDecoder({ step: 1024, reuseOutput: true });
    const buffers = new Set<ArrayBufferLike>();
    for (const piece of shared.decode(FRAME)) buffers.add(piece.buffer);
    expect(buffers.size).toBe(1);
    const own = new ZstdDecoder({ step: 1 << 20 });
    const pieces = [...own.decode(compress(Buffer.alloc(1 << 20, 1))), ...own.decode(compress(Buffer.alloc(1000, 2)))];
    expect(pieces.map((p) => p.length)).toEqual([1 << 20, 1000]);
    expect(pieces[0]!.buffer.byteLength).toBeGreaterThanOrEqual(1 << 20); // a view, not a copy
    expect(pieces[1]!.byteOffset + pieces[1]!.buffer.byteLength).toBeLessThan(1 << 20); // copied out of its step buffer
  });
});

describe('frameDecoder (Raw blocks)', () => {
  const content = randomBytes(RAW_BLOCK_MAX + 700);
  const frame = rawFrame(content);

  it('unwraps a Raw-block frame split at every byte boundary', () => {
    // Blocks of 100 bytes, so that every split lands in every kind of place a few times over.
    const small = content.subarray(0, 950);
    const smallFrame = rawFrame(small, 100);
    const decoder = frameDecoder('raw');
    for (let i = 0; i <= smallFrame.length; i++) {
      decoder.reset(small.length);
      const got = decodeAll(decoder, [smallFrame.subarray(0, i), smallFrame.subarray(i)]);
      expect(got.equals(small), `split at ${i}`).toBe(true);
    }
    decoder.reset();
    expect(decodeAll(decoder, bytes(smallFrame)).equals(small)).toBe(true);
    // The layout airlock writes, split around its block header.
    for (const i of [1, 9, 10, 12, 13, 14, 13 + RAW_BLOCK_MAX - 1, 13 + RAW_BLOCK_MAX, 13 + RAW_BLOCK_MAX + 2, 13 + RAW_BLOCK_MAX + 3, frame.length - 1]) {
      decoder.reset(content.length);
      expect(decodeAll(decoder, [frame.subarray(0, i), frame.subarray(i)]).equals(content), `split at ${i}`).toBe(true);
    }
  });

  it('refuses a cut, damaged or oversized frame, keeping the Raw-block messages', () => {
    expectFailure(
      () => decodeAll(frameDecoder('raw'), [frame.subarray(0, frame.length - 1)]),
      'corrupt',
      /damaged raw zstd frame: frame ends before its last block/,
    );
    const zstdFrame = frameDecoder('raw');
    expectFailure(() => decodeAll(zstdFrame, [FRAME]), 'corrupt', /damaged raw zstd frame: unexpected frame header/);
    expectFailure(() => decodeAll(frameDecoder('raw'), [frame, Buffer.from([1])]), 'corrupt', /data after the last block/);
    expectFailure(() => decodeAll(frameDecoder('raw', { maxOutput: content.length - 1 }), [frame]), 'too-large');
  });

  it('decodes zstd frames through the same interface, one frame only', () => {
    expect(decodeAll(frameDecoder('zstd'), [FRAME]).equals(TEXT)).toBe(true);
    expectFailure(() => decodeAll(frameDecoder('zstd'), [FRAME, FRAME]), 'trailing-data');
  });
});

describe('decodePrefix', () => {
  async function* counted(chunks: Buffer[], pulled: { n: number }): AsyncGenerator<Buffer> {
    for (const c of chunks) {
      pulled.n++;
      yield c;
    }
  }

  it('returns the first bytes, reading no more input than it needs', async () => {
    const pulled = { n: 0 };
    const chunks = bytes(FRAME);
    const got = await decodePrefix(counted(chunks, pulled), 512);
    expect(got?.equals(TEXT.subarray(0, 512))).toBe(true);
    expect(pulled.n).toBeLessThan(chunks.length);
    const raw = await decodePrefix(counted([frame()], { n: 0 }), 512, frameDecoder('raw'));
    expect(raw?.equals(TEXT.subarray(0, 512))).toBe(true);
    function frame(): Buffer {
      return rawFrame(TEXT.subarray(0, 1000));
    }
  });

  it('is undefined for input that is not zstd or ends too early, and rethrows read errors', async () => {
    expect(await decodePrefix(counted([randomBytes(100)], { n: 0 }), 512)).toBeUndefined();
    expect(await decodePrefix(counted([FRAME.subarray(0, 8)], { n: 0 }), 512)).toBeUndefined();
    expect(await decodePrefix(counted([compress(Buffer.alloc(100))], { n: 0 }), 512)).toBeUndefined();
    async function* failing(): AsyncGenerator<Buffer> {
      yield FRAME.subarray(0, 4);
      throw new Error('EIO');
    }
    await expect(decodePrefix(failing(), 512)).rejects.toThrow('EIO');
  });
});

describe('decompressFrames', () => {
  async function* from(chunks: Buffer[]): AsyncGenerator<Buffer> {
    yield* chunks;
  }

  it('decodes a stream and fails with truncated when it is cut inside a frame', async () => {
    const out: Buffer[] = [];
    for await (const piece of decompressFrames(from([FRAME.subarray(0, 100), FRAME.subarray(100)]))) out.push(piece);
    expect(Buffer.concat(out).equals(TEXT)).toBe(true);
    const cut = async (): Promise<void> => {
      for await (const piece of decompressFrames(from([FRAME.subarray(0, FRAME.length - 1)]))) void piece;
    };
    await expect(cut()).rejects.toMatchObject({ name: 'ZstdDecodeError', reason: 'truncated' });
  });

  it('honours the abort signal a pipeline passes', async () => {
    const controller = new AbortController();
    const stream = decompressFrames(from([compress(Buffer.alloc(8 << 20))]), { signal: controller.signal });
    await stream.next();
    controller.abort();
    await expect(stream.next()).rejects.toMatchObject({ name: 'AbortError' });
  });
});
