/**
 * The operator's `registries.conf` (containers-registries.conf(5), read by podman, skopeo, CRI-O),
 * for two settings of the registries airlock reads from: `insecure = true`, which lets those tools
 * talk to a registry over plain HTTP or over TLS without verifying its certificate (honoured, so a
 * registry an operator already marked there needs no flag), and `blocked = true`, which makes them
 * refuse to pull from it (honoured: airlock refuses too, before any request).
 *
 * Files, as containers/image finds them: `$CONTAINERS_REGISTRIES_CONF`, else
 * `$HOME/.config/containers/registries.conf` when it exists (with only the drop-ins of
 * `$HOME/.config/containers/registries.conf.d/`), else `/etc/containers/registries.conf`; then the
 * `*.conf` drop-ins of `/etc/containers/registries.conf.d/` and of the user's directory, in name
 * order, a later `[[registry]]` replacing an earlier one of the same prefix. Both formats: v2
 * `[[registry]]` tables (`prefix`, or `location` when there is no prefix) and v1
 * `[registries.insecure] registries = [...]`.
 *
 * airlock keeps one connection setting per registry host, so an entry applies when its prefix is
 * the host itself (`host[:port]`) or a `*.domain` wildcard that covers it (any port), the longest
 * matching prefix winning, as containers/image picks one; entries for a namespace (`host/team`)
 * cannot be honoured per host and are left out. Mirrors and remapping (`location` other than the
 * prefix) are not followed: airlock reads each image from the registry its reference names.
 */
import { readdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AirlockError, fromFsError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import { parseToml, type TomlTable } from './toml.js';

/** A registries.conf is a few KiB; Debian's with every comment is 4 KiB. */
export const MAX_REGISTRIES_CONF_BYTES = 1024 * 1024;
/** Drop-ins read at most per directory: a directory of thousands is not configuration. */
export const MAX_DROP_INS = 256;

export const SYSTEM_REGISTRIES_CONF = '/etc/containers/registries.conf';
export const SYSTEM_REGISTRIES_CONF_DIR = '/etc/containers/registries.conf.d';

/** One `[[registry]]` entry that matters here. */
export interface RegistryConfEntry {
  /** `registry.lan:5000` or `*.lan`. */
  prefix: string;
  insecure: boolean;
  /** Pulling from it is refused (`blocked = true`, or v1 `[registries.block]`). */
  blocked: boolean;
  /** The file it came from, for messages. */
  file: string;
}

/** Where to look; everything is injectable for tests. */
export interface RegistriesConfOptions {
  env?: Record<string, string | undefined>;
  homeDir?: string;
  systemFile?: string;
  systemDir?: string;
}

/** The files to read, in order (missing ones are skipped when read). */
export async function registriesConfFiles(opts: RegistriesConfOptions = {}): Promise<string[]> {
  const env = opts.env ?? process.env;
  const home = opts.homeDir ?? homedir();
  const userFile = join(home, '.config', 'containers', 'registries.conf');
  const userDir = join(home, '.config', 'containers', 'registries.conf.d');
  const systemDir = opts.systemDir ?? SYSTEM_REGISTRIES_CONF_DIR;
  if (!env.CONTAINERS_REGISTRIES_CONF && (await isFile(userFile))) return [userFile, ...(await dropIns(userDir))];
  const main = env.CONTAINERS_REGISTRIES_CONF || (opts.systemFile ?? SYSTEM_REGISTRIES_CONF);
  return [main, ...(await dropIns(systemDir)), ...(await dropIns(userDir))];
}

/**
 * Every entry of the files, merged by prefix (a later file's entry replaces an earlier one).
 *
 * @throws AirlockError `INPUT_INVALID` naming the file and line of what cannot be read
 */
export async function loadRegistriesConf(opts: RegistriesConfOptions = {}): Promise<RegistryConfEntry[]> {
  const byPrefix = new Map<string, RegistryConfEntry>();
  const named = (opts.env ?? process.env).CONTAINERS_REGISTRIES_CONF;
  for (const file of await registriesConfFiles(opts)) {
    const text = await readConf(file);
    if (text === undefined && file === named) {
      // As containers/image: a missing default file is no configuration, a missing named one a mistake.
      throw new AirlockError('INPUT_INVALID', `CONTAINERS_REGISTRIES_CONF names ${file}, which is not a file`, {
        subject: file,
        hint: 'point CONTAINERS_REGISTRIES_CONF at a registries.conf, or unset it',
      });
    }
    if (text === undefined) continue;
    for (const entry of entriesOf(parseToml(text, file), file)) byPrefix.set(entry.prefix, entry);
  }
  return [...byPrefix.values()];
}

/**
 * The entry that decides for `host` (`host[:port]`), or undefined.
 *
 * @example
 * registryEntryFor(entries, 'registry.lan:5000') // → { prefix: 'registry.lan:5000', insecure: true, blocked: false, file: '…' }
 */
export function registryEntryFor(entries: readonly RegistryConfEntry[], host: string): RegistryConfEntry | undefined {
  const wanted = host.toLowerCase();
  const name = wanted.replace(/:\d+$/, '');
  let best: RegistryConfEntry | undefined;
  for (const entry of entries) {
    const prefix = entry.prefix.toLowerCase();
    const hit = prefix.startsWith('*.') ? name.endsWith(prefix.slice(1)) : prefix === wanted;
    if (hit && (best === undefined || entry.prefix.length > best.prefix.length)) best = entry;
  }
  return best;
}

function entriesOf(doc: TomlTable, file: string): RegistryConfEntry[] {
  const out: RegistryConfEntry[] = [];
  const v2 = doc.registry;
  if (Array.isArray(v2)) {
    for (const item of v2) {
      if (!isTable(item)) continue;
      const where = typeof item.prefix === 'string' && item.prefix !== '' ? item.prefix : item.location;
      if (typeof where !== 'string' || where === '') continue;
      const prefix = where.replace(/\/+$/, '');
      if (prefix.includes('/')) continue; // a namespace: see the module comment
      out.push({ prefix, insecure: item.insecure === true, blocked: item.blocked === true, file });
    }
  }
  // v1: `[registries.insecure] registries = [...]` and `[registries.block] registries = [...]`.
  const v1 = (list: string): string[] => {
    const table = isTable(doc.registries) ? doc.registries[list] : undefined;
    const hosts = isTable(table) ? table.registries : undefined;
    return Array.isArray(hosts) ? hosts.filter((h): h is string => typeof h === 'string' && h !== '' && !h.includes('/')) : [];
  };
  const insecure = new Set(v1('insecure'));
  const blocked = new Set(v1('block'));
  for (const prefix of new Set([...insecure, ...blocked])) out.push({ prefix, insecure: insecure.has(prefix), blocked: blocked.has(prefix), file });
  return out;
}

function isTable(value: unknown): value is TomlTable {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

async function readConf(file: string): Promise<string | undefined> {
  if (!(await isFile(file))) return undefined;
  const bytes = await readSmallFile(file, {
    maxBytes: MAX_REGISTRIES_CONF_BYTES,
    what: 'registries.conf',
    hint: 'point CONTAINERS_REGISTRIES_CONF at the registries.conf to use',
  });
  return bytes.toString('utf8');
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** `DIR/*.conf` in name order; a missing directory has none. */
async function dropIns(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw fromFsError(err, dir, 'reading');
  }
  const confs = names.filter((n) => n.endsWith('.conf')).sort();
  if (confs.length > MAX_DROP_INS) {
    throw new AirlockError('INPUT_INVALID', `${dir} holds ${confs.length} drop-in files, more than ${MAX_DROP_INS}`, { subject: dir });
  }
  return confs.map((n) => join(dir, n));
}
