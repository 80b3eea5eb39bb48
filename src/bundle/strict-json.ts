/**
 * Strict parsing for signed JSON (bundle.json, bundle.json.sig, inventories, the archive index).
 *
 * `JSON.parse` is lenient where a signature must not be: a duplicate key silently keeps the last
 * value (so two readers of the same signed bytes can see different documents), invalid UTF-8 turns
 * into U+FFFD, and a lone surrogate (`"\ud800"`) is kept as it is. Here the bytes must be UTF-8
 * without a byte order mark, one JSON value with nothing after it but whitespace, no key twice in
 * one object, no lone surrogate escape, and nesting at most {@link MAX_JSON_DEPTH} deep.
 *
 * `JSON.parse` does the parsing (and refuses trailing data); a second, linear pass over the text
 * it accepted looks for what it lets through. That pass may assume valid JSON, which keeps it small.
 */

/** Deepest nesting accepted: 64. Airlock's documents nest 5 deep at most. */
export const MAX_JSON_DEPTH = 64;

/** Why bytes are not strict JSON; the message names the problem (`duplicate key "images"`). */
export class StrictJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parse `bytes` as strict JSON (see the module comment).
 *
 * @throws StrictJsonError naming the first problem
 */
export function parseStrictJson(bytes: Buffer | string): unknown {
  let text: string;
  if (typeof bytes === 'string') {
    text = bytes;
  } else {
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) throw new StrictJsonError('starts with a byte order mark');
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new StrictJsonError('not valid UTF-8');
    }
  }
  if (text.charCodeAt(0) === 0xfeff) throw new StrictJsonError('starts with a byte order mark');
  checkDepth(text);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const why = (err as Error).message;
    throw new StrictJsonError(why.includes('after JSON') ? 'data after the JSON value' : `not JSON (${why})`);
  }
  checkStructure(text);
  return value;
}

/**
 * Depth, before `JSON.parse` builds anything: a 32 MiB `[[[[…` (a receipt, parsed before its
 * signature can be checked) made it build 16 million nested arrays, ~19 s and 1.8 GB, only to be
 * refused after. Text that is not JSON at all is JSON.parse's to name: this pass only counts
 * brackets outside strings.
 */
function checkDepth(text: string): void {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > MAX_JSON_DEPTH) throw new StrictJsonError(`nested deeper than ${MAX_JSON_DEPTH} levels`);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x22 /* " */) {
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
    }
  }
}

/** The pass over text JSON.parse accepted: duplicate keys, lone surrogates, depth. */
function checkStructure(text: string): void {
  /** One entry per open container: the keys seen so far for an object, null for an array. */
  const stack: Array<Set<string> | null> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= MAX_JSON_DEPTH) throw new StrictJsonError(`nested deeper than ${MAX_JSON_DEPTH} levels`);
      stack.push(c === 0x7b ? new Set() : null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      const keys = stack[stack.length - 1];
      if (keys !== undefined && keys !== null && nextToken(text, end + 1) === 0x3a /* : */) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (keys.has(key)) throw new StrictJsonError(`duplicate key ${JSON.stringify(key)}`);
        keys.add(key);
      }
      i = end;
    }
  }
}

/** Index of the closing quote of the string opening at `start`; checks its escapes for lone surrogates. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return i;
    if (c !== 0x5c /* \ */) {
      i++;
      continue;
    }
    if (text.charCodeAt(i + 1) !== 0x75 /* u */) {
      i += 2;
      continue;
    }
    const unit = parseInt(text.slice(i + 2, i + 6), 16);
    i += 6;
    if (unit >= 0xdc00 && unit <= 0xdfff) throw new StrictJsonError('a lone surrogate escape in a string');
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const low = text.charCodeAt(i) === 0x5c && text.charCodeAt(i + 1) === 0x75 ? parseInt(text.slice(i + 2, i + 6), 16) : -1;
      if (!(low >= 0xdc00 && low <= 0xdfff)) throw new StrictJsonError('a lone surrogate escape in a string');
      i += 6;
    }
  }
}

/** Char code of the first non-whitespace character at or after `i` (NaN at the end). */
function nextToken(text: string, i: number): number {
  let j = i;
  while (j < text.length) {
    const c = text.charCodeAt(j);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c;
    j++;
  }
  return NaN;
}

/** The value at a JSON Pointer (RFC 6901) in `doc`, or undefined. */
export function valueAt(doc: unknown, pointer: string): unknown {
  let node = doc;
  for (const raw of pointer === '' ? [] : pointer.slice(1).split('/')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[raw.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return node;
}
