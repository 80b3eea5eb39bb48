/**
 * Thin wrappers over skopeo 1.9.3, the independent implementation the integration tests check
 * airlock against. Failures throw with the command line (credentials redacted) and skopeo's stderr.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { TestRegistry } from './registry.js';

/** How skopeo reaches one registry. */
export interface SkopeoAccess {
  /** false for plain-HTTP registries (and to skip certificate checks); default true. */
  tlsVerify?: boolean;
  creds?: { username: string; password: string };
  /** Directory of CA certificates (`*.crt`) to trust. */
  certDir?: string;
}

/** Options of {@link skopeoCopy}. */
export interface SkopeoCopyOptions {
  src?: SkopeoAccess;
  dest?: SkopeoAccess;
  /** `--all`: copy every image of an index, not just the one for this platform. */
  all?: boolean;
  /** `--preserve-digests`: fail instead of changing a manifest. */
  preserveDigests?: boolean;
  extraArgs?: string[];
}

/** A skopeo run normally takes well under a second here; a minute means it hangs. */
const SKOPEO_TIMEOUT_MS = 60_000;
/** Manifests are at most 4 MiB; copies print little. */
const MAX_OUTPUT = 16 * 1024 * 1024;

/**
 * How skopeo reaches a test registry: TLS verified against its CA, or plain HTTP; with its creds.
 * @example
 *   await skopeoInspectRaw(`docker://${reg.host}/coreos/etcd:v3.3.0`, accessFor(reg));
 */
export function accessFor(reg: TestRegistry): SkopeoAccess {
  return {
    tlsVerify: reg.certDir !== undefined,
    ...(reg.certDir ? { certDir: reg.certDir } : {}),
    ...(reg.username ? { creds: { username: reg.username, password: reg.password ?? '' } } : {}),
  };
}

/**
 * `skopeo inspect --raw REF`: the manifest bytes exactly as served, their digest and mediaType.
 * @example
 *   const { digest } = await skopeoInspectRaw('docker://127.0.0.1:5000/coreos/etcd:v3.3.0', { tlsVerify: false });
 */
export async function skopeoInspectRaw(ref: string, access: SkopeoAccess = {}): Promise<{ raw: Buffer; digest: string; mediaType: string | undefined }> {
  const raw = await skopeo(['inspect', '--raw', ...accessArgs('', access), ref]);
  const digest = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
  let mediaType: string | undefined;
  try {
    mediaType = (JSON.parse(raw.toString('utf8')) as { mediaType?: string }).mediaType;
  } catch {
    mediaType = undefined;
  }
  return { raw, digest, mediaType };
}

/**
 * `skopeo copy SRC DST` with per-side access options.
 * @example
 *   await skopeoCopy(`oci:${dir}:quay.io/coreos/etcd:v3.3.0`, `oci:${out}:etcd`, { preserveDigests: true });
 */
export async function skopeoCopy(src: string, dst: string, opts: SkopeoCopyOptions = {}): Promise<void> {
  await skopeo([
    'copy',
    ...accessArgs('src-', opts.src ?? {}),
    ...accessArgs('dest-', opts.dest ?? {}),
    ...(opts.all ? ['--all'] : []),
    ...(opts.preserveDigests ? ['--preserve-digests'] : []),
    ...(opts.extraArgs ?? []),
    src,
    dst,
  ]);
}

/** Run skopeo with `args`; resolves to stdout, rejects with the command line and stderr. */
export function skopeo(args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', args, { encoding: 'buffer', maxBuffer: MAX_OUTPUT, timeout: SKOPEO_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const shown = args.map((a, i) => (/creds$/.test(args[i - 1] ?? '') ? '***' : a)).join(' ');
      const why = err.killed ? `killed after ${SKOPEO_TIMEOUT_MS} ms` : `exit ${String(err.code)}`;
      reject(new Error(`skopeo ${shown} failed (${why}):\n${stderr.toString('utf8').trim()}`, { cause: err }));
    });
  });
}

/** `--{prefix}tls-verify`, `--{prefix}creds`, `--{prefix}cert-dir`. */
function accessArgs(prefix: '' | 'src-' | 'dest-', access: SkopeoAccess): string[] {
  const args: string[] = [];
  if (access.tlsVerify !== undefined) args.push(`--${prefix}tls-verify=${String(access.tlsVerify)}`);
  if (access.creds) args.push(`--${prefix}creds`, `${access.creds.username}:${access.creds.password}`);
  if (access.certDir) args.push(`--${prefix}cert-dir`, access.certDir);
  return args;
}
