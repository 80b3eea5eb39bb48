/**
 * The airlock side of each pair: the command lines, run from the repository root with the built CLI
 * (`npm run bench` builds first). `-q` keeps progress output out of the measurement. `bin/airlock`
 * runs as an operator's `airlock` does, executed directly, so the node flags of its shebang apply.
 */
import { spawnCollect } from './measure.mjs';

/** @param {string} repoDir */
const cli = (repoDir) => [`${repoDir}/bin/airlock`, '-q', 'bundle'];

/**
 * @param {string} repoDir @param {string} out @param {string[]} refs `127.0.0.1:PORT/REPO:TAG`
 * @returns {string[]}
 */
export function createArgv(repoDir, out, refs) {
  return [...cli(repoDir), 'create', '--plain-http', '--unsigned', '-o', out, ...refs];
}

/** @param {string} repoDir @param {string} archive @returns {string[]} */
export function verifyArgv(repoDir, archive) {
  return [...cli(repoDir), 'verify', '--allow-unsigned', archive];
}

/**
 * `--strip-host`: the images land as `TARGET/REPO:TAG`, where the baseline's skopeo puts them too
 * (without it airlock keeps the source host as a path component).
 * @param {string} repoDir @param {string} archive @param {string} target `127.0.0.1:PORT` @returns {string[]}
 */
export function importArgv(repoDir, archive, target) {
  return [...cli(repoDir), 'import', archive, '--to', target, '--plain-http', '--allow-unsigned', '--strip-host'];
}

/**
 * Why `bundle import` cannot be measured, or undefined when it can: it is being built in parallel,
 * so its absence is a skipped step, not a failure.
 * @param {string} repoDir
 * @returns {Promise<string | undefined>}
 */
export async function importUnavailable(repoDir) {
  // `bundle import --help` would print the parent's help and exit 0 when `import` is unknown.
  const { code, output } = await spawnCollect([...cli(repoDir), '--help']);
  if (code !== 0) return `\`airlock bundle --help\` exited ${code}: ${output.trim().split('\n').slice(-3).join(' ')}`;
  if (/^  import\b/m.test(output)) return undefined;
  return '`airlock bundle import` is not available yet (not listed by `airlock bundle --help`)';
}
