/**
 * Results: `bench/results/latest.json` (everything), `latest.md` (one table) and `chart.svg` (the
 * airlock/baseline time ratio of each step against its target). Plain string building, no deps.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stats } from './measure.mjs';

const MiB = 1024 * 1024;

/**
 * @typedef {object} StepInput
 * @property {string} id e.g. `create`, `tiny-import`
 * @property {string} label Row title.
 * @property {number} target Ratio airlock/baseline the step should stay under.
 * @property {number} bytes Content bytes the step moves (for MB/s).
 * @property {number} [images] Image count, for per-image steps.
 * @property {{ airlock: import('./measure.mjs').SideResult, baseline: import('./measure.mjs').SideResult }} result
 * @property {{ airlock?: number, baseline?: number }} [archives] Archive sizes (create steps).
 */

/**
 * The summary of one step as stored in latest.json.
 * @param {StepInput} s
 */
export function summarize(s) {
  /** @param {import('./measure.mjs').SideResult} r */
  const side = (r) => {
    const st = stats(r.samples);
    return {
      ...(st
        ? {
            ...st,
            mbPerS: s.bytes / 1e6 / st.seconds.median,
            ...(s.images ? { perImageS: st.seconds.median / s.images } : {}),
          }
        : {}),
      samples: r.samples,
      ...(r.error ? { error: r.error } : {}),
      ...(r.skipped ? { skipped: r.skipped } : {}),
    };
  };
  const airlock = side(s.result.airlock);
  const baseline = side(s.result.baseline);
  const complete = airlock.seconds && baseline.seconds && !airlock.error && !baseline.error;
  const ratio = complete ? airlock.seconds.median / baseline.seconds.median : undefined;
  const archives = s.archives
    ? {
        ...s.archives,
        withinOnePercent: s.archives.airlock !== undefined && s.archives.baseline !== undefined ? s.archives.airlock <= s.archives.baseline * 1.01 : undefined,
      }
    : undefined;
  return {
    id: s.id,
    label: s.label,
    target: s.target,
    bytes: s.bytes,
    ...(s.images ? { images: s.images } : {}),
    ratio,
    meetsTarget: ratio === undefined ? undefined : ratio <= s.target,
    airlock,
    baseline,
    ...(archives ? { archives } : {}),
  };
}

/**
 * Write latest.json, latest.md and chart.svg into `dir`.
 * @param {string} dir
 * @param {{ machine: Record<string, unknown>, notes: string[], steps: ReturnType<typeof summarize>[], delta?: Record<string, any> }} results
 */
export async function writeReport(dir, results) {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(join(dir, 'latest.md'), markdown(results));
  await writeFile(join(dir, 'chart.svg'), chart(results.steps));
}

/** @param {number | undefined} n @param {number} [digits] */
const f = (n, digits = 2) => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits));
/** @param {{ median: number, min: number, max: number } | undefined} m @param {number} [digits] */
const spread = (m, digits = 2) => (m ? `${f(m.median, digits)} (${f(m.min, digits)}–${f(m.max, digits)})` : '–');

/** @param {number | undefined} s */
const ms = (s) => (s === undefined ? undefined : s * 1000);
/** @param {number | undefined} bytes */
const size = (bytes) => (bytes === undefined ? '–' : bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`);

/** The delta bundle against the full one, for the set with one layer changed. @param {Record<string, any> | undefined} d */
function deltaSection(d) {
  if (d === undefined) return [];
  if (d.error) return ['## Delta bundle', '', `FAILED: ${d.error}`, ''];
  return [
    '## Delta bundle (the set with one layer changed)',
    '',
    `${d.change}. Full bundle of the new set: ${size(d.fullArchiveBytes)}; delta \`--since\` last week's full bundle: ${size(d.deltaArchiveBytes)} (${(100 * d.ratio).toFixed(2)} % of the full one), carrying ${size(d.deltaCarriedBytes)} of content and pointing at ${size(d.deltaExternalBytes)} delivered before.`,
    '',
  ];
}

/** @param {Parameters<typeof writeReport>[1]} r */
function markdown(r) {
  const m = r.machine;
  const rows = r.steps.map((s) => {
    /** @param {ReturnType<typeof summarize>['airlock']} side */
    const secs = (side) => (side.skipped ? 'skipped' : side.error ? 'FAILED' : spread(side.seconds));
    const verdict = s.ratio === undefined ? '–' : `${f(s.ratio)} ${s.meetsTarget ? '✅' : '❌'}`;
    const arch = s.archives
      ? `${size(s.archives.airlock)} vs ${size(s.archives.baseline)}: ${s.archives.withinOnePercent === undefined ? '–' : s.archives.withinOnePercent ? 'yes' : 'no'}`
      : '';
    // Small-image steps show the time per image instead of a throughput.
    const speed = s.images
      ? `${f(ms(s.airlock.perImageS), 1)} / ${f(ms(s.baseline.perImageS), 1)} ms per image`
      : `${f(s.airlock.mbPerS, 0)} / ${f(s.baseline.mbPerS, 0)}`;
    return `| ${s.label} | ${secs(s.airlock)} | ${secs(s.baseline)} | ${verdict} | ≤ ${s.target} | ${speed} | ${f(s.airlock.rssMiB?.median, 0)} / ${f(s.baseline.rssMiB?.median, 0)} | ${f(s.airlock.diskMiB?.median, 1)} / ${f(s.baseline.diskMiB?.median, 1)} | ${arch} |`;
  });
  const problems = r.steps.flatMap((s) =>
    [
      ['airlock', s.airlock],
      ['baseline', s.baseline],
    ].flatMap(([who, side]) => {
      const x = /** @type {ReturnType<typeof summarize>['airlock']} */ (side);
      if (x.error) return [`- **${s.label}, ${who} FAILED:**\n\n\`\`\`\n${x.error}\n\`\`\``];
      if (x.skipped) return [`- ${s.label}, ${who} skipped: ${x.skipped}`];
      return [];
    }),
  );
  return [
    '# airlock vs the skopeo pipeline',
    '',
    `${m.date}, scale ${m.scale}, ${m.rounds} rounds (A B alternating), ${m.nproc} cores (${m.cpu}), ${m.memGiB} GiB RAM, Node ${m.node}, ${m.skopeo}, ${m.zstd}, airlock ${m.commit}.`,
    '',
    'Seconds: median (min–max). Ratio: airlock median / baseline median (lower is better). MB/s, peak RSS (MiB) and extra disk (MiB, peak of staging/temp dirs and outputs) are airlock / baseline medians.',
    '',
    '| step | airlock s | baseline s | ratio | target | MB/s (or ms per image) | RSS MiB | disk MiB | archive size within 1%? |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    ...(problems.length ? ['## Failures and skipped steps', '', ...problems, ''] : []),
    ...deltaSection(r.delta),
    '## Notes',
    '',
    ...r.notes.map((n) => `- ${n}`),
    '',
    '![ratios](chart.svg)',
    '',
  ].join('\n');
}

/** @param {string} s */
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * A horizontal bar per step: the ratio (green under target, red over), the target as a black tick,
 * parity (1.0) as a dashed line.
 * @param {ReturnType<typeof summarize>[]} steps
 */
function chart(steps) {
  const left = 230;
  const width = 460;
  const row = 34;
  const top = 40;
  const height = top + steps.length * row + 40;
  const max = Math.max(1.2, ...steps.map((s) => s.ratio ?? 0), ...steps.map((s) => s.target)) * 1.05;
  const x = (/** @type {number} */ v) => left + (v / max) * width;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 90}" height="${height}" font-family="sans-serif" font-size="13">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="${left}" y="22" font-weight="bold">time ratio airlock / skopeo pipeline (lower is better; tick = target)</text>`,
  ];
  for (const t of [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4].filter((v) => v <= max)) {
    parts.push(
      `<line x1="${x(t)}" y1="${top - 5}" x2="${x(t)}" y2="${top + steps.length * row}" stroke="${t === 1 ? '#555' : '#ddd'}"${t === 1 ? ' stroke-dasharray="4 3"' : ''}/>`,
    );
    parts.push(`<text x="${x(t)}" y="${top + steps.length * row + 16}" text-anchor="middle" fill="#555">${t}</text>`);
  }
  steps.forEach((s, i) => {
    const y = top + i * row;
    parts.push(`<text x="${left - 8}" y="${y + 20}" text-anchor="end">${esc(s.label)}</text>`);
    if (s.ratio === undefined) {
      const why = s.airlock.skipped ? 'skipped' : 'failed';
      parts.push(`<text x="${left + 6}" y="${y + 20}" fill="#888">${why}</text>`);
    } else {
      const color = s.meetsTarget ? '#2e7d32' : '#c62828';
      parts.push(`<rect x="${left}" y="${y + 7}" width="${x(s.ratio) - left}" height="18" fill="${color}"/>`);
      parts.push(`<text x="${Math.max(x(s.ratio), x(s.target) + 2) + 5}" y="${y + 21}">${s.ratio.toFixed(2)}</text>`);
    }
    parts.push(`<line x1="${x(s.target)}" y1="${y + 3}" x2="${x(s.target)}" y2="${y + 29}" stroke="black" stroke-width="3"/>`);
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}
