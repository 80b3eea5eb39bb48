/**
 * `bundle verify --receipt FILE [--sign-key GAP.key]`: verify, and write what was verified as a
 * receipt (receipt.ts), signed with the verifying side's key when one is given.
 *
 * A receipt is written for every verdict, passed or failed. Auditors ask for a record that the
 * media was checked, and a bundle that was refused is part of that record: with receipts only for
 * passes, a check that failed could not be told from one that never ran. A failed receipt cannot be
 * mistaken for a pass (`result: "failed"` with the problems, and `import --receipt` refuses it), and
 * verify still exits with the failure's code. What is not a verdict about the bundle (a missing
 * file, a usage or disk error, Ctrl-C) writes no receipt.
 *
 * The archive is hashed on a worker while verify reads its entries, and that hash also checks the
 * `.sha256` sidecar, so a receipt costs no second pass over the file.
 */
import { hostname } from 'node:os';
import { AirlockError, isAirlockError } from '../errors.js';
import { sha256Digest } from '../digest/digest.js';
import { writeFileAtomic } from '../layout/atomic.js';
import { checkOutputFree, fileExists } from '../fs/output-file.js';
import { checkOutputFile } from '../fs/output-location.js';
import { readHead } from '../bundle/read-head.js';
import { findParts, parsePartName, resolveSplitSet } from '../bundle/split-set.js';
import { parseBundleManifest } from '../bundle/manifest.js';
import type { SigningKey } from '../bundle/keys.js';
import type { Problem } from '../bundle/problems.js';
import { VERSION } from '../version.js';
import { verifyBundle, type VerifyOptions, type VerifyResult } from '../ops/verify.js';
import { bundleFiles, hashBundleFiles, hashFiles, receiptFiles } from './files.js';
import { VERIFY_CHECKS, writeReceipt, type Receipt, type ReceiptBundle, type ReceiptFile } from './receipt.js';

export interface ReceiptOptions {
  /** Where to write the receipt (must not exist). */
  output: string;
  /** The verifying side's key; unsigned when absent. */
  signingKey?: SigningKey;
}

/** What was written, for the command's output. */
export interface WrittenReceipt {
  path: string;
  result: 'passed' | 'failed';
  signed: boolean;
  keyId?: string;
  files: ReceiptFile[];
}

/** The codes of a verdict about the bundle: only these write a failed receipt. */
const VERDICTS = ['INTEGRITY', 'SIGNATURE', 'POLICY'] as const;

/**
 * Before any work: the receipt's location must be writable and free (a receipt is a record: an
 * existing one is never replaced).
 *
 * @throws IO (cannot be written there), USAGE (it exists)
 */
export async function checkReceiptOutput(output: string): Promise<void> {
  await checkOutputFile(output, '--receipt');
  await checkOutputFree(output, false);
}

/**
 * Verify the bundle and write the receipt.
 *
 * @returns the verification result and the receipt written
 * @throws what {@link verifyBundle} throws; a verdict (INTEGRITY, SIGNATURE, POLICY) after the
 *   failed receipt is written, with `details.receipt` naming it
 */
export async function verifyWithReceipt(opts: VerifyOptions, receipt: ReceiptOptions): Promise<{ result: VerifyResult; receipt: WrittenReceipt }> {
  await checkReceiptOutput(receipt.output);
  const stop = new AbortController();
  const signal = opts.signal === undefined ? stop.signal : AbortSignal.any([opts.signal, stop.signal]);
  let paths: string[];
  try {
    paths = await bundleFiles(opts.path, opts.parts);
  } catch (err) {
    // A split set found incomplete (a part missing, truncated or extra) is a verdict too: the
    // receipt records it with the parts that are there.
    if (!isAirlockError(err, 'INTEGRITY')) throw err;
    const found = await partsFound(opts);
    if (found.length === 0) throw err;
    // Parts that cannot be hashed (one is a FIFO, say) leave the verdict without a record.
    const files = await hashFiles(found, opts.signal).catch((e: unknown) => {
      throw isAirlockError(e, 'INTERRUPTED') ? e : err;
    });
    const sidecar = opts.checksum !== false && (await fileExists(`${setBase(opts)}.sha256`));
    throw withReceipt(err, await write(failedReceipt(opts, files, await headOf(found[0]!), err, sidecar), receipt), receipt);
  }
  const fileHash = hashBundleFiles(paths, signal);
  fileHash.catch(() => undefined);
  const hashed = fileHash.then(receiptFiles);
  hashed.catch(() => undefined);
  let result: VerifyResult;
  try {
    // The same hash checks the sidecar (each part's line of a split set's).
    result = await verifyBundle({ ...opts, fileHash });
  } catch (err) {
    if (!isAirlockError(err, ...VERDICTS)) {
      stop.abort();
      throw err;
    }
    // The record of a refusal names the bytes refused: wait for their hash (Ctrl-C still stops it).
    const sidecar = opts.checksum !== false && (await hasSidecar(opts));
    const doc = failedReceipt(opts, await hashed, await headOf(opts.path), err, sidecar);
    throw withReceipt(err, await write(doc, receipt), receipt);
  }
  const files = await hashed;
  const doc: Receipt = {
    ...base(files, result.checks),
    bundle: {
      id: result.bundleId,
      created: result.created,
      ...(result.keyId === undefined ? {} : { keyId: result.keyId }),
      ...(result.sequence === undefined ? {} : { sequence: result.sequence }),
      ...(result.expires === undefined ? {} : { expires: result.expires }),
    },
    result: 'passed',
    ...accepted(result.keyId === undefined, result.expired),
    verified: (opts.now?.() ?? new Date()).toISOString(),
  };
  return { result, receipt: await write(doc, receipt) };
}

/** `err`, saying that `written` records it. */
function withReceipt(err: AirlockError, written: WrittenReceipt, opts: ReceiptOptions): AirlockError {
  return new AirlockError(err.code, err.message, {
    ...(err.subject === undefined ? {} : { subject: err.subject }),
    hint: `${err.hint ?? 'see the problems above'}; ${opts.output} records the failure`,
    details: { ...err.details, receipt: written },
    cause: err,
  });
}

/** The name a split set goes by: `NAME` of `NAME.part-NNN`, or the path as given. */
function setBase(opts: VerifyOptions): string {
  const first = opts.parts?.[0] ?? opts.path;
  return parsePartName(first)?.base ?? first;
}

/** The parts of an incomplete set that are there, in order: those named, or those found beside it. */
async function partsFound(opts: VerifyOptions): Promise<string[]> {
  if (opts.parts !== undefined && opts.parts.length > 1) {
    const named = opts.parts.flatMap((p) => {
      const index = parsePartName(p)?.index;
      return index === undefined ? [] : [{ index, path: p }];
    });
    const there = await Promise.all(named.map(async (p) => ((await fileExists(p.path)) ? [p] : [])));
    return there
      .flat()
      .sort((a, b) => a.index - b.index)
      .map((p) => p.path);
  }
  return (await findParts(setBase(opts)).catch(() => [])).map((p) => p.path);
}

async function write(doc: Receipt, opts: ReceiptOptions): Promise<WrittenReceipt> {
  // Checked before verify began; a file that appeared since is not replaced either.
  if (await fileExists(opts.output)) await checkOutputFree(opts.output, false);
  await writeFileAtomic(opts.output, writeReceipt(doc, opts.signingKey));
  return {
    path: opts.output,
    result: doc.result,
    signed: opts.signingKey !== undefined,
    ...(opts.signingKey === undefined ? {} : { keyId: opts.signingKey.keyId }),
    files: doc.files,
  };
}

function base(files: ReceiptFile[], checks: Receipt['checks']): Pick<Receipt, 'schemaVersion' | 'mediaType' | 'files' | 'checks' | 'verifier' | 'host'> {
  return {
    schemaVersion: 1,
    mediaType: 'application/vnd.airlock.receipt.v1+json',
    files,
    checks,
    verifier: `airlock/${VERSION}`,
    host: hostname().slice(0, 256),
  };
}

function accepted(unsigned: boolean, expired: boolean): Pick<Receipt, 'accepted'> {
  const list = [...(unsigned ? (['unsigned'] as const) : []), ...(expired ? (['expired'] as const) : [])];
  return list.length === 0 ? {} : { accepted: list };
}

/** Whether verify had a sidecar to check: a split set's is beside its parts, whichever part names it. */
async function hasSidecar(opts: VerifyOptions): Promise<boolean> {
  const set = await resolveSplitSet(opts.path, opts.parts).catch(() => undefined);
  return set === undefined ? fileExists(`${opts.path}.sha256`) : set.sidecar !== undefined;
}

/** What a failed receipt can say of the bundle: its id and stamps when the head can be read. */
async function headOf(path: string): Promise<ReceiptBundle | undefined> {
  let bundleJson: Buffer;
  try {
    bundleJson = (await readHead(path)).bundleJson;
  } catch {
    return undefined;
  }
  const id = sha256Digest(bundleJson);
  try {
    const m = parseBundleManifest(bundleJson, path);
    return {
      id,
      created: m.created,
      ...(m.sequence === undefined ? {} : { sequence: m.sequence }),
      ...(m.expires === undefined ? {} : { expires: m.expires }),
    };
  } catch {
    return { id };
  }
}

function failedReceipt(opts: VerifyOptions, files: ReceiptFile[], bundle: ReceiptBundle | undefined, err: AirlockError, sidecar: boolean): Receipt {
  const code = err.code as Problem['code'];
  const subject = err.subject ?? opts.path;
  // verify's problem list, or the reasons of an invalid bundle.json (strings), or the error itself.
  const listed: unknown[] = Array.isArray(err.details?.problems) ? (err.details.problems as unknown[]) : [];
  const problems: Problem[] = listed.map((p) =>
    typeof p === 'string'
      ? { code, subject: clip(subject), message: clip(p) }
      : { code: (p as Problem).code, subject: clip((p as Problem).subject), message: clip((p as Problem).message) },
  );
  if (problems.length === 0) problems.push({ code, subject: clip(subject), message: clip(err.message) });
  const omitted = err.details?.omittedProblems;
  // What verify set out to check (it stopped at a verdict): the sidecar only when there was one.
  const checks = VERIFY_CHECKS.filter((c) => c !== 'sidecar' || sidecar);
  return {
    ...base(files, checks),
    ...(bundle === undefined ? {} : { bundle }),
    result: 'failed',
    problems: problems.slice(0, 100),
    ...(typeof omitted === 'number' && omitted > 0 ? { omittedProblems: omitted } : {}),
    verified: (opts.now?.() ?? new Date()).toISOString(),
  };
}

/** Problem texts are bounded in the schema (a hostile archive names its own entries). */
function clip(text: string): string {
  return text.length > 4096 ? `${text.slice(0, 4093)}...` : text;
}
