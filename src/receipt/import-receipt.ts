/**
 * `bundle import --receipt FILE --receipt-key GAP.pub`: the receipt is evidence that these exact
 * bytes were verified, by a host holding a trusted key, with a passing result. It is never a
 * shortcut: import runs every check it runs without one.
 *
 * Checked once import's first checks passed (signature, manifest, names, policy, the archive's
 * structure): the receipt is signed by one of the receipt keys, it is about this bundle id, and it
 * records a pass. Then every file of the bundle is hashed on a worker while import reads the
 * manifests and checks the target, and the sizes and sha256s must equal the receipt's before the
 * first byte is written to the target.
 */
import type { Digest } from '../digest/digest.js';
import { AirlockError } from '../errors.js';
import type { TrustedKey } from '../bundle/keys.js';
import { bundleFiles, hashFiles } from './files.js';
import { checkReceiptFiles, checkReceiptFor, loadReceipt, type ReceiptFile, type VerifyCheck } from './receipt.js';

/** What import was given: the receipt file and the keys its signature must come from. */
export interface ReceiptRequirement {
  path: string;
  /** `--receipt-key` files: at least one (an unsigned receipt is evidence of nothing). */
  trusted: readonly TrustedKey[];
}

/** The receipt an import relied on, for its output and `--json` report. */
export interface ReceiptUse {
  path: string;
  /** sha256 of the receipt bytes (what its signature covers). */
  id: Digest;
  /** The receipt key that signed it. */
  keyId: string;
  /** When and where the bundle was verified, and by what. */
  verified: string;
  host?: string;
  verifier: string;
  checks: VerifyCheck[];
  /** The files import read, equal to the receipt's. */
  files: ReceiptFile[];
}

/** A receipt accepted for its bundle id, whose files are being hashed. */
export interface PendingReceipt {
  /** Wait for the hashes and compare them with the receipt. @throws INTEGRITY when they differ */
  confirm(): Promise<ReceiptUse>;
  /** Stop hashing (the import failed or was interrupted before it confirmed). */
  stop(): void;
}

/**
 * Read and check the receipt for the bundle at `bundlePath` (id `bundleId`), and start hashing its
 * files.
 *
 * @throws INPUT_INVALID (not a receipt, or one for another bundle), SIGNATURE (unsigned, untrusted,
 *   modified, or not a receipt's signature), POLICY (it records a failed verification)
 */
export async function startReceiptCheck(
  req: ReceiptRequirement,
  bundlePath: string,
  bundleId: Digest,
  signal?: AbortSignal,
  parts?: readonly string[],
): Promise<PendingReceipt> {
  if (req.trusted.length === 0) {
    throw new AirlockError('USAGE', `--receipt ${req.path} needs --receipt-key: an unsigned or unchecked receipt is evidence of nothing`, {
      hint: 'pass the public key of the host that verified the bundle: --receipt-key GAP.pub',
    });
  }
  const read = await loadReceipt(req.path, req.trusted);
  checkReceiptFor(read, req.path, bundlePath, bundleId);
  const stopper = new AbortController();
  const hashed = hashFiles(await bundleFiles(bundlePath, parts), signal === undefined ? stopper.signal : AbortSignal.any([signal, stopper.signal]));
  hashed.catch(() => undefined);
  const { receipt } = read;
  return {
    async confirm(): Promise<ReceiptUse> {
      const files = await hashed;
      checkReceiptFiles(read, req.path, files);
      return {
        path: req.path,
        id: read.id,
        // parseReceipt with keys always checks the signature: keyId is set.
        keyId: read.keyId!,
        verified: receipt.verified,
        ...(receipt.host === undefined ? {} : { host: receipt.host }),
        verifier: receipt.verifier,
        checks: receipt.checks,
        files,
      };
    },
    stop: () => stopper.abort(),
  };
}
