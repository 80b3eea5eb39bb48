import { failure } from '../support/failure.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair, loadPublicKey } from '../../src/bundle/keys.js';
import { isAirlockError } from '../../src/errors.js';
import { loadPolicy } from '../../src/policy/load.js';
import { globToRegExp } from '../../src/policy/pattern.js';
import { checkImagesAllowed, effectiveTrust, policyRefusals, type PolicySubject } from '../../src/policy/policy.js';
import { makeTempDir, type TempDir } from '../support/tmp.js';

let dir: TempDir;
beforeEach(async () => {
  dir = await makeTempDir('policy');
});
afterEach(async () => {
  await dir.remove();
});

async function policyFile(text: string, name = 'policy.yaml'): Promise<string> {
  const path = join(dir.path, name);
  await writeFile(path, text);
  return path;
}

const image = (name: string, registry: string | undefined, repository: string): PolicySubject => ({ name, registry, repository });
const ETCD = image('quay.io/coreos/etcd:v3.3', 'quay.io', 'quay.io/coreos/etcd');
const BUSYBOX = image('docker.io/library/busybox:musl', 'docker.io', 'docker.io/library/busybox');
const LOCAL = image('team/app:1.0', undefined, 'team/app');

describe('globs', () => {
  it.each([
    ['quay.io/coreos/*', 'quay.io/coreos/etcd', true],
    ['quay.io/coreos/*', 'quay.io/coreos/etcd/tools', false],
    ['quay.io/**', 'quay.io/coreos/etcd/tools', true],
    ['quay.io', 'quay.io.attacker.example', false],
    ['*.corp.example', 'registry.corp.example', true],
    ['*.corp.example', 'a.b.corp.example', true],
    ['registry-?.lan', 'registry-1.lan', true],
    ['quay.io', 'quayxio', false],
    ['[::1]:5000', '[::1]:5000', true],
  ])('%s matches %s: %s', (glob, name, want) => {
    expect(globToRegExp(glob).test(name)).toBe(want);
  });
});

describe('loadPolicy', () => {
  it('loads the sample policy (key files relative to it)', async () => {
    await mkdir(join(dir.path, 'keys'));
    const key = await generateKeyPair(join(dir.path, 'keys', 'release'));
    const { readFile } = await import('node:fs/promises');
    const path = await policyFile(await readFile('samples/policy.yaml', 'utf8'));
    const policy = await loadPolicy(path);
    expect(policy.signers?.keys.map((k) => k.keyId)).toEqual([key.keyId]);
    expect(policyRefusals(policy, ETCD)).toEqual([]);
    expect(policyRefusals(policy, BUSYBOX)).toEqual([]);
    expect(policyRefusals(policy, image('ghcr.io/x/y:1', 'ghcr.io', 'ghcr.io/x/y'))).toEqual([
      'registry ghcr.io matches no allowed pattern',
      'repository ghcr.io/x/y matches no allowed pattern',
    ]);
    expect(policyRefusals(policy, image('quay.io/coreos/etcd-debug:1', 'quay.io', 'quay.io/coreos/etcd-debug'))).toEqual([
      'repository quay.io/coreos/etcd-debug is denied by pattern "regex .*-debug"',
    ]);
  });

  it('reads JSON too; deny wins over allow; regexes match the whole name', async () => {
    const path = await policyFile(
      JSON.stringify({ version: 1, repositories: { allow: ['**'], deny: [{ regex: 'docker\\.io/library/.*' }, { regex: 'etcd' }] } }),
      'p.json',
    );
    const policy = await loadPolicy(path);
    expect(policyRefusals(policy, ETCD)).toEqual([]); // "etcd" alone does not match the whole name
    expect(policyRefusals(policy, BUSYBOX)).toHaveLength(1);
  });

  it('refuses a host-less image when registries are restricted', async () => {
    const policy = await loadPolicy(await policyFile('version: 1\nregistries:\n  allow: [quay.io]\n'));
    expect(policyRefusals(policy, LOCAL)).toEqual(['it has no upstream registry, and the policy allows only listed registries']);
    const open = await loadPolicy(await policyFile('version: 1\nregistries:\n  deny: [docker.io]\n', 'open.yaml'));
    expect(policyRefusals(open, LOCAL)).toEqual([]);
  });

  it('an empty allow list allows nothing', async () => {
    const policy = await loadPolicy(await policyFile('version: 1\nrepositories:\n  allow: []\n'));
    expect(policyRefusals(policy, ETCD)).toHaveLength(1);
  });

  it.each([
    ['version: 2\n', /version: must be equal to constant/],
    ['version: 1\nimages: []\n', /must NOT have additional properties "images"/],
    ['version: 1\nregistries:\n  allow: quay.io\n', /registries\.allow: must be array/],
    ['version: 1\nsigners:\n  keyIds: [abc]\n', /signers\.keyIds\.0: must match pattern/],
    ['version: 1\nrepositories:\n  deny: [{regex: "("}]\n', /repositories\.deny\[0\]: regex "\(" is not valid/],
    ['version: 1\nrepositories: [\n', /not valid YAML or JSON/],
    ['', /must be object/],
  ])('refuses %j', async (text, message) => {
    const err = await failure(loadPolicy(await policyFile(text)));
    expect(err.code).toBe('INPUT_INVALID');
    expect(err.message).toMatch(message);
  });

  it('names every schema problem of a policy in one run', async () => {
    const err = await failure(loadPolicy(await policyFile('version: 1\nregistries: 5\nsigners: [3]\nbogus: true\n')));
    expect(err.code).toBe('INPUT_INVALID');
    const problems = (err.details!['problems'] as Array<{ message: string }>).map((p) => p.message.replace(/^\S+: /, ''));
    expect(problems).toEqual(['must NOT have additional properties "bogus"', 'registries: must be object', 'signers: must be object']);
    expect(err.message).toMatch(/\(and 2 more\)$/);
  });

  it('refuses a missing file and a signer key that is not a public key', async () => {
    expect((await failure(loadPolicy(join(dir.path, 'nope.yaml')))).code).toBe('INPUT_INVALID');
    await generateKeyPair(join(dir.path, 'k'));
    const err = await failure(loadPolicy(await policyFile('version: 1\nsigners:\n  keys: [k.key]\n')));
    expect(err.message).toMatch(/k\.key is not an ed25519 public key/);
  });
});

describe('checkImagesAllowed', () => {
  it('names every refused image and writes the reason into details', async () => {
    const policy = await loadPolicy(await policyFile('version: 1\nregistries:\n  allow: [quay.io]\n'));
    checkImagesAllowed(policy, [ETCD]);
    let err: unknown;
    try {
      checkImagesAllowed(policy, [ETCD, BUSYBOX, LOCAL]);
    } catch (e) {
      err = e;
    }
    expect(isAirlockError(err, 'POLICY')).toBe(true);
    expect((err as Error).message).toMatch(/refuses image docker\.io\/library\/busybox:musl: registry docker\.io matches no allowed pattern \(and 1 more\)$/);
    expect((err as { details: { refused: unknown[] } }).details.refused).toHaveLength(2);
  });
});

describe('effectiveTrust', () => {
  it('without signers, the command line decides', async () => {
    const policy = await loadPolicy(await policyFile('version: 1\n'));
    const k = await loadPublicKey((await generateKeyPair(join(dir.path, 'a'))).publicKeyFile);
    expect(effectiveTrust(policy, [k], true)).toEqual({ trusted: [k], allowUnsigned: true });
    expect(effectiveTrust(undefined, [k], false)).toEqual({ trusted: [k], allowUnsigned: false });
  });

  it('with signers, only listed keys count and unsigned is never allowed', async () => {
    const a = await loadPublicKey((await generateKeyPair(join(dir.path, 'a'))).publicKeyFile);
    const b = await loadPublicKey((await generateKeyPair(join(dir.path, 'b'))).publicKeyFile);
    const c = await loadPublicKey((await generateKeyPair(join(dir.path, 'c'))).publicKeyFile);
    const policy = await loadPolicy(await policyFile(`version: 1\nsigners:\n  keys: [a.pub]\n  keyIds: ["${b.keyId}"]\n`));
    const trust = effectiveTrust(policy, [b, c], true);
    expect(trust.allowUnsigned).toBe(false);
    expect(trust.trusted.map((k) => k.keyId)).toEqual([a.keyId, b.keyId]);
  });
});
