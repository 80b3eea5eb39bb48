/**
 * The README's first command line ends in `npm run demo`: the offline demo must run to its end
 * (create, verify, inspect, tar listing, import into an OCI layout) and leave a layout skopeo reads.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

const run = promisify(execFile);
const DEMO = fileURLToPath(new URL('../../samples/demo.sh', import.meta.url));
let tmp: TempDir;

beforeAll(async () => {
  tmp = await makeTempDir('demo');
});
afterAll(() => tmp.remove());

describe('the offline demo', () => {
  it('runs every step and imports busybox:musl into the layout under its upstream name', async () => {
    const { stdout } = await run('bash', [DEMO, tmp.path], { timeout: 120_000 });
    expect(stdout).toContain('== 7. bundle import');
    expect(stdout).toContain('mirror.tar.zst: OK');
    const { digest } = await skopeoInspectRaw(`oci:${tmp.path}/imported:docker.io/library/busybox:musl`);
    expect(digest).toBe('sha256:5347a626af38e85fffbc088fbee3dbeb97bbab44316b6b657722aa4823afdfff');
  });
});
