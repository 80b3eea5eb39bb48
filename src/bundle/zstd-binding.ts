/**
 * The native libzstd binding of zstd-napi, for the streaming calls its high-level classes hide:
 * `CCtx.compressStream2` into a caller-owned buffer (no allocation per call) and
 * `DCtx.decompressStream`. A default import binds to the CommonJS `module.exports`.
 *
 * Decompression goes through zstd-decode.ts only: it holds the one rule for when a frame is
 * finished and when output is still pending inside libzstd.
 *
 * In the single executable, scripts/package.mjs bundles src/sea/zstd-napi-binding.ts in place of
 * `zstd-napi/binding.js`: the same binding, loaded from the addon carried inside the executable.
 */
import binding from 'zstd-napi/binding.js';

/** The libzstd binding: CCtx, DCtx, parameter and directive enums. */
export const zstd = binding;
/** A libzstd compression context. */
export type CCtx = InstanceType<typeof binding.CCtx>;
/** A libzstd decompression context. */
export type DCtx = InstanceType<typeof binding.DCtx>;
