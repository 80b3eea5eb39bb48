import { BUILD_COMMIT, BUILD_VERSION } from './generated/build-info.js';

/**
 * airlock's version, from package.json at build time (recorded as the creator of every bundle). Fixed
 * at build time, not read at run time, so the single executable needs no package.json beside it.
 */
export const VERSION: string = BUILD_VERSION;

/** The git commit airlock was built from ("unknown" when built outside a git checkout). */
export const COMMIT: string = BUILD_COMMIT;
