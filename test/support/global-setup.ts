/**
 * Runs once before the integration tests. They need real tools; when one is missing the run fails
 * with the line that installs it, it never skips silently. It also makes the run's test CA and
 * server certificate once (see `registry.js`), and removes them at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, PKI_ENV } from './registry.js';
import { installLine, missingTools } from './tools.js';

export default async function setup(): Promise<() => Promise<void>> {
  const missing = missingTools();
  if (missing.length > 0) {
    throw new Error(`missing ${missing.map((m) => m.bin).join(', ')}: install with: ${installLine(missing)}`);
  }
  const pkiDir = await mkdtemp(join(tmpdir(), 'airlock-pki-'));
  await makeTestPki(pkiDir);
  process.env[PKI_ENV] = pkiDir;
  return async () => {
    await rm(pkiDir, { recursive: true, force: true });
  };
}
