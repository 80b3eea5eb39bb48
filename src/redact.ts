/**
 * Keeping secrets and terminal control out of what airlock prints.
 *
 * Text that comes from a registry, a proxy or a bundle is untrusted: a registry (or a proxy in front
 * of it) may echo the `Authorization` header of the request in its error body, and a hostile one may
 * put ANSI escape sequences or bidi overrides into an error message or a tag name to rewrite what the
 * operator sees. Two functions deal with that:
 *
 * - {@link redactSecrets} replaces every secret airlock knows of in this process with `***`: the
 *   passwords and identity tokens of loaded credentials and the Bearer tokens obtained, each also in
 *   the forms a server may echo them in (base64 of `user:password` as in a Basic header, base64 of
 *   the secret at any alignment inside a longer base64 text, base64url, percent-encoding). Secrets are
 *   registered where they enter the process ({@link registerCredentials} when credentials are
 *   resolved, {@link registerSecret} when a token arrives), so the registry below is the one list.
 * - {@link stripControls} removes escape sequences and every other C0/C1 control character, and the
 *   Unicode bidi controls that reorder what a terminal shows.
 *
 * {@link cleanText} does both, controls first, so a secret split by an injected escape sequence is
 * still found. Where registry errors are built (`registry/errors.ts`) and where the CLI prints
 * (`cli/render-error.ts`, `cli/output.ts`) are the places that call these.
 */

/** What replaces a secret. */
export const REDACTED = '***';

/**
 * Secrets shorter than this are not registered: replacing every `a` or `pw` in every message would
 * make messages unreadable, and a password that short is no secret anyway.
 */
export const MIN_SECRET_CHARS = 4;

/**
 * A base64 fragment of a secret (its encoding at some alignment inside a longer base64 text) is
 * registered only from this length on: shorter ones would match ordinary words.
 */
const MIN_FRAGMENT_CHARS = 6;

/**
 * Bound on the forms kept. A long run renews tokens for every repository it touches; the oldest
 * forms (of tokens long expired) are forgotten first.
 */
const MAX_FORMS = 20_000;

/** Known secret forms, oldest first. */
const forms = new Set<string>();
/** The forms, longest first (so a secret is replaced before a shorter one inside it); rebuilt lazily. */
let ordered: string[] | undefined;

function remember(form: string, min = MIN_SECRET_CHARS): void {
  if (form.length < min || forms.has(form)) return;
  forms.add(form);
  if (forms.size > MAX_FORMS) forms.delete(forms.values().next().value as string);
  ordered = undefined;
}

/**
 * The base64 characters that depend only on `bytes`, when `bytes` starts at offset 0, 1 or 2 of a
 * 3-byte group inside a longer base64 text (the characters at both ends also carry bits of the
 * neighbours and are left out).
 */
function base64Fragments(bytes: Buffer): string[] {
  const out: string[] = [];
  for (const lead of [0, 1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(lead), bytes]).toString('base64');
    const first = Math.ceil((lead * 8) / 6);
    const end = Math.floor(((lead + bytes.length) * 8) / 6);
    out.push(encoded.slice(first, end));
  }
  return out;
}

/**
 * Register a secret (a password, a token) so that {@link redactSecrets} replaces it and its encoded
 * forms from now on. Secrets shorter than {@link MIN_SECRET_CHARS} are ignored.
 */
export function registerSecret(secret: string | undefined): void {
  if (secret === undefined || secret.length < MIN_SECRET_CHARS) return;
  const bytes = Buffer.from(secret, 'utf8');
  remember(secret);
  remember(stripControls(secret));
  remember(bytes.toString('base64'));
  remember(bytes.toString('base64url'));
  remember(encodeURIComponent(secret));
  remember(JSON.stringify(secret).slice(1, -1));
  for (const fragment of base64Fragments(bytes)) {
    remember(fragment, MIN_FRAGMENT_CHARS);
    remember(fragment.replace(/\+/g, '-').replace(/\//g, '_'), MIN_FRAGMENT_CHARS);
  }
  // A JWT's signature is what makes it usable: a server that echoes only that part still leaks it.
  const signature = /^[\w-]+\.[\w-]+\.([\w-]{16,})$/.exec(secret)?.[1];
  if (signature !== undefined) remember(signature);
}

/**
 * Register credentials as they are loaded: the password, `base64(user:password)` (the payload of a
 * Basic header, and of an `auth` entry in a docker config), and an identity token. The user name is
 * not a secret.
 */
export function registerCredentials(creds: { username?: string; password?: string; identityToken?: string }): void {
  registerSecret(creds.password);
  registerSecret(creds.identityToken);
  if (creds.username !== undefined && creds.password !== undefined && creds.password !== '') {
    const basic = Buffer.from(`${creds.username}:${creds.password}`, 'utf8');
    remember(basic.toString('base64'));
    remember(basic.toString('base64url'));
  }
}

/** Forget every registered secret (tests only: a process keeps its secrets until it exits). */
export function forgetSecretsForTests(): void {
  forms.clear();
  ordered = undefined;
}

/** `text` with every registered secret form replaced by {@link REDACTED}. */
export function redactSecrets(text: string): string {
  if (forms.size === 0 || text.length < MIN_SECRET_CHARS) return text;
  ordered ??= [...forms].sort((a, b) => b.length - a.length);
  let out = text;
  for (const form of ordered) {
    if (out.includes(form)) out = out.split(form).join(REDACTED);
  }
  return out;
}

/**
 * ANSI/ECMA-48 escape sequences, 7-bit (ESC …) and 8-bit (C1) forms: CSI (`ESC [ … final`), the
 * string commands OSC, DCS, SOS, PM and APC up to their terminator (BEL or ST), and two- or
 * three-character escapes (`ESC ( B`, `ESC c`).
 */
const ESCAPE_SEQUENCE =
  /(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[\x20-\x2f]*[\x30-\x7e]?/g;

/** C0 and C1 controls and DEL, except tab and line breaks (handled below). */
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]/g;

/** Unicode controls that reorder or hide text on a terminal: bidi embeddings, overrides, isolates, marks. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Tab, CR, LF and the Unicode line and paragraph separators. */
const LINE_BREAK = /[\t\r\n\u2028\u2029]/g;

/**
 * `text` without terminal control: escape sequences, C0/C1 control characters and bidi controls are
 * removed; tabs and line breaks become spaces (or, with `keepNewlines`, `\n` is kept for multi-line
 * text such as a stack trace).
 *
 * @example
 * stripControls('\x1b[31mred\x1b[0m\rtag') // → 'red tag'
 */
export function stripControls(text: string, opts: { keepNewlines?: boolean } = {}): string {
  const out = text.replace(ESCAPE_SEQUENCE, '').replace(CONTROL, '').replace(BIDI, '');
  return opts.keepNewlines === true ? out.replace(/\r\n?/g, '\n').replace(/[\t\u2028\u2029]/g, ' ') : out.replace(LINE_BREAK, ' ');
}

/** {@link stripControls}, then {@link redactSecrets}: for any untrusted text on its way to a message. */
export function cleanText(text: string, opts: { keepNewlines?: boolean } = {}): string {
  return redactSecrets(stripControls(text, opts));
}

/**
 * A copy of a JSON-like value with {@link cleanText} applied to every string (keys included), for
 * untrusted structures carried in error details. Depth is bounded: a value nested deeper than
 * `depth` levels is replaced by `"…"`.
 */
export function cleanValue(value: unknown, depth = 32): unknown {
  if (typeof value === 'string') return cleanText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth <= 0) return '…';
  if (Array.isArray(value)) return value.map((v) => cleanValue(v, depth - 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[cleanText(k)] = cleanValue(v, depth - 1);
  return out;
}
