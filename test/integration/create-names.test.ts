/**
 * Names end to end: an `oci:` layout written by skopeo names its image `busybox-musl`, which import
 * cannot map; create refuses it with a hint, and `as:` in the image list records it under a full
 * name that import maps. A host-less `localhost_6200/app` cannot sit beside `localhost:6200/app`,
 * nor escape a policy that denies `localhost:6200`.
 */
import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCorpus } from '../../samples/corpus.mjs';
import { EXIT_CODES } from '../../src/cli/exit-codes.js';
import { airlock } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { seedRegistry } from '../support/seed.js';
import { skopeoCopy, skopeoInspectRaw } from '../support/skopeo.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let tmp: TempDir;
let reg: TestRegistry;
let layout: string;
let signer: string;
let trust: string;

beforeAll(async () => {
  tmp = await makeTempDir('create-names');
  const corpus = await writeCorpus(`${tmp.path}/upstream`);
  reg = await startRegistry();
  await seedRegistry(reg, corpus.dir, ['docker.io/library/busybox:musl']);
  layout = `${tmp.path}/layout`;
  // As an operator would: skopeo names the image in the layout with a bare name.
  await skopeoCopy(`docker://${reg.host}/library/busybox:musl`, `oci:${layout}:busybox-musl`, { src: { tlsVerify: false } });
  await skopeoCopy(`docker://${reg.host}/library/busybox:musl`, `oci:${layout}:localhost_6200/app:1`, { src: { tlsVerify: false } });
  expect((await airlock(['key', 'generate', '--out', `${tmp.path}/signer`])).code).toBe(0);
  signer = `${tmp.path}/signer.key`;
  trust = `${tmp.path}/signer.pub`;
});

afterAll(async () => {
  await reg?.stop();
  await tmp?.remove();
});

describe('bare oci: names', () => {
  it('refuses a bare layout name before signing, with a hint to rename it', async () => {
    const out = `${tmp.path}/bare.tar.zst`;
    const r = await airlock(['bundle', 'create', `oci:${layout}:busybox-musl`, '-o', out, '--sign-key', signer, '-q']);
    expect(r.code).toBe(EXIT_CODES.INPUT_INVALID);
    expect(r.stderr).toContain(`oci:${layout}:busybox-musl: "busybox-musl" cannot be mapped to a target name at import`);
    expect(r.stderr).toContain(`hint: record it under a full name in an image list: - { ref: "oci:${layout}:busybox-musl", as: "HOST/REPOSITORY:TAG" }`);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.partial`)).toBe(false);
  });

  it('refuses the whole layout when one of its names is bare', async () => {
    const r = await airlock(['bundle', 'create', `oci:${layout}`, '-o', `${tmp.path}/whole.tar.zst`, '--sign-key', signer, '-q']);
    expect(r.code).toBe(EXIT_CODES.INPUT_INVALID);
    expect(r.stderr).toContain('"busybox-musl" cannot be mapped');
  });

  it('records it under the name given with as:, and import lands it there', async () => {
    const list = `${tmp.path}/renamed.yaml`;
    await writeFile(list, ['version: 1', 'images:', `  - ref: oci:${layout}:busybox-musl`, '    as: busybox:musl', ''].join('\n'));
    const out = `${tmp.path}/renamed.tar.zst`;
    const created = await airlock(['bundle', 'create', '-f', list, '-o', out, '--sign-key', signer, '-q']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const info = JSON.parse((await airlock(['bundle', 'inspect', '--json', out])).stdout) as {
      images: Array<{ name: string; source: string; digest: string }>;
    };
    expect(info.images.map((i) => [i.name, i.source])).toEqual([['docker.io/library/busybox:musl', `oci:${layout}:busybox-musl`]]);
    const imported = await airlock(['bundle', 'import', out, '--to', `${reg.host}/gap`, '--trust', trust, '--plain-http', '-q']);
    expect(imported.stderr).toBe('');
    expect(imported.code).toBe(0);
    const { digest } = await skopeoInspectRaw(`docker://${reg.host}/gap/docker.io/library/busybox:musl`, { tlsVerify: false });
    expect(digest).toBe(info.images[0]!.digest);
  });
});

describe('names that collide after mapping, and the policy', () => {
  it('refuses at create a host-less localhost_6200/app beside localhost:6200/app, before any request', async () => {
    // Nothing listens on 6200: the check comes before anything is fetched.
    const r = await airlock([
      'bundle',
      'create',
      `oci:${layout}:localhost_6200/app:1`,
      'localhost:6200/app:2',
      '-o',
      `${tmp.path}/clash.tar.zst`,
      '--sign-key',
      signer,
      '--plain-http',
      '-q',
    ]);
    expect(r.code).toBe(EXIT_CODES.INPUT_INVALID);
    expect(r.stderr).toContain('images localhost_6200/app:1 and localhost:6200/app:2 would both land in repository localhost_6200/app at import');
  });

  it('applies a policy denying localhost:6200 to a host-less localhost_6200/app, and writes nothing', async () => {
    const out = `${tmp.path}/spoof.tar.zst`;
    const created = await airlock(['bundle', 'create', `oci:${layout}:localhost_6200/app:1`, '-o', out, '--sign-key', signer, '-q']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const policy = `${tmp.path}/policy.yaml`;
    await writeFile(policy, ['version: 1', 'registries:', '  deny: ["localhost:6200"]', ''].join('\n'));
    const refused = await airlock(['bundle', 'import', out, '--to', `${reg.host}/spoof`, '--trust', trust, '--policy', policy, '--plain-http', '-q']);
    expect(refused.code).toBe(EXIT_CODES.POLICY);
    expect(refused.stderr).toContain(
      'refuses image localhost_6200/app:1: registry localhost:6200 is denied by pattern "localhost:6200" (it lands where localhost:6200/app lands)',
    );
    const catalog = (await (await fetch(`${reg.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories.filter((r) => r.startsWith('spoof/'))).toEqual([]);
    // Without that policy it imports, where localhost:6200/app would have landed.
    const imported = await airlock(['bundle', 'import', out, '--to', `${reg.host}/spoof`, '--trust', trust, '--plain-http', '-q']);
    expect(imported.code).toBe(0);
    expect((await skopeoInspectRaw(`docker://${reg.host}/spoof/localhost_6200/app:1`, { tlsVerify: false })).digest).toBeDefined();
  });
});
