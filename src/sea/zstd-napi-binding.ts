/**
 * zstd-napi's native binding in the single executable: scripts/package.mjs bundles this module in
 * place of `zstd-napi/binding.js` (which `require`s build/Release/binding.node beside itself, a file
 * the executable does not have), so src/bundle/zstd-binding.ts gets the same binding either way.
 */
import type binding from 'zstd-napi/binding.js';
import { loadNativeAsset } from './native-addon.js';

export default loadNativeAsset('zstd-napi.node') as typeof binding;
