/**
 * Constants of the airlock bundle format (`NAME.tar.zst`), described in full in `docs/FORMAT.md`.
 *
 * A bundle is a sequence of zstd frames whose decompressed concatenation is one POSIX ustar
 * archive holding an OCI image layout. Every tar entry starts a new frame; after the tar end
 * frame come an airlock index (skippable frame) and a zstd seekable-format seek table.
 */
import { AirlockError } from '../errors.js';

/** Tar block size: headers, padding and the end-of-archive marker are multiples of it. */
export const TAR_BLOCK = 512;

/** The tar end-of-archive marker: two zero blocks. */
export const TAR_END_SIZE = 2 * TAR_BLOCK;

/**
 * Largest decompressed content of one frame: 1 GiB. The seek table stores sizes as u32, and the
 * reference seekable implementation (`ZSTD_SEEKABLE_MAX_FRAME_DECOMPRESSED_SIZE`) refuses frames
 * above 1 GiB; at 1 GiB even an incompressible frame (compressBound ≈ 1 GiB + 4 MiB) fits in u32.
 */
export const MAX_FRAME_CONTENT = 0x4000_0000;

/** First entry: the bundle manifest. */
export const BUNDLE_JSON = 'bundle.json';
/** Second entry (signed bundles only): the detached signature. */
export const BUNDLE_SIG = 'bundle.json.sig';
/** Third entry: the OCI layout marker. */
export const OCI_LAYOUT = 'oci-layout';
/** Fourth entry: the OCI image index. */
export const INDEX_JSON = 'index.json';
/** Directory of every following entry: `blobs/sha256/<hex>`. */
export const BLOBS_DIR = 'blobs/sha256/';

/** Magic of a zstd data frame (RFC 8878 §3.1.1), little-endian on disk. */
export const ZSTD_FRAME_MAGIC = 0xfd2fb528;

/**
 * Skippable magic of the airlock index frame. Skippable frames may use 0x184D2A50–0x184D2A5F
 * (RFC 8878 §3.1.2); 5E is the seek table's, 5B is otherwise arbitrary.
 */
export const AIRLOCK_INDEX_MAGIC = 0x184d2a5b;

/** Skippable magic of the seekable-format seek table frame. */
export const SEEK_TABLE_MAGIC = 0x184d2a5e;

/** Last four bytes of a seekable file (zstd `contrib/seekable_format`). */
export const SEEKABLE_FOOTER_MAGIC = 0x8f92eab1;

/** Media type of `bundle.json`. */
export const BUNDLE_MEDIA_TYPE = 'application/vnd.airlock.bundle.v1+json';

/** Version of the airlock index JSON (`{"schemaVersion":1,"entries":[…]}`). */
export const INDEX_SCHEMA_VERSION = 1;

/**
 * The error for a file whose tail is not a valid seek table + airlock index, or whose index
 * does not fit its frames: INTEGRITY "not an airlock bundle or truncated", with the reason.
 */
export function notABundle(path: string, why: string): AirlockError {
  return new AirlockError('INTEGRITY', `${path}: not an airlock bundle or truncated (${why})`, {
    subject: path,
    hint: 'check that the file is a complete airlock bundle; compare it with its .sha256 sidecar',
  });
}
