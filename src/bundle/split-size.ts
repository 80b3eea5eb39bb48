/**
 * `--split SIZE`: a part size as operators write it. SI and binary units mean what they say
 * (`4.7GB` is 4,700,000,000 bytes, a DVD; `4GiB` is 4,294,967,296); a plain number is bytes.
 */
import { AirlockError } from '../errors.js';
import { MIN_SPLIT_SIZE } from './split-set.js';

const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  B: 1,
  kB: 1e3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};

/**
 * Bytes of a `--split` value: `4GiB`, `4.7GB`, `700MB`, `512KiB`, `1000000`.
 *
 * @throws USAGE (naming `flag`) for anything else, a fraction of a byte, or less than {@link MIN_SPLIT_SIZE}
 */
export function parseSplitSize(text: string, flag = '--split'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text.trim());
  const unit = m === null ? undefined : UNITS[m[2]!];
  const bad = (why: string): AirlockError =>
    new AirlockError('USAGE', `${flag} ${JSON.stringify(text)}: ${why}`, {
      subject: flag,
      hint: `give a size such as 4GiB, 4.7GB, 700MB or 512KiB (at least ${MIN_SPLIT_SIZE / 1024} KiB); a plain number is bytes`,
    });
  if (m === null || unit === undefined) throw bad('not a size');
  const [whole, frac = ''] = m[1]!.split('.');
  if (m[2] === '' || m[2] === 'B') {
    if (frac !== '') throw bad('not a whole number of bytes');
  }
  // Exact arithmetic: 4.7GB must be 4700000000, not a float's neighbour.
  const scale = 10n ** BigInt(frac.length);
  const num = BigInt(whole! + frac) * BigInt(unit);
  if (num % scale !== 0n) throw bad('not a whole number of bytes');
  const bytes = num / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('too large');
  if (bytes < BigInt(MIN_SPLIT_SIZE)) throw bad(`parts must be at least ${MIN_SPLIT_SIZE / 1024} KiB (${MIN_SPLIT_SIZE} bytes)`);
  return Number(bytes);
}
