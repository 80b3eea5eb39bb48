/**
 * How runs read: one vocabulary for counts (images, manifests, blobs, bytes), short digests unless
 * --wide, the summary tables, a line per completed image, the image in flight, and the JSON log
 * lines a log shipper reads (each checked against schemas/log-line.schema.json).
 */
import { readFile } from 'node:fs/promises';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createReporter, drawsSpinner, logLine } from '../../src/cli/progress.js';
import { contentsLine, imageTable } from '../../src/cli/output.js';
import { bundleContents } from '../../src/bundle/manifest.js';
import { ImageProgress } from '../../src/copy/image-progress.js';
import { count, digestCell, formatDuration, plural } from '../../src/words.js';
import type { Digest } from '../../src/digest/digest.js';
import { fakeStream } from '../support/fake-stream.js';

const D = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;

afterEach(() => {
  vi.useRealTimers();
  delete process.env['AIRLOCK_PROGRESS_INTERVAL'];
});

describe('words', () => {
  it('counts with the right noun', () => {
    expect([count(0, 'image'), count(1, 'image'), count(2, 'image')]).toEqual(['0 images', '1 image', '2 images']);
    expect([plural('repository'), plural('key'), plural('blob')]).toEqual(['repositories', 'keys', 'blobs']);
    expect(count(3, 'retry', 'retries')).toBe('3 retries');
  });

  it('cuts digests to 12 hex digits unless wide, and leaves anything else alone', () => {
    expect(digestCell(D('a'), false)).toBe(`sha256:${'a'.repeat(12)}`);
    expect(digestCell(D('a'), true)).toBe(D('a'));
    expect(digestCell('not-a-digest', false)).toBe('not-a-digest');
  });

  it('says durations in the largest units', () => {
    expect([formatDuration(9.2), formatDuration(130), formatDuration(3 * 3600 + 5 * 60), formatDuration(Number.NaN)]).toEqual(['10s', '2m10s', '3h05m', '?']);
  });
});

describe('the summary of a bundle', () => {
  const files = [
    { mediaType: 'application/vnd.oci.image.index.v1+json', size: 500 },
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 400 },
    { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: 300 },
    { mediaType: 'application/vnd.oci.image.config.v1+json', size: 1000 },
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: 2 * 1024 * 1024 },
  ];

  it('counts manifests and blobs apart; together they are what bundle.json counts as blobs', () => {
    const c = bundleContents(2, files);
    expect(c).toEqual({ images: 2, manifests: 3, blobs: 2, bytes: 2 * 1024 * 1024 + 2200 });
    expect(c.manifests + c.blobs).toBe(files.length);
    expect(contentsLine(c)).toBe('2 images, 3 manifests, 2 blobs, 2.0 MiB');
    expect(contentsLine(bundleContents(1, files.slice(1, 2)))).toBe('1 image, 1 manifest, 0 blobs, 400 B');
  });

  it('lists each image with platforms, size and a short digest (whole with --wide)', () => {
    const images = [
      { name: 'docker.io/library/busybox:musl', platforms: ['linux/amd64'], bytes: 34_509, digest: D('5') },
      { name: 'quay.io/coreos/etcd:v3.5.0', platforms: ['linux/amd64', 'linux/arm64/v8'], bytes: 154_624, digest: D('a') },
      { name: 'example.com/legacy:1', platforms: [], digest: D('c') },
    ];
    expect(imageTable(images, false)).toMatchInlineSnapshot(`
      [
        "  IMAGE                           PLATFORMS                   SIZE      DIGEST",
        "  docker.io/library/busybox:musl  linux/amd64                 33.7 KiB  sha256:555555555555",
        "  quay.io/coreos/etcd:v3.5.0      linux/amd64,linux/arm64/v8  151 KiB   sha256:aaaaaaaaaaaa",
        "  example.com/legacy:1            -                           ?         sha256:cccccccccccc",
      ]
    `);
    expect(imageTable(images, true)[1]).toContain(D('5'));
    // Short enough for 100 columns, where whole digests made 150.
    expect(Math.max(...imageTable(images, false).map((l) => l.length))).toBeLessThan(100);
  });
});

describe('completion per image', () => {
  it('completes an image when its last digest lands, counting shared blobs for each image', () => {
    const p = new ImageProgress(
      [
        { name: 'a', digests: [D('1'), D('2'), D('3')] },
        { name: 'b', digests: [D('2'), D('4')] },
        { name: 'c', digests: [D('9')] },
      ],
      new Set([D('1'), D('2'), D('3'), D('4')]),
    );
    // c needs nothing this copy carries (a delta delivered it before).
    expect(p.alreadyComplete().map((i) => i.name)).toEqual(['c']);
    expect(p.imageOf(D('2'))).toBe('a');
    expect(p.landed(D('1'))).toEqual([]);
    expect(p.landed(D('2'))).toEqual([]);
    expect(p.landed(D('4')).map((i) => i.name)).toEqual(['b']);
    expect(p.landed(D('3')).map((i) => i.name)).toEqual(['a']);
    expect(p.imageOf(D('3'))).toBeUndefined();
    expect(p.landed(D('3'))).toEqual([]);
  });
});

describe('text progress', () => {
  it('names what each phase works on, says each completed image, and the image in flight', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    process.env['AIRLOCK_PROGRESS_INTERVAL'] = '1';
    const stream = fakeStream(false);
    const r = await createReporter({ quiet: false, stream });
    r.listener({ kind: 'phase', phase: 'copying blobs', total: 4 << 20, items: 13, noun: 'blob', detail: '6 manifests' });
    r.listener({ kind: 'blob', digest: D('1'), size: 4 << 20, image: 'quay.io/coreos/etcd:v3.5.0' });
    vi.advanceTimersByTime(1000);
    r.listener({ kind: 'bytes', bytes: 1 << 20 });
    r.listener({ kind: 'image-done', name: 'quay.io/coreos/etcd:v3.5.0', action: 'stored', detail: 'linux/amd64', bytes: 4 << 20 });
    r.listener({ kind: 'phase', phase: 'pushing manifests', items: 2, noun: 'manifest', detail: '4 more with their tags' });
    r.listener({ kind: 'phase', phase: 'tagging', items: 1, noun: 'tag' });
    r.listener({ kind: 'image', name: 'x', digest: D('b') });
    r.stop(true);
    expect(stream.text().split('\n')).toEqual([
      'copying blobs: 13 blobs, 6 manifests (4.0 MiB)',
      'copying blobs: 1.0 MiB / 4.0 MiB (25%), ETA 3s, 1.0 MiB/s, image quay.io/coreos/etcd:v3.5.0',
      '  stored quay.io/coreos/etcd:v3.5.0 (linux/amd64, 4.0 MiB)',
      'copying blobs: done, 1.0 MiB in 1.0s (1.0 MiB/s)',
      'pushing manifests: 2 manifests, 4 more with their tags',
      'pushing manifests: done',
      'tagging: 1 tag',
      `  x sha256:${'b'.repeat(12)}`,
      'tagging: done',
      '',
    ]);
  });

  it('with --wide, progress lines carry whole digests', async () => {
    const stream = fakeStream(false);
    const r = await createReporter({ quiet: false, stream, wide: true });
    r.listener({ kind: 'image', name: 'x', digest: D('b'), detail: 'linux/amd64' });
    expect(stream.text()).toBe(`  x ${D('b')} linux/amd64\n`);
  });

  it("draws a spinner only on a sized terminal that is not a CI runner's or a dumb one", () => {
    expect(drawsSpinner(fakeStream(true, 80), {})).toBe(true);
    expect(drawsSpinner(fakeStream(true, 0), {})).toBe(false);
    expect(drawsSpinner(fakeStream(false, 80), {})).toBe(false);
    expect(drawsSpinner(fakeStream(true, 80), { CI: 'true' })).toBe(false);
    expect(drawsSpinner(fakeStream(true, 80), { CI: '' })).toBe(false);
    expect(drawsSpinner(fakeStream(true, 80), { TERM: 'dumb' })).toBe(false);
  });

  it('on a sized terminal, cuts the spinner line to the width so it never wraps', async () => {
    const stream = fakeStream(true, 80);
    const r = await createReporter({ quiet: false, stream, env: {} });
    r.listener({ kind: 'phase', phase: 'copying blobs', total: 1 << 30, items: 3, noun: 'blob' });
    r.listener({ kind: 'blob', digest: D('1'), size: 1, image: `registry.example.com/${'very-long-name/'.repeat(6)}app:v1` });
    r.listener({ kind: 'bytes', bytes: 1 << 20 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    r.listener({ kind: 'bytes', bytes: 1 << 20 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // ora draws on its own timer
    r.stop(true);
    const drawn = stream
      .text()
      .replace(/\u001b\[[0-9;?]*[A-Za-z]/g, '\n')
      .split(/[\r\n]/)
      .filter((l) => l.includes('copying blobs'));
    expect(drawn.some((l) => l.endsWith('-name/app:v1'))).toBe(true);
    for (const l of drawn) expect(l.length, l).toBeLessThanOrEqual(80);
  });
});

describe('JSON log lines (--log-format json)', () => {
  it('every line is one object that matches schemas/log-line.schema.json, time and event first', async () => {
    const schema = JSON.parse(await readFile(new URL('../../schemas/log-line.schema.json', import.meta.url), 'utf8')) as object;
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    const validate = ajv.compile(schema);
    vi.useFakeTimers({ now: Date.parse('2026-12-01T10:00:00Z') });
    process.env['AIRLOCK_PROGRESS_INTERVAL'] = '1';
    const stream = fakeStream(false);
    const r = await createReporter({ quiet: true, logFormat: 'json', stream });
    expect(stream.text()).toBe(''); // --quiet wins over the format
    const j = await createReporter({ quiet: false, logFormat: 'json', stream });
    j.listener({ kind: 'phase', phase: 'resolving manifests', items: 1, noun: 'image' });
    j.listener({ kind: 'image', name: 'quay.io/coreos/etcd:v3.5.0', digest: D('a'), detail: 'linux/amd64' });
    j.listener({ kind: 'phase', phase: 'copying blobs', total: 2048, items: 1, noun: 'blob', detail: '1 manifest' });
    j.listener({ kind: 'blob', digest: D('1'), size: 2048, image: 'quay.io/coreos/etcd:v3.5.0' });
    vi.advanceTimersByTime(1000);
    j.listener({ kind: 'bytes', bytes: 1024 });
    j.listener({ kind: 'image-done', name: 'quay.io/coreos/etcd:v3.5.0', action: 'stored', bytes: 2048 });
    j.listener({ kind: 'warning', message: 'a warning with \u202e bidi' });
    j.info('a plain line');
    j.record({ event: 'retry', what: 'GET x', attempt: 2, attempts: 6, reason: 'connection reset' }, 'unused');
    j.stop(false);
    r.stop(true);
    const lines = stream.text().trimEnd().split('\n');
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const e of entries) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);
    for (const e of entries) expect(Object.keys(e).slice(0, 2)).toEqual(['time', 'event']);
    expect(entries.map((e) => e['event'])).toEqual([
      'phase',
      'image',
      'phase-done',
      'phase',
      'progress',
      'image-done',
      'warning',
      'message',
      'retry',
      'phase-done',
    ]);
    expect(entries[4]).toMatchObject({
      phase: 'copying blobs',
      bytes: 1024,
      total: 2048,
      percent: 50,
      rate: 1024,
      eta: 1,
      image: 'quay.io/coreos/etcd:v3.5.0',
    });
    expect(entries.at(-1)).toMatchObject({ event: 'phase-done', ok: false });
    // Whole digests in a log; bidi controls escaped, the text itself kept.
    expect(entries[1]!['digest']).toBe(D('a'));
    expect(lines[6]).toContain('\\u202e');
    expect(entries[6]!['message']).toBe('a warning with \u202e bidi');
  });

  it('writes an error as the last line with its code and exit code', () => {
    const line = logLine({ event: 'error', code: 'AUTH', message: 'x', exitCode: 5 }, new Date('2026-12-01T00:00:00Z'));
    expect(JSON.parse(line)).toEqual({ time: '2026-12-01T00:00:00.000Z', event: 'error', code: 'AUTH', message: 'x', exitCode: 5 });
  });
});
