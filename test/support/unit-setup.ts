/**
 * Runs once before the unit tests, which need nothing but Node and the npm dependencies:
 *
 * - The sources import the validators that scripts/compile-schemas.mjs generates into
 *   src/generated/ (a build output, not committed). They are generated here when missing or older
 *   than a schema, so that the unit tests run on a fresh clone without `npm run build`; so is the
 *   version and commit module scripts/build-info.mjs writes there, when missing.
 * - A unit check that runs a system tool (zstd, openssl) is skipped where the tool is missing; this
 *   says so, loudly, at the start of the run. The integration suite (and so `npm test`) cannot start
 *   without the tools, so there every such check runs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installLine, missingTools, REQUIRED_TOOLS } from './tools.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The tools some unit checks run; the others only the integration tests need. */
const UNIT_TOOLS = REQUIRED_TOOLS.filter((t) => t.bin === 'zstd' || t.bin === 'openssl');

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Whether src/generated/ lacks a validator or holds one older than its schema or the compiler. */
function schemasStale(): boolean {
  const generated = join(ROOT, 'src', 'generated');
  const newest = Math.max(
    mtime(join(ROOT, 'scripts', 'compile-schemas.mjs')),
    ...readdirSync(join(ROOT, 'schemas')).map((f) => mtime(join(ROOT, 'schemas', f))),
  );
  return ['bundle-validate', 'images-validate', 'policy-validate'].some((name) => {
    const made = Math.min(mtime(join(generated, `${name}.js`)), mtime(join(generated, `${name}.d.ts`)));
    return made < newest;
  });
}

export default function setup(): void {
  if (schemasStale()) execFileSync(process.execPath, [join(ROOT, 'scripts', 'compile-schemas.mjs')], { stdio: 'inherit' });
  if (!existsSync(join(ROOT, 'src', 'generated', 'build-info.ts')))
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-info.mjs')], { stdio: 'inherit' });
  const missing = missingTools(UNIT_TOOLS);
  if (missing.length > 0) {
    process.stderr.write(
      `\n[test:unit] missing ${missing.map((t) => t.bin).join(', ')}: the unit checks that run ${missing.length === 1 ? 'it' : 'them'} are SKIPPED.\n` +
        `[test:unit] npm test runs them (and refuses to start without them); install with: ${installLine(missing)}\n\n`,
    );
  }
}
