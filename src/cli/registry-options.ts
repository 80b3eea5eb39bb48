/**
 * Registry connection flags shared by every command that talks to a registry, and the endpoint
 * factory built from them.
 */
import { Option, type Command } from 'commander';
import { AirlockError } from '../errors.js';
import type { Endpoints } from '../copy/expand.js';
import { cleanText, registerCredentials } from '../redact.js';
import type { Layout } from '../layout/layout.js';
import type { RegistryClient } from '../registry/client.js';
import type { RegistryListener } from '../registry/events.js';
import { VERSION } from '../version.js';
import { DEFAULT_MAX_CONCURRENT_BLOBS } from '../registry/limits.js';

export interface RegistryFlags {
  creds?: string[];
  caFile?: string[];
  plainHttp?: boolean;
  insecureSkipTlsVerify?: boolean;
  concurrency?: string;
  /** Uploads only (import): largest PATCH, in MiB; see {@link parseChunkSize}. */
  chunkSize?: string;
  /** See {@link parseTimeout}. */
  timeout?: string;
}

/** Blobs in flight per registry by default: the registry client's own default (see registry/limits.ts). */
export const DEFAULT_CONCURRENCY = DEFAULT_MAX_CONCURRENT_BLOBS;

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/**
 * Add the registry flags to `cmd`. `concurrency` describes what `--concurrency` means for this
 * command and its default (blobs per registry for create; uploads in flight for import).
 */
export function addRegistryOptions(cmd: Command, concurrency = { what: 'blobs transferred at once per registry', defaultValue: DEFAULT_CONCURRENCY }): Command {
  return cmd
    .addOption(
      new Option(
        '--creds <[host=]user:password>',
        'credentials for a registry: HOST=USER:PASSWORD, or USER:PASSWORD when the run involves one registry only (repeatable)',
      ).argParser(collect),
    )
    .addOption(new Option('--ca-file <file>', 'trust this CA certificate (PEM) for TLS; repeatable').argParser(collect))
    .option('--plain-http', 'talk plain HTTP, for registries without TLS', false)
    .option('--insecure-skip-tls-verify', 'do not verify registry TLS certificates (unsafe)', false)
    .option('--concurrency <n>', `${concurrency.what} (default ${concurrency.defaultValue})`)
    .option(
      '--timeout <duration>',
      'how long a silent registry is waited for: the response head and each gap in a body; connecting gets half (30s, 2m, or seconds; default 60s)',
    );
}

interface Creds {
  host?: string;
  username: string;
  password: string;
}

/** A registry host as written in references: `name[:port]` or `[ipv6][:port]`. */
const HOST_RE = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d+)?$/i;

/**
 * Parse `[host=]user:password`. The text before the first `=` is a host when it looks like one
 * (`registry.lan`, `127.0.0.1:5000`); the password may contain `:` and `=`.
 */
export function parseCreds(text: string): Creds {
  const eq = text.indexOf('=');
  const maybeHost = eq > 0 ? text.slice(0, eq) : undefined;
  const host = maybeHost !== undefined && HOST_RE.test(maybeHost) && text.indexOf(':', eq) > eq ? maybeHost.toLowerCase() : undefined;
  const rest = host === undefined ? text : text.slice(eq + 1);
  const sep = rest.indexOf(':');
  if (sep <= 0) {
    throw new AirlockError('USAGE', '--creds must be USER:PASSWORD or HOST=USER:PASSWORD', {
      hint: 'for example --creds registry.lan=mirror:s3cret',
    });
  }
  return { ...(host === undefined ? {} : { host }), username: rest.slice(0, sep), password: rest.slice(sep + 1) };
}

/**
 * `--creds` values by the host they are for. A value without `HOST=` belongs to the one registry
 * host the run involves (`hosts`); with none or several, which one is meant is a guess, and a
 * wrong guess hands the password to another registry: that is a usage error naming the hosts.
 * `HOST=` values win over a bare one for their host.
 *
 * @param hosts the registry hosts the command will talk to (duplicates allowed)
 */
export function credsByHost(texts: readonly string[], hosts: readonly string[]): Map<string, Creds> {
  const parsed = texts.map(parseCreds);
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

export function parseConcurrency(text: string | undefined, defaultValue = DEFAULT_CONCURRENCY): number {
  if (text === undefined) return defaultValue;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new AirlockError('USAGE', `--concurrency ${text}: must be a whole number from 1 to 64`);
  }
  return n;
}

/** `--chunk-size MIB` in bytes; undefined when not given (one PATCH per blob). */
export function parseChunkSize(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const mib = Number(text);
  if (!Number.isInteger(mib) || mib < 1 || mib > 1_048_576) {
    throw new AirlockError('USAGE', `--chunk-size ${text}: must be a whole number of MiB from 1 to 1048576`, {
      hint: 'for example --chunk-size 64 behind a proxy that refuses request bodies over 100 MB',
    });
  }
  return mib * 1024 * 1024;
}

/** What the endpoint factory needs besides the flags. */
export interface EndpointContext {
  /** Every registry host the command will talk to: decides where a `--creds` without `HOST=` goes. */
  hosts: readonly string[];
  /** Whether `--debug` is on: registry notes (a token realm on another host) then go to stderr. */
  debug?: boolean;
  /** Hears of each retry and, with `--debug`, each HTTP exchange (see `network-log.ts`). */
  onEvent?: RegistryListener;
}

/** A `--debug` line on stderr; registry text in it is cleaned like any other. */
function debugLine(line: string): void {
  process.stderr.write(`airlock: debug: ${cleanText(line)}\n`);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * `--timeout DURATION` in ms, undefined when not given: `90` (seconds), `90s`, `2m`, `500ms`, from
 * 100 ms to 1 h.
 */
export function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const ms = m === null ? NaN : Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? 's'] ?? NaN));
  if (!(ms >= 100 && ms <= 3_600_000)) {
    throw new AirlockError('USAGE', `--timeout ${text}: must be a duration from 100ms to 1h`, {
      hint: 'for example --timeout 30s, --timeout 5m, or --timeout 90 (seconds)',
    });
  }
  return ms;
}

/**
 * Build the endpoint factory; one client per host, reused for every image of that host. The
 * registry client (undici) is loaded here, not when the CLI starts: commands that never talk to a
 * registry (verify, inspect, key) start ~80 ms sooner.
 */
/** Endpoints of a run: registries by host (each both a source and a sink), layouts by directory. */
export interface RunEndpoints extends Endpoints {
  registry(host: string): RegistryClient;
  layout(dir: string): Layout;
  /** Close every registry connection opened. */
  close(): Promise<void>;
}

export async function endpointsFrom(flags: RegistryFlags, context: EndpointContext = { hosts: [] }): Promise<RunEndpoints> {
  const creds = credsByHost(flags.creds ?? [], context.hosts);
  for (const c of creds.values()) registerCredentials(c);
  const concurrency = parseConcurrency(flags.concurrency);
  const chunkSize = parseChunkSize(flags.chunkSize);
  const timeout = parseTimeout(flags.timeout);
  const [{ RegistryClient }, { Layout }, { timeoutsFrom }] = await Promise.all([
    import('../registry/client.js'),
    import('../layout/layout.js'),
    import('../registry/timeouts.js'),
  ]);
  const clients = new Map<string, RegistryClient>();
  return {
    registry(host: string): RegistryClient {
      let client = clients.get(host);
      if (client === undefined) {
        const c = creds.get(host.toLowerCase());
        client = new RegistryClient(host, {
          plainHttp: flags.plainHttp === true,
          insecureSkipTlsVerify: flags.insecureSkipTlsVerify === true,
          caFiles: flags.caFile ?? [],
          ...(c === undefined ? {} : { credentials: { username: c.username, password: c.password } }),
          maxConcurrentBlobs: concurrency,
          ...(chunkSize === undefined ? {} : { upload: { chunkSize } }),
          ...(timeout === undefined ? {} : { timeouts: timeoutsFrom(timeout) }),
          ...(context.onEvent === undefined ? {} : { onEvent: context.onEvent }),
          userAgent: `airlock/${VERSION}`,
          ...(context.debug === true ? { debug: debugLine } : {}),
        });
        clients.set(host, client);
      }
      return client;
    },
    layout(dir: string): Layout {
      return new Layout(dir);
    },
    async close(): Promise<void> {
      await Promise.all([...clients.values()].map((c) => c.close()));
    },
  };
}
