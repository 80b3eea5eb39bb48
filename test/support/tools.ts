/**
 * The system tools the tests run, and whether this machine has them.
 *
 * The integration suite needs all of them and refuses to start without them (global-setup.ts). The
 * unit suite needs none: it must run on a fresh clone with only Node. The few unit checks that
 * prove a standard tool reads what we wrote (zstd, tar --zstd) or that need a test certificate
 * (openssl) run only where the tool is; unit-setup.ts names the missing tools at the start of the
 * run, and `npm test` runs every such check because it cannot start without the tools.
 */
import { execFileSync } from 'node:child_process';

export interface RequiredTool {
  bin: string;
  /** The Debian package that installs it. */
  pkg: string;
  /** Why the tests need it. */
  why: string;
}

export const REQUIRED_TOOLS: readonly RequiredTool[] = [
  { bin: 'docker-registry', pkg: 'docker-registry', why: 'the real registry the integration tests start' },
  { bin: 'skopeo', pkg: 'skopeo', why: 'the cross-checking client' },
  { bin: 'zstd', pkg: 'zstd', why: 'standard tools must read our archives' },
  { bin: 'htpasswd', pkg: 'apache2-utils', why: 'bcrypt logins for the Basic-auth registry' },
  { bin: 'openssl', pkg: 'openssl', why: 'the test CA and server certificates' },
  // Runs the test registry with a parent-death signal, so a killed test worker leaves no registry.
  { bin: 'setpriv', pkg: 'util-linux', why: 'no registry outlives a killed test worker' },
  // The clients mirror-config's files are proven with (mirror-config.test.ts).
  { bin: 'containerd', pkg: 'containerd', why: 'pulls through the generated hosts.toml' },
  { bin: 'ctr', pkg: 'containerd', why: 'pulls through the generated hosts.toml' },
  { bin: 'podman', pkg: 'podman', why: 'pulls through the generated registries.conf' },
];

const known = new Map<string, boolean>();

/** Whether `bin` is on PATH (looked up once per process). */
export function hasTool(bin: string): boolean {
  let found = known.get(bin);
  if (found === undefined) {
    try {
      execFileSync('sh', ['-c', 'command -v "$1"', 'sh', bin], { stdio: 'ignore' });
      found = true;
    } catch {
      found = false;
    }
    known.set(bin, found);
  }
  return found;
}

/** The required tools this machine lacks. */
export function missingTools(tools: readonly RequiredTool[] = REQUIRED_TOOLS): RequiredTool[] {
  return tools.filter(({ bin }) => !hasTool(bin));
}

/** The line that installs `tools`. */
export function installLine(tools: readonly RequiredTool[]): string {
  return `apt-get update && apt-get install -y ${[...new Set(tools.map((t) => t.pkg))].join(' ')}`;
}
