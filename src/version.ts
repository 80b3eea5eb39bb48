import { createRequire } from 'node:module';

/** airlock's version, from package.json (recorded as the creator of every bundle). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
