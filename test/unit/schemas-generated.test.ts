/**
 * The validators compiled at build time (scripts/compile-schemas.mjs) must judge exactly as ajv
 * compiling the same schema at run time: same verdicts, same errors. The script rewrites ajv's
 * runtime-helper requires into imports, so the helpers (ucs2length: string lengths in code points;
 * equal: `const`/`enum` of objects) are exercised here on purpose.
 */
import { readFile } from 'node:fs/promises';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import validateBundle from '../../src/generated/bundle-validate.js';
import validateImages from '../../src/generated/images-validate.js';
import validatePolicy from '../../src/generated/policy-validate.js';

async function compiled(file: string, options: Record<string, unknown>): Promise<ValidateFunction> {
  const schema = JSON.parse(await readFile(new URL(`../../schemas/${file}`, import.meta.url), 'utf8')) as Record<string, unknown>;
  return new Ajv2020({ strict: true, ...options }).compile(schema);
}

function verdict(v: ValidateFunction, doc: unknown): { valid: boolean; errors: unknown } {
  const valid = v(doc);
  return { valid, errors: (v.errors ?? []).map((e) => ({ path: e.instancePath, keyword: e.keyword, params: e.params })) };
}

/** 256 code points, each outside the BMP (two UTF-16 units): valid only when counted as code points. */
const longButFits = '\u{1F600}'.repeat(256);

describe('build-time schema validators', () => {
  it('bundle.schema.json: the same verdicts as ajv at run time', async () => {
    const runtime = await compiled('bundle.schema.json', { allErrors: true });
    const base = {
      schemaVersion: 1,
      mediaType: 'application/vnd.airlock.bundle.v1+json',
      created: '2026-11-28T00:00:00Z',
      creator: 'airlock/0.1.0',
    };
    for (const doc of [{}, base, { ...base, creator: longButFits }, { ...base, creator: `${longButFits}x` }, { ...base, creator: '' }, 'not an object']) {
      expect(verdict(validateBundle, doc)).toEqual(verdict(runtime, doc));
    }
  });

  it('images.schema.json: the same verdicts on the sample list and on broken ones', async () => {
    const runtime = await compiled('images.schema.json', { allErrors: false, verbose: true });
    const sample = parseYaml(await readFile(new URL('../../samples/images.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
    expect(validateImages(sample)).toBe(true);
    for (const doc of [sample, {}, { version: 2, images: [] }, { version: 1, images: [{ ref: 42 }] }, { version: 1, images: 'busybox' }]) {
      expect(verdict(validateImages, doc)).toEqual(verdict(runtime, doc));
    }
  });

  it('policy.schema.json: the same verdicts on the sample policy and on broken ones', async () => {
    const runtime = await compiled('policy.schema.json', { allErrors: true });
    const sample = parseYaml(await readFile(new URL('../../samples/policy.yaml', import.meta.url), 'utf8')) as Record<string, unknown>;
    expect(validatePolicy(sample)).toBe(true);
    for (const doc of [sample, {}, { version: 1, registries: { allow: 'docker.io' } }, { version: 1, extra: true }]) {
      expect(verdict(validatePolicy, doc)).toEqual(verdict(runtime, doc));
    }
  });
});
