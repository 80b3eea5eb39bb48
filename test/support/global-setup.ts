/**
 * Runs once before the suite. The integration tests need real tools; when one is missing the
 * suite fails with the line that installs it, it never skips silently.
 */
import { execFileSync } from 'node:child_process';

const REQUIRED: Array<{ bin: string; pkg: string }> = [
  { bin: 'docker-registry', pkg: 'docker-registry' },
  { bin: 'skopeo', pkg: 'skopeo' },
  { bin: 'zstd', pkg: 'zstd' },
  { bin: 'htpasswd', pkg: 'apache2-utils' },
  { bin: 'openssl', pkg: 'openssl' },
];

export default function setup(): void {
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
}
