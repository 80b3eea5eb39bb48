/**
 * Parsing of `WWW-Authenticate` headers (RFC 7235 §4.1) as registries send them.
 *
 * A header may hold several challenges (`Bearer realm="…",service="…", Basic realm="…"`), and a
 * response may carry several headers. Parameter values are tokens or quoted strings with backslash
 * escapes; a quoted `scope` may contain commas (`repository:a:pull,push`). A malformed tail is
 * dropped: the challenges parsed before it are still returned, so one odd proxy header does not
 * hide the registry's own challenge.
 */

/** One authentication challenge. `scheme` is lower-cased; parameter names are lower-cased. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
  /** The token68 form (`Negotiate abc==`), rare for registries but legal. */
  token68?: string;
}

/** RFC 7230 `tchar`. */
const TOKEN_CHAR = /[!#$%&'*+.^_`|~0-9A-Za-z-]/;
/** RFC 7235 `token68` characters (without the trailing `=` padding). */
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): string {
    return this.text[this.pos] ?? '';
  }

  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }

  skipSeparators(): void {
    while (this.peek() === ' ' || this.peek() === '\t' || this.peek() === ',') this.pos++;
  }

  readWhile(re: RegExp): string {
    const start = this.pos;
    while (!this.done && re.test(this.peek())) this.pos++;
    return this.text.slice(start, this.pos);
  }

  /** A quoted string starting at the current `"`; undefined when it is not terminated. */
  readQuoted(): string | undefined {
    this.pos++; // opening quote
    let out = '';
    while (!this.done) {
      const c = this.text[this.pos++] as string;
      if (c === '"') return out;
      if (c === '\\') {
        if (this.done) return undefined;
        out += this.text[this.pos++];
      } else {
        out += c;
      }
    }
    return undefined;
  }
}

/**
 * Try to read `name = value` at the scanner position. Returns undefined (position restored) when
 * what follows is not a parameter, e.g. the scheme of the next challenge.
 */
function readParam(s: Scanner): [string, string] | undefined {
  const start = s.pos;
  const name = s.readWhile(TOKEN_CHAR);
  s.skipSpaces();
  if (name === '' || s.peek() !== '=') {
    s.pos = start;
    return undefined;
  }
  s.pos++; // '='
  s.skipSpaces();
  if (s.peek() === '"') {
    const value = s.readQuoted();
    if (value === undefined) throw new SyntaxError('unterminated quoted string');
    return [name.toLowerCase(), value];
  }
  const value = s.readWhile(TOKEN_CHAR);
  if (value === '') {
    s.pos = start;
    return undefined;
  }
  return [name.toLowerCase(), value];
}

/** A token68 credential right after the scheme, if that is what follows. */
function readToken68(s: Scanner): string | undefined {
  const start = s.pos;
  let value = s.readWhile(TOKEN68_CHAR);
  if (value === '') return undefined;
  value += s.readWhile(/=/);
  s.skipSpaces();
  if (s.done || s.peek() === ',') return value;
  s.pos = start;
  return undefined;
}

/** Read one challenge into `out`; it is added before its parameters so a malformed one keeps those read. */
function readChallenge(s: Scanner, out: Challenge[]): void {
  const scheme = s.readWhile(TOKEN_CHAR);
  if (scheme === '') throw new SyntaxError(`unexpected character ${JSON.stringify(s.peek())}`);
  const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
  out.push(challenge);
  s.skipSpaces();
  const afterScheme = s.pos;
  const param = readParam(s);
  if (param === undefined) {
    const token68 = readToken68(s);
    if (token68 !== undefined) challenge.token68 = token68;
    else s.pos = afterScheme;
    return;
  }
  challenge.params[param[0]] = param[1];
  for (;;) {
    s.skipSpaces();
    if (s.peek() !== ',') break;
    const beforeComma = s.pos;
    s.skipSeparators();
    const next = readParam(s);
    if (next === undefined) {
      s.pos = beforeComma; // the next challenge starts here
      break;
    }
    challenge.params[next[0]] = next[1];
  }
}

/**
 * Parse one or more `WWW-Authenticate` header values into challenges, in order.
 *
 * @example
 * parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')
 * // → [{ scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' } }]
 */
export function parseWwwAuthenticate(header: string | readonly string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = typeof header === 'string' ? [header] : header;
  const out: Challenge[] = [];
  for (const value of values) {
    const s = new Scanner(value);
    try {
      for (;;) {
        s.skipSeparators();
        if (s.done) break;
        readChallenge(s, out);
      }
    } catch {
      // Malformed tail: keep what was parsed before it (see the module comment).
    }
  }
  return out;
}

/** The challenge airlock will answer: Bearer is preferred over Basic; others are ignored. */
export function pickChallenge(challenges: readonly Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}
