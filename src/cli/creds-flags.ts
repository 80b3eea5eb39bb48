/**
 * `--creds [HOST=]USER:PASSWORD` and `--password-stdin`: which registry each credential is for, and
 * the password read from a pipe.
 */
import { AirlockError } from '../errors.js';

export interface Creds {
  host?: string;
  username: string;
  password: string;
}

/** A registry host as written in references: `name[:port]` or `[ipv6][:port]`. */
export const HOST_RE = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d+)?$/i;

/**
 * Parse `[host=]user:password`. The text before the first `=` is a host when it looks like one
 * (`registry.lan`, `127.0.0.1:5000`); the password may contain `:` and `=`.
 */
export function parseCreds(text: string): Creds {
  return splitCreds(text, false) as Creds;
}

/**
 * {@link parseCreds}, and with `passwordless` (`--password-stdin`) also `[host=]user`, whose password
 * is then undefined. `HOST:PORT=USER` is only read so then: without it `user:1=x` is USER:PASSWORD.
 */
function splitCreds(text: string, passwordless: boolean): Omit<Creds, 'password'> & { password?: string } {
  const eq = text.indexOf('=');
  const maybeHost = eq > 0 ? text.slice(0, eq) : undefined;
  const after = text.slice(eq + 1);
  const hostForm = maybeHost !== undefined && HOST_RE.test(maybeHost) && (text.indexOf(':', eq) > eq || (passwordless && !after.includes(':')));
  const host = hostForm ? maybeHost.toLowerCase() : undefined;
  const rest = host === undefined ? text : after;
  const sep = rest.indexOf(':');
  const where = host === undefined ? {} : { host };
  if (sep === -1 && passwordless && rest !== '') return { ...where, username: rest };
  if (sep <= 0) {
    throw new AirlockError('USAGE', '--creds must be USER:PASSWORD or HOST=USER:PASSWORD', {
      hint: 'for example --creds registry.lan=mirror:s3cret, or --creds registry.lan=mirror --password-stdin with the password on stdin',
    });
  }
  return { ...where, username: rest.slice(0, sep), password: rest.slice(sep + 1) };
}

/**
 * `--creds` values by the host they are for. A value without `HOST=` belongs to the one registry
 * host the run involves (`hosts`); with none or several, which one is meant is a guess, and a
 * wrong guess hands the password to another registry: that is a usage error naming the hosts.
 * `HOST=` values win over a bare one for their host.
 *
 * @param hosts the registry hosts the command will talk to (duplicates allowed)
 * @param stdinPassword with `--password-stdin`: the password of the one value given without one
 */
export function credsByHost(texts: readonly string[], hosts: readonly string[], stdinPassword?: string): Map<string, Creds> {
  const split = texts.map((t) => splitCreds(t, stdinPassword !== undefined));
  if (stdinPassword !== undefined) {
    const waiting = split.filter((c) => c.password === undefined).length;
    if (waiting !== 1) {
      throw new AirlockError('USAGE', `--password-stdin is the password of one --creds USER (or HOST=USER); ${waiting} are given without a password`, {
        hint: 'for example: printf %s "$PASSWORD" | airlock ... --creds registry.lan=mirror --password-stdin',
      });
    }
  }
  const parsed = split.map((c): Creds => ({ ...c, password: c.password ?? (stdinPassword as string) }));
  const byHost = new Map<string, Creds>();
  for (const c of parsed) if (c.host !== undefined && !byHost.has(c.host)) byHost.set(c.host, c);
  const bare = parsed.filter((c) => c.host === undefined);
  if (bare.length === 0) return byHost;
  const hint = 'name the registry the credentials are for: --creds HOST=USER:PASSWORD (repeatable, one per registry)';
  if (bare.length > 1) throw new AirlockError('USAGE', `--creds without HOST= is given ${bare.length} times`, { hint });
  const involved = [...new Set(hosts.map((h) => h.toLowerCase()))];
  if (involved.length !== 1) {
    const which = involved.length === 0 ? 'none' : `${involved.length}: ${involved.join(', ')}`;
    throw new AirlockError('USAGE', `--creds without HOST= needs exactly one registry in the run; registries involved: ${which}`, { hint });
  }
  const only = involved[0] as string;
  if (!byHost.has(only)) byHost.set(only, bare[0] as Creds);
  return byHost;
}

/** Longest password `--password-stdin` takes: a token is a few KiB; more is a wrong file. */
export const MAX_STDIN_PASSWORD_BYTES = 64 * 1024;

/**
 * The password piped to `--password-stdin`: all of stdin, less one line end (as `docker login
 * --password-stdin` reads it). A terminal is refused: there would be no prompt, the password would
 * echo, and a long run would sit waiting without a word.
 */
export async function readStdinPassword(stdin: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin): Promise<string> {
  if (stdin.isTTY === true) {
    throw new AirlockError('USAGE', '--password-stdin reads the password from a pipe or a file, and stdin is a terminal', {
      hint: 'for example: printf %s "$PASSWORD" | airlock ... --password-stdin, or ... --password-stdin < password.txt',
    });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_STDIN_PASSWORD_BYTES) {
      throw new AirlockError('USAGE', `--password-stdin: stdin holds more than ${MAX_STDIN_PASSWORD_BYTES} bytes, not a password`);
    }
    chunks.push(buf);
  }
  const password = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (password === '') throw new AirlockError('USAGE', '--password-stdin: stdin is empty', { hint: 'pipe the password in' });
  return password;
}
