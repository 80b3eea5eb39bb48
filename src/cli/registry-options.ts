/**
 * Registry connection flags shared by every command that talks to a registry, and the endpoint
 * factory built from them.
 */
import { stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { AirlockError, fromFsError } from '../errors.js';
import type { Endpoints } from '../copy/expand.js';
import { cleanText, registerCredentials } from '../redact.js';
import type { Layout } from '../layout/layout.js';
import type { RegistryClient, RegistryOptions } from '../registry/client.js';
import type { RegistriesConfOptions } from '../registry/registries-conf.js';
import type { RegistryListener } from '../registry/events.js';
import { VERSION } from '../version.js';
import { credsByHost, HOST_RE, readStdinPassword } from './creds-flags.js';
import { DEFAULT_CONCURRENCY, parseChunkSize, parseConcurrency, parseTimeout } from './flag-values.js';

export interface RegistryFlags {
  creds?: string[];
  caFile?: string[];
  /** `true`, or the `--plain-http[=HOST]` values: {@link EVERY_REGISTRY} for the bare flag. */
  plainHttp?: boolean | string[];
  /** `true`, or the `--insecure-skip-tls-verify[=HOST]` values, as {@link plainHttp}. */
  insecureSkipTlsVerify?: boolean | string[];
  /** `--authfile FILE`: the only auth file read (as in podman and skopeo). */
  authfile?: string;
  /** `--password-stdin`: the password of the one `--creds USER` is read from stdin. */
  passwordStdin?: boolean;
  concurrency?: string;
  /** Uploads only (import): largest PATCH, in MiB; see {@link parseChunkSize}. */
  chunkSize?: string;
  /** See {@link parseTimeout}. */
  timeout?: string;
  /** `--proxy URL`: replaces HTTPS_PROXY/HTTP_PROXY; `''` turns proxying off (registry/proxy.ts). */
  proxy?: string;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** What a bare `--plain-http` or `--insecure-skip-tls-verify` stands for: every registry of the run. */
export const EVERY_REGISTRY = '*';

/** Flags that mean every registry alone and one registry as `FLAG=HOST`. */
const PER_HOST_FLAGS = ['--plain-http', '--insecure-skip-tls-verify'];

/**
 * `--plain-http` alone means every registry; `--plain-http=HOST` one registry. Only the `=` form
 * binds a value: an optional option-argument written apart would swallow whatever follows, and in
 * `bundle create --plain-http quay.io/x:1` that is an image, in `bundle import --plain-http
 * b.tar.zst` a file, neither told from a host by its look (`busybox:1` is both). So, before
 * commander sees the arguments, the bare flags become `FLAG=*`; the ones after `--` are operands
 * and stay as they are.
 */
export function bindPerHostFlags(args: readonly string[]): string[] {
  const end = args.indexOf('--');
  const options = end === -1 ? args : args.slice(0, end);
  const rest = end === -1 ? [] : args.slice(end);
  return [...options.map((a) => (PER_HOST_FLAGS.includes(a) ? `${a}=${EVERY_REGISTRY}` : a)), ...rest];
}

function perHostOption(long: string, description: string): Option {
  const option = new Option(`${long} [HOST]`, description).argParser(collect);
  // Help shows the only spelling that binds a host (see bindPerHostFlags).
  option.flags = `${long}[=HOST]`;
  return option;
}

/**
 * Add the registry flags to `cmd`. `concurrency` describes what `--concurrency` means for this
 * command and its default (blobs per registry for create; uploads in flight for import).
 */
export function addRegistryOptions(cmd: Command, concurrency = { what: 'blobs transferred at once per registry', defaultValue: DEFAULT_CONCURRENCY }): Command {
  const parseOptions = cmd.parseOptions.bind(cmd);
  cmd.parseOptions = (args: string[]) => parseOptions(bindPerHostFlags(args));
  return cmd
    .addOption(
      new Option(
        '--creds <[host=]user:password>',
        'credentials for a registry: HOST=USER:PASSWORD, or USER:PASSWORD when the run involves one registry only (repeatable; USER alone with --password-stdin)',
      ).argParser(collect),
    )
    .option('--password-stdin', 'read the password of the --creds given without one from stdin (a pipe or file, not a terminal)')
    .option(
      '--authfile <file>',
      "read registry logins from this auth.json only (podman/skopeo --authfile; default: $REGISTRY_AUTH_FILE, podman's and docker's files)",
    )
    .addOption(new Option('--ca-file <file>', 'trust this CA certificate (PEM) for TLS; repeatable').argParser(collect))
    .addOption(perHostOption('--plain-http', 'talk plain HTTP, for registries without TLS: every registry, or with =HOST that one (repeatable)'))
    .addOption(
      perHostOption('--insecure-skip-tls-verify', 'do not verify registry TLS certificates (unsafe): every registry, or with =HOST that one (repeatable)'),
    )
    .option('--concurrency <n>', `${concurrency.what} (default ${concurrency.defaultValue})`)
    .option(
      '--timeout <duration>',
      'how long a silent registry is waited for: the response head and each gap in a body; connecting gets half (30s, 2m, or seconds; default 60s)',
    )
    .option(
      '--proxy <url>',
      "HTTP proxy for every registry, http://[USER:PASSWORD@]HOST:PORT; overrides HTTPS_PROXY/HTTP_PROXY (NO_PROXY still applies); '' for none",
    );
}

/**
 * Which hosts a per-host flag covers: `every` for a bare flag or `true`, else the named hosts.
 *
 * @param hosts the registry hosts of the run: a named host outside them is a typo, refused
 */
export function perHostSetting(flag: string, value: boolean | string[] | undefined, hosts: readonly string[]): { every: boolean; hosts: Set<string> } {
  if (value === undefined || value === false) return { every: false, hosts: new Set() };
  if (value === true) return { every: true, hosts: new Set() };
  const named = new Set<string>();
  const involved = new Set(hosts.map((h) => h.toLowerCase()));
  for (const text of value) {
    if (text === EVERY_REGISTRY) continue;
    const host = text.toLowerCase();
    if (!HOST_RE.test(host)) {
      throw new AirlockError('USAGE', `${flag}=${text}: not a registry host`, {
        hint: `write ${flag}=HOST or ${flag}=HOST:PORT, as the host is written in image references`,
      });
    }
    if (!involved.has(host)) {
      const which = involved.size === 0 ? 'none' : [...involved].join(', ');
      throw new AirlockError('USAGE', `${flag}=${text}: no registry of the run is ${text} (registries involved: ${which})`, {
        hint: 'write the host as it is written in the image references, port included',
      });
    }
    named.add(host);
  }
  return { every: value.includes(EVERY_REGISTRY), hosts: named };
}

const covers = (setting: { every: boolean; hosts: Set<string> }, host: string): boolean => setting.every || setting.hosts.has(host.toLowerCase());

/** Whether `--plain-http[=HOST]` as given covers `host` (the bare flag covers every registry). */
export function plainHttpFor(flags: Pick<RegistryFlags, 'plainHttp'>, host: string): boolean {
  return covers(perHostSetting('--plain-http', flags.plainHttp, [host]), host);
}

/** `--authfile FILE` must be there: a typo would otherwise mean anonymous pulls, or a 401 much later. */
async function checkAuthFile(path: string): Promise<void> {
  try {
    if (!(await stat(path)).isFile()) throw new AirlockError('INPUT_INVALID', `--authfile ${path}: not a regular file`, { subject: path });
  } catch (err) {
    throw fromFsError(err, path, 'reading');
  }
}

/** What the endpoint factory needs besides the flags. */
export interface EndpointContext {
  /** Every registry host the command will talk to: decides where a `--creds` without `HOST=` goes. */
  hosts: readonly string[];
  /** Whether `--debug` is on: registry notes (a token realm on another host) then go to stderr. */
  debug?: boolean;
  /** Hears of each retry and, with `--debug`, each HTTP exchange (see `network-log.ts`). */
  onEvent?: RegistryListener;
  /** Where `--password-stdin` reads from. Default `process.stdin`. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  /**
   * The registry hosts read from: registries.conf's `insecure = true` applies to these (as
   * containers/image reads it) unless a flag decides for the host.
   */
  sources?: readonly string[];
  /** Where registries.conf is looked for; see `registries-conf.ts`. */
  registriesConf?: RegistriesConfOptions;
  /** Aborts the probes of registries.conf's insecure registries. */
  signal?: AbortSignal;
}

/** A `--debug` line on stderr; registry text in it is cleaned like any other. */
function debugLine(line: string): void {
  process.stderr.write(`airlock: debug: ${cleanText(line)}\n`);
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

/** How to talk to one registry. */
type Scheme = Pick<RegistryOptions, 'plainHttp' | 'insecureSkipTlsVerify'>;

/**
 * The schemes of the source registries the operator's registries.conf marks `insecure = true`
 * and no flag decides: HTTPS without verification when the registry answers so, else plain HTTP
 * when it answers that, as containers/image tries them; when neither answers, HTTPS without
 * verification, whose own error the run then reports.
 *
 * @param flagged whether a flag already decides for the host (flags win over the file)
 * @param answers whether the registry answers `GET /v2/` with this scheme
 */
async function insecureSchemes(
  context: EndpointContext,
  flagged: (host: string) => boolean,
  answers: (host: string, scheme: Scheme) => Promise<boolean>,
): Promise<Map<string, Scheme>> {
  const schemes = new Map<string, Scheme>();
  const read = [...new Set((context.sources ?? []).map((h) => h.toLowerCase()))];
  if (read.length === 0) return schemes;
  const { loadRegistriesConf, registryEntryFor } = await import('../registry/registries-conf.js');
  const entries = await loadRegistriesConf(context.registriesConf);
  // Whatever the flags say: the operator's tools refuse these, and so does airlock.
  for (const host of read) {
    const entry = registryEntryFor(entries, host);
    if (entry?.blocked === true) {
      throw new AirlockError('POLICY', `${host} is blocked in ${entry.file} (blocked = true for prefix ${entry.prefix}): nothing is read from it`, {
        subject: host,
        hint: `take ${host} out of the image list, or remove "blocked = true" from its entry in ${entry.file} if reading from it is allowed`,
      });
    }
  }
  for (const host of read.filter((h) => !flagged(h))) {
    const entry = registryEntryFor(entries, host);
    if (entry?.insecure !== true) continue;
    const https: Scheme = { plainHttp: false, insecureSkipTlsVerify: true };
    const http: Scheme = { plainHttp: true, insecureSkipTlsVerify: false };
    const scheme = (await answers(host, https)) ? https : (await answers(host, http)) ? http : https;
    schemes.set(host, scheme);
    if (context.debug === true) {
      debugLine(
        `${entry.file} marks ${host} insecure (prefix ${entry.prefix}): ${scheme.plainHttp === true ? 'plain HTTP' : 'TLS without certificate verification'}`,
      );
    }
  }
  return schemes;
}

export async function endpointsFrom(flags: RegistryFlags, context: EndpointContext = { hosts: [] }): Promise<RunEndpoints> {
  const stdinPassword = flags.passwordStdin === true ? await readStdinPassword(context.stdin) : undefined;
  if (stdinPassword !== undefined) registerCredentials({ password: stdinPassword });
  const creds = credsByHost(flags.creds ?? [], context.hosts, stdinPassword);
  for (const c of creds.values()) registerCredentials(c);
  const plainHttp = perHostSetting('--plain-http', flags.plainHttp, context.hosts);
  const skipVerify = perHostSetting('--insecure-skip-tls-verify', flags.insecureSkipTlsVerify, context.hosts);
  if (flags.authfile !== undefined) await checkAuthFile(flags.authfile);
  const concurrency = parseConcurrency(flags.concurrency);
  const chunkSize = parseChunkSize(flags.chunkSize);
  const timeout = parseTimeout(flags.timeout);
  if (flags.proxy !== undefined && flags.proxy.trim() !== '') {
    // Parsed now so that a bad --proxy is a usage error before any work; its password is a secret from here on.
    const { parseProxyUrl } = await import('../registry/proxy.js');
    registerCredentials({ ...parseProxyUrl(flags.proxy, '--proxy') });
  }
  const [{ RegistryClient }, { Layout }, { timeoutsFrom }] = await Promise.all([
    import('../registry/client.js'),
    import('../layout/layout.js'),
    import('../registry/timeouts.js'),
  ]);
  const options = (host: string, scheme: Scheme, probe = false): RegistryOptions => {
    const c = creds.get(host.toLowerCase());
    return {
      ...scheme,
      ...(flags.authfile === undefined ? {} : { authFiles: [flags.authfile] }),
      caFiles: flags.caFile ?? [],
      ...(c === undefined ? {} : { credentials: { username: c.username, password: c.password } }),
      maxConcurrentBlobs: concurrency,
      ...(chunkSize === undefined ? {} : { upload: { chunkSize } }),
      ...(timeout === undefined ? {} : { timeouts: timeoutsFrom(timeout) }),
      ...(flags.proxy === undefined ? {} : { proxy: flags.proxy }),
      ...(context.onEvent === undefined || probe ? {} : { onEvent: context.onEvent }),
      userAgent: `airlock/${VERSION}`,
      ...(context.debug === true ? { debug: debugLine } : {}),
      // A probe asks once: its failure only means "try the other scheme".
      ...(probe ? { retry: { retries: 0 } } : {}),
    };
  };
  const flagged = (host: string): Scheme => ({ plainHttp: covers(plainHttp, host), insecureSkipTlsVerify: covers(skipVerify, host) });
  const schemes = await insecureSchemes(
    context,
    (host) => covers(plainHttp, host) || covers(skipVerify, host),
    async (host, scheme) => {
      const probe = new RegistryClient(host, options(host, scheme, true));
      try {
        await probe.ping(context.signal === undefined ? {} : { signal: context.signal });
        return true;
      } catch (err) {
        if (context.signal?.aborted === true) throw err;
        return false;
      } finally {
        await probe.close();
      }
    },
  );
  const clients = new Map<string, RegistryClient>();
  return {
    registry(host: string): RegistryClient {
      let client = clients.get(host);
      if (client === undefined) {
        client = new RegistryClient(host, options(host, schemes.get(host.toLowerCase()) ?? flagged(host)));
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
