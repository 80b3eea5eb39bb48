/**
 * A reader for the part of TOML that registries.conf files use: comments, `[table]` and
 * `[[array-of-tables]]` headers, `key = value` with bare, quoted and dotted keys, basic and literal
 * strings (one-line and multi-line), booleans, arrays (across lines) and inline tables. Numbers,
 * dates and other bare values are kept as {@link TomlBare}, never as strings, so they can never be
 * mistaken for a host or a flag. No dependency may be added for it, and this is all the files need.
 *
 * Input is hostile until read: the caller caps its size; nesting is capped here (no deep recursion),
 * keys live in prototype-less objects (`__proto__` is just a key), and a duplicate key or a header
 * that reopens a value is an error, as in TOML.
 */
import { AirlockError } from '../errors.js';

/** A bare value (number, date, inf, nan) kept as written. */
export interface TomlBare {
  bare: string;
}
export type TomlValue = string | boolean | TomlBare | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

/** Arrays and inline tables nested deeper than this are refused. */
export const MAX_TOML_DEPTH = 32;

const BARE_KEY = /[A-Za-z0-9_-]/;
const BARE_VALUE = /[A-Za-z0-9_:.+-]/;
const ESCAPES: Record<string, string> = { b: '\b', t: '\t', n: '\n', f: '\f', r: '\r', '"': '"', '\\': '\\' };

/**
 * Parse `text`; `file` names it in errors.
 *
 * @throws AirlockError `INPUT_INVALID`: `FILE:LINE: problem`
 */
export function parseTomlSubset(text: string, file: string): TomlTable {
  return new Reader(text, file).document();
}

const table = (): TomlTable => Object.create(null) as TomlTable;
/** Tables are the prototype-less objects; a {@link TomlBare} is an ordinary one. */
const isTable = (v: TomlValue | undefined): v is TomlTable => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === null;

class Reader {
  #pos = 0;
  readonly #text: string;
  readonly #file: string;
  /** Tables made by a header or by `[[…]]`, which a second header may not reopen. */
  readonly #defined = new Set<TomlTable>();

  constructor(text: string, file: string) {
    this.#text = text.startsWith('\uFEFF') ? text.slice(1) : text;
    this.#file = file;
  }

  document(): TomlTable {
    const root = table();
    let current = root;
    for (;;) {
      this.#skipBlank(true);
      if (this.#pos >= this.#text.length) return root;
      if (this.#text.startsWith('[[', this.#pos)) {
        this.#pos += 2;
        const path = this.#keyPath();
        this.#expect(']]');
        current = this.#arrayTable(root, path);
      } else if (this.#peek() === '[') {
        this.#pos += 1;
        const path = this.#keyPath();
        this.#expect(']');
        current = this.#headerTable(root, path);
      } else {
        this.#keyValue(current);
      }
      this.#endOfLine();
    }
  }

  #keyValue(into: TomlTable): void {
    const path = this.#keyPath();
    this.#skipSpaces();
    this.#expect('=');
    this.#skipSpaces();
    const value = this.#value(0);
    const last = path[path.length - 1] as string;
    const parent = this.#descend(into, path.slice(0, -1), false);
    if (Object.hasOwn(parent, last)) throw this.#fail(`key ${JSON.stringify(path.join('.'))} is defined twice`);
    parent[last] = value;
  }

  /** Walk (and make) the tables of a dotted path below `from`. */
  #descend(from: TomlTable, path: readonly string[], viaArrays: boolean): TomlTable {
    let at = from;
    for (const key of path) {
      let next = at[key];
      if (next === undefined) {
        next = table();
        at[key] = next;
      } else if (viaArrays && Array.isArray(next)) {
        next = next[next.length - 1];
      }
      if (!isTable(next)) throw this.#fail(`key ${JSON.stringify(path.join('.'))} is not a table`);
      at = next;
    }
    return at;
  }

  #headerTable(root: TomlTable, path: string[]): TomlTable {
    const t = this.#descend(root, path, true);
    if (this.#defined.has(t)) throw this.#fail(`table [${path.join('.')}] is defined twice`);
    this.#defined.add(t);
    return t;
  }

  #arrayTable(root: TomlTable, path: string[]): TomlTable {
    const parent = this.#descend(root, path.slice(0, -1), true);
    const last = path[path.length - 1] as string;
    const existing = parent[last];
    const t = table();
    this.#defined.add(t);
    if (existing === undefined) parent[last] = [t];
    else if (Array.isArray(existing)) existing.push(t);
    else throw this.#fail(`[[${path.join('.')}]] names a key that is not an array of tables`);
    return t;
  }

  #keyPath(): string[] {
    const path: string[] = [];
    for (;;) {
      this.#skipSpaces();
      const c = this.#peek();
      if (c === '"') path.push(this.#basicString());
      else if (c === "'") path.push(this.#literalString());
      else {
        const start = this.#pos;
        while (this.#pos < this.#text.length && BARE_KEY.test(this.#text[this.#pos] as string)) this.#pos++;
        if (this.#pos === start) throw this.#fail('expected a key');
        path.push(this.#text.slice(start, this.#pos));
      }
      this.#skipSpaces();
      if (this.#peek() !== '.') return path;
      this.#pos++;
    }
  }

  #value(depth: number): TomlValue {
    if (depth > MAX_TOML_DEPTH) throw this.#fail(`values nested deeper than ${MAX_TOML_DEPTH}`);
    const c = this.#peek();
    if (c === '"') return this.#text.startsWith('"""', this.#pos) ? this.#multiLine('"""') : this.#basicString();
    if (c === "'") return this.#text.startsWith("'''", this.#pos) ? this.#multiLine("'''") : this.#literalString();
    if (c === '[') return this.#array(depth);
    if (c === '{') return this.#inlineTable(depth);
    const start = this.#pos;
    while (this.#pos < this.#text.length && BARE_VALUE.test(this.#text[this.#pos] as string)) this.#pos++;
    // A date and a time may be parted by one space: `1979-05-27 07:32:00`.
    if (/^\d{4}-\d{2}-\d{2}$/.test(this.#text.slice(start, this.#pos)) && /^ \d{2}:/.test(this.#text.slice(this.#pos, this.#pos + 4))) {
      this.#pos++;
      while (this.#pos < this.#text.length && BARE_VALUE.test(this.#text[this.#pos] as string)) this.#pos++;
    }
    const word = this.#text.slice(start, this.#pos);
    if (word === '') throw this.#fail('expected a value');
    if (word === 'true') return true;
    if (word === 'false') return false;
    return { bare: word };
  }

  #array(depth: number): TomlValue[] {
    this.#pos++; // [
    const items: TomlValue[] = [];
    for (;;) {
      this.#skipBlank(true);
      if (this.#peek() === ']') break;
      items.push(this.#value(depth + 1));
      this.#skipBlank(true);
      if (this.#peek() === ',') {
        this.#pos++;
        continue;
      }
      if (this.#peek() !== ']') throw this.#fail('expected "," or "]" in an array');
      break;
    }
    this.#pos++; // ]
    return items;
  }

  #inlineTable(depth: number): TomlTable {
    this.#pos++; // {
    const t = table();
    this.#skipSpaces();
    if (this.#peek() === '}') {
      this.#pos++;
      return t;
    }
    for (;;) {
      const path = this.#keyPath();
      this.#skipSpaces();
      this.#expect('=');
      this.#skipSpaces();
      const value = this.#value(depth + 1);
      const parent = this.#descend(t, path.slice(0, -1), false);
      const last = path[path.length - 1] as string;
      if (Object.hasOwn(parent, last)) throw this.#fail(`key ${JSON.stringify(path.join('.'))} is defined twice`);
      parent[last] = value;
      this.#skipSpaces();
      const c = this.#peek();
      this.#pos++;
      if (c === '}') return t;
      if (c !== ',') throw this.#fail('expected "," or "}" in an inline table');
    }
  }

  #basicString(): string {
    this.#pos++; // "
    let out = '';
    for (;;) {
      const c = this.#text[this.#pos];
      if (c === undefined || c === '\n') throw this.#fail('unterminated string');
      this.#pos++;
      if (c === '"') return out;
      out += c === '\\' ? this.#escape() : c;
    }
  }

  #escape(): string {
    const c = this.#text[this.#pos++];
    if (c !== undefined && c in ESCAPES) return ESCAPES[c] as string;
    const width = c === 'u' ? 4 : c === 'U' ? 8 : 0;
    const hex = this.#text.slice(this.#pos, this.#pos + width);
    const code = width > 0 && /^[0-9A-Fa-f]+$/.test(hex) && hex.length === width ? Number.parseInt(hex, 16) : NaN;
    if (!(code <= 0x10ffff) || (code >= 0xd800 && code <= 0xdfff)) throw this.#fail(`invalid escape \\${c ?? ''} in a string`);
    this.#pos += width;
    return String.fromCodePoint(code);
  }

  #literalString(): string {
    this.#pos++; // '
    const end = this.#text.indexOf("'", this.#pos);
    const newline = this.#text.indexOf('\n', this.#pos);
    if (end === -1 || (newline !== -1 && newline < end)) throw this.#fail('unterminated string');
    const s = this.#text.slice(this.#pos, end);
    this.#pos = end + 1;
    return s;
  }

  #multiLine(quote: '"""' | "'''"): string {
    this.#pos += 3;
    if (this.#text.startsWith('\r\n', this.#pos)) this.#pos += 2;
    else if (this.#peek() === '\n') this.#pos++;
    const end = this.#text.indexOf(quote, this.#pos);
    if (end === -1) throw this.#fail('unterminated multi-line string');
    const raw = this.#text.slice(this.#pos, end);
    this.#pos = end + 3;
    if (quote === "'''") return raw;
    // Escapes, and a backslash at a line end swallowing the line break and the blanks after it.
    return raw.replace(/\\(?:[ \t]*\r?\n[\s]*|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)/g, (m) => {
      if (/^\\[ \t]*\r?\n/.test(m)) return '';
      const c = m[1] as string;
      if (c in ESCAPES) return ESCAPES[c] as string;
      const code = c === 'u' || c === 'U' ? Number.parseInt(m.slice(2), 16) : NaN;
      if (code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff)) return String.fromCodePoint(code);
      throw this.#fail(`invalid escape ${m} in a string`);
    });
  }

  #peek(): string | undefined {
    return this.#text[this.#pos];
  }

  #skipSpaces(): void {
    while (this.#peek() === ' ' || this.#peek() === '\t') this.#pos++;
  }

  /** Spaces, comments and (with `lines`) line breaks. */
  #skipBlank(lines: boolean): void {
    for (;;) {
      this.#skipSpaces();
      const c = this.#peek();
      if (c === '#') {
        const nl = this.#text.indexOf('\n', this.#pos);
        this.#pos = nl === -1 ? this.#text.length : nl;
      } else if (lines && (c === '\n' || (c === '\r' && this.#text[this.#pos + 1] === '\n'))) {
        this.#pos += c === '\r' ? 2 : 1;
      } else {
        return;
      }
    }
  }

  #endOfLine(): void {
    this.#skipBlank(false);
    const c = this.#peek();
    if (c === undefined || c === '\n' || (c === '\r' && this.#text[this.#pos + 1] === '\n')) return;
    throw this.#fail(`unexpected ${JSON.stringify(c)} after a value`);
  }

  #expect(token: string): void {
    if (!this.#text.startsWith(token, this.#pos)) throw this.#fail(`expected "${token}"`);
    this.#pos += token.length;
  }

  #fail(problem: string): AirlockError {
    const line = this.#text.slice(0, this.#pos).split('\n').length;
    return new AirlockError('INPUT_INVALID', `${this.#file}:${line}: ${problem}`, {
      subject: this.#file,
      hint: 'fix the file (see containers-registries.conf(5)), or point CONTAINERS_REGISTRIES_CONF at another registries.conf',
    });
  }
}
