/**
 * Runs once before the suite. The integration tests need real tools; when one is missing the
 * suite fails with the line that installs it, it never skips silently. It also makes the run's
 * test CA and server certificate once (see `registry.ts`), and removes them at the end.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, PKI_ENV } from './registry.js';

const REQUIRED: Array<{ bin: string; pkg: string }> = [
  { bin: 'docker-registry', pkg: 'docker-registry' },
  { bin: 'skopeo', pkg: 'skopeo' },
  { bin: 'zstd', pkg: 'zstd' },
  { bin: 'htpasswd', pkg: 'apache2-utils' },
  { bin: 'openssl', pkg: 'openssl' },
  // Runs the test registry with a parent-death signal, so a killed test worker leaves no registry.
  { bin: 'setpriv', pkg: 'util-linux' },
];

export default async function setup(): Promise<() => Promise<void>> {
  const missing = REQUIRED.filter(({ bin }) => {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((m) => m.pkg))].join(' ');
    throw new Error(
      `missing ${missing.map((m) => m.bin).join(', ')}: install with: apt-get update && apt-get install -y ${pkgs}`,
    );
  }
  const pkiDir = await mkdtemp(join(tmpdir(), 'airlock-pki-'));
  await makeTestPki(pkiDir);
  process.env[PKI_ENV] = pkiDir;
  return async () => {
    await rm(pkiDir, { recursive: true, force: true });
  };
}
