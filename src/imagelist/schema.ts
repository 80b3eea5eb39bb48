/**
 * The image list JSON Schema (`schemas/images.schema.json`, shipped with the package) and the
 * translation of its validation errors into one line an operator can act on.
 */
import type { ErrorObject } from 'ajv/dist/2020.js';
import { PLATFORM_HINT, platformProblem, type DataPath } from './image-list.js';

/**
 * The validator, compiled at build time (scripts/compile-schemas.mjs) with allErrors off (stop at
 * the first problem, which is the one reported) and verbose (errors carry the offending data and
 * schema, used to word the message).
 */
export { default as validateImageList } from '../generated/images-validate.js';

/** The schema's `$id`, for editors and `$schema` references in list files. */
export const IMAGE_LIST_SCHEMA_ID = 'https://airlock.dev/schemas/images.schema.json';

/** Where a schema error is and what to say about it. */
export interface SchemaProblem {
  path: DataPath;
  problem: string;
  hint?: string;
}

const LIST_HINT = 'an image list is "version: 1" and an "images" list; see samples/images.yaml';

/** Word one ajv error for an operator. */
export function describeSchemaError(error: ErrorObject): SchemaProblem {
  const path = parseInstancePath(error.instancePath);
  const data: unknown = error.data;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { path, problem: `missing "${String(params['missingProperty'])}"`, hint: LIST_HINT };
    case 'additionalProperties': {
      const field = String(params['additionalProperty']);
      const allowed = Object.keys((error.parentSchema?.['properties'] as object | undefined) ?? {});
      return {
        path: [...path, field],
        problem: `unknown field "${field}"`,
        hint: `allowed here: ${allowed.join(', ')}`,
      };
    }
    case 'const':
      return {
        path,
        problem: `unsupported version ${JSON.stringify(data)}`,
        hint: 'this airlock reads image lists with "version: 1"',
      };
    case 'type':
      return describeType(error, path, data);
    case 'minItems':
    case 'minLength':
      return { path, problem: 'must not be empty' };
    case 'uniqueItems':
      return {
        path: [...path, Number(params['i'])],
        problem: `${JSON.stringify((data as unknown[])[Number(params['i'])])} is listed twice`,
      };
    case 'pattern':
      // ajv inlines $refs, so schemaPath does not say which definition failed; the data path does.
      if (path.at(-2) === 'platforms') return { path, problem: platformProblem(String(data)), hint: PLATFORM_HINT };
      return { path, problem: `${JSON.stringify(data)} ${error.message ?? 'is not valid'}` };
    default:
      return { path, problem: error.message ?? `fails schema rule "${error.keyword}"`, hint: LIST_HINT };
  }
}

function describeType(error: ErrorObject, path: DataPath, data: unknown): SchemaProblem {
  if (path.length === 0 && (data === null || data === undefined)) {
    return { path, problem: 'the file is empty', hint: LIST_HINT };
  }
  if (path.length === 2 && path[0] === 'images') {
    return { path, problem: `must be a reference or an object with "ref", not ${describeValue(data)}` };
  }
  const wanted = String((error.params as { type?: unknown }).type);
  const name = wanted === 'object' ? 'mapping (YAML) or object (JSON)' : wanted;
  const article = /^[aeiou]/.test(name) ? 'an' : 'a';
  return { path, problem: `must be ${article} ${name}, not ${describeValue(data)}`, hint: LIST_HINT };
}

function describeValue(data: unknown): string {
  if (data === null || data === undefined) return 'empty';
  if (Array.isArray(data)) return 'a list';
  if (typeof data === 'object') return 'a mapping';
  return `${typeof data} ${JSON.stringify(data)}`;
}

/** `/images/2/tags` → `['images', 2, 'tags']` (JSON Pointer, RFC 6901). */
function parseInstancePath(pointer: string): DataPath {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((part) => (/^(?:0|[1-9][0-9]*)$/.test(part) ? Number(part) : part));
}
