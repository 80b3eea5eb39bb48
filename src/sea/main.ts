/**
 * The single executable's entry point (scripts/package.mjs bundles it into the SEA's one CommonJS
 * script): bin/airlock's job, without a node command line.
 *
 * The CLI is imported dynamically so that a native addon that cannot be loaded (see
 * native-addon.ts) ends as an error message and an exit code, not as a stack trace.
 */
import { setGcFlags } from './gc-flags.js';

setGcFlags();

import('../cli/main.js')
  .then(({ main }) => main(process.argv))
  .then(
    (code) => {
      process.exitCode = code;
    },
    async (err: unknown) => {
      const { renderError } = await import('../cli/render-error.js');
      const rendered = renderError(err);
      for (const line of rendered.lines) process.stderr.write(`${line}\n`);
      process.exitCode = rendered.exitCode;
    },
  );
