/**
 * TOML, as the operator's registries.conf files are written, read with smol-toml: a complete,
 * dependency-free TOML 1.0 parser. Its tables have no prototype (`__proto__` is just a key), its
 * nesting is capped here, and a document it cannot read becomes an error naming the file and line.
 * The caller caps the size (the text comes through fs/small-file.ts).
 */
import { parse, TomlError } from 'smol-toml';
import { AirlockError } from '../errors.js';

/** A parsed table: keys to TOML values (strings, booleans, numbers, dates, arrays, tables). */
export type TomlTable = Record<string, unknown>;

/** Arrays and tables nested deeper than this are refused: no real registries.conf comes close. */
export const MAX_TOML_DEPTH = 32;

/**
 * Parse `text`; `file` names it in errors.
 *
 * @throws AirlockError `INPUT_INVALID`: `FILE:LINE: problem`
 */
export function parseToml(text: string, file: string): TomlTable {
  try {
    return parse(text, { maxDepth: MAX_TOML_DEPTH }) as TomlTable;
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // smol-toml's message is "Invalid TOML document: WHY" followed by the line and a caret.
    const why = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    throw new AirlockError('INPUT_INVALID', `${file}:${err.line}: not valid TOML: ${why}`, {
      subject: file,
      hint: 'fix the file (see containers-registries.conf(5)), or point CONTAINERS_REGISTRIES_CONF at another',
      details: { file, line: err.line, column: err.column },
    });
  }
}
