/**
 * Progress without a spinner (a log, a pipe, a pty that reports no size): the phases, then a
 * progress line at most once per interval while bytes flow, and never a cursor movement.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createReporter, DEFAULT_PROGRESS_INTERVAL_MS, progressIntervalMs } from '../../src/cli/progress.js';
import { fakeStream } from '../support/fake-stream.js';

afterEach(() => {
  vi.useRealTimers();
  delete process.env['AIRLOCK_PROGRESS_INTERVAL'];
});

describe('plain progress lines', () => {
  it.each([
    ['a pipe', false],
    ['a terminal with no size', true],
  ])('on %s: one line per interval while bytes flow, with bytes, share, ETA and rate; no escape sequences', async (_name, tty) => {
    vi.useFakeTimers({ now: 1_000_000 });
    const stream = fakeStream(tty);
    const r = await createReporter({ quiet: false, stream });
    r.listener({ kind: 'phase', phase: 'copying blobs', total: 100 * 1024 * 1024, items: 3 });
    for (let s = 0; s < 35; s++) {
      vi.advanceTimersByTime(1000);
      r.listener({ kind: 'bytes', bytes: 2 * 1024 * 1024 });
    }
    r.stop(true);
    const lines = stream
      .text()
      .split('\n')
      .filter((l) => l.startsWith('copying blobs: ') && l.includes('%'));
    expect(lines).toHaveLength(3); // at 10, 20 and 30 s
    expect(lines[0]).toBe('copying blobs: 20.0 MiB / 100 MiB (20%), ETA 40s, 2.0 MiB/s');
    expect(stream.text()).not.toMatch(/\u001b/);
  });

  it('takes its interval from AIRLOCK_PROGRESS_INTERVAL (seconds), else 10 s', () => {
    expect(progressIntervalMs({})).toBe(DEFAULT_PROGRESS_INTERVAL_MS);
    expect(progressIntervalMs({ AIRLOCK_PROGRESS_INTERVAL: '2.5' })).toBe(2500);
    for (const bad of ['0', '-1', 'soon', ' ']) expect(progressIntervalMs({ AIRLOCK_PROGRESS_INTERVAL: bad })).toBe(DEFAULT_PROGRESS_INTERVAL_MS);
  });
});
