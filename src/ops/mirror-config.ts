/**
 * `mirror-config`: the client configuration for an imported mirror, for the upstream hosts of
 * bundles (read from their heads: the image names say where the images came from) or named by the
 * operator. Writes nothing over the network; every file is written atomically, after the output
 * directory and the CA files are checked.
 */
import { dirname, join, resolve } from 'node:path';
import { readHead } from '../bundle/read-head.js';
import { parseBundleManifest } from '../bundle/manifest.js';
import { AirlockError } from '../errors.js';
import { readSmallFile } from '../fs/small-file.js';
import { checkOutputDirectory, makeDirectory } from '../fs/output-location.js';
import { writeFileAtomic } from '../layout/atomic.js';
import { describeTarget, hostComponent, parseBundleName, type ImportTarget } from '../names/import-names.js';
import { parseReference } from '../ref/reference.js';
import type { MirrorSpec } from '../mirror/client-config.js';
import { planMirrorFiles, type MirrorClient } from '../mirror/files.js';

export interface MirrorConfigOptions {
  /** Output directory (made if missing). */
  dir: string;
  /** The mirror, as `bundle import --to` names it (a registry, not a layout). */
  target: ImportTarget;
  /** Bundles whose image names give the upstream hosts. */
  bundles?: readonly string[];
  /** Upstream hosts named directly. */
  hosts?: readonly string[];
  stripHost?: boolean;
  plainHttp?: boolean;
  /** The mirror's CA certificates (PEM); referenced by absolute path and copied for containers. */
  caFiles?: readonly string[];
  upstreamFallback?: boolean;
  allowUpstream?: boolean;
}

export interface MirrorConfigResult {
  /** `HOST[/PREFIX]`. */
  mirror: string;
  /** Upstream hosts configured, sorted. */
  upstreams: string[];
  files: Array<{ client: MirrorClient; path: string; upstream?: string }>;
  /** What the clients cannot do, and what the operator has to do besides copying. */
  notes: string[];
}

/** A CA bundle of a few hundred certificates fits; a larger file is not a CA file. */
const MAX_CA_BYTES = 1 << 20;

const HOST_LIKE = /^(?:[^/]*[.:][^/]*|localhost|\[[^/]*)$/;

/**
 * An upstream host as the operator writes it, canonical (`index.docker.io` → `docker.io`).
 *
 * @throws USAGE for something that is not a registry host
 */
export function parseUpstreamHost(text: string): string {
  const refuse = (): AirlockError =>
    new AirlockError('USAGE', `--host ${text}: not a registry host`, {
      subject: text,
      hint: 'name the host as images do: docker.io, quay.io, registry.example.com:5000',
    });
  if (!HOST_LIKE.test(text) || text.includes('/')) throw refuse();
  try {
    return parseReference(`${text}/x:t`).registry;
  } catch {
    throw refuse();
  }
}

/** The upstream hosts of a bundle's images; names without a host (from an `oci:` source) have none. */
async function bundleHosts(path: string): Promise<{ hosts: string[]; hostless: string[] }> {
  const head = await readHead(path);
  const manifest = parseBundleManifest(head.bundleJson, path);
  const hosts: string[] = [];
  const hostless: string[] = [];
  for (const image of manifest.images) {
    const registry = parseBundleName(image.name).registry;
    if (registry === undefined) hostless.push(image.name);
    else hosts.push(registry);
  }
  return { hosts, hostless };
}

/**
 * Write the configuration of every client family into `opts.dir` (see mirror/files.ts).
 *
 * @throws USAGE (a layout target, no hosts, a host that cannot be mapped), INPUT_INVALID (a bundle
 *   or CA file that cannot be read), INTEGRITY (a damaged bundle head), IO (the output)
 */
export async function writeMirrorConfig(opts: MirrorConfigOptions): Promise<MirrorConfigResult> {
  const target = opts.target;
  if (target.kind !== 'registry') {
    throw new AirlockError('USAGE', `--to ${describeTarget(target)}: a mirror configuration needs a registry, not a layout`, {
      hint: 'write --to HOST[:PORT][/PREFIX] as given to bundle import',
    });
  }
  await checkOutputDirectory(opts.dir);
  const caFiles = (opts.caFiles ?? []).map((f) => resolve(f));
  const pems = await Promise.all(
    caFiles.map((f) => readSmallFile(f, { maxBytes: MAX_CA_BYTES, what: 'CA certificate file', hint: 'give the PEM file of the CA' })),
  );
  const found = new Set((opts.hosts ?? []).map(parseUpstreamHost));
  const notes: string[] = [];
  for (const bundle of opts.bundles ?? []) {
    const { hosts, hostless } = await bundleHosts(bundle);
    for (const h of hosts) found.add(h);
    if (hostless.length > 0)
      notes.push(`${bundle}: ${hostless.length} image(s) without an upstream host (e.g. ${hostless[0]}): pulled by their mirror names only`);
  }
  const upstreams = [...found].sort();
  if (upstreams.length === 0) {
    throw new AirlockError('USAGE', 'no upstream hosts to configure', { hint: 'give bundles whose images name a registry, or --host HOST (repeatable)' });
  }
  // Refused here, before anything is written: a host import could not have mapped either.
  if (opts.stripHost !== true) for (const u of upstreams) hostComponent(u);
  if (upstreams.includes(target.host)) {
    throw new AirlockError('USAGE', `the mirror ${target.host} is also an upstream host: a client would be sent to itself`, { subject: target.host });
  }
  const spec: MirrorSpec = {
    host: target.host,
    prefix: target.prefix,
    stripHost: opts.stripHost === true,
    plainHttp: opts.plainHttp === true,
    caFiles,
    upstreamFallback: opts.upstreamFallback === true,
    allowUpstream: opts.allowUpstream === true,
  };
  const plan = planMirrorFiles(spec, upstreams);
  for (const file of plan.files) {
    const path = join(opts.dir, file.path);
    await makeDirectory(dirname(path));
    const data = 'text' in file.content ? Buffer.from(file.content.text) : concatPem(pems);
    await writeFileAtomic(path, data);
  }
  return {
    mirror: describeTarget(target),
    upstreams,
    files: plan.files.map((f) => ({ client: f.client, path: join(opts.dir, f.path), ...(f.upstream === undefined ? {} : { upstream: f.upstream }) })),
    notes: [...notes, ...plan.notes],
  };
}

/** PEM files one after the other, each ending in a newline (a bundle of CAs, as `ca.crt` may be). */
function concatPem(pems: readonly Buffer[]): Buffer {
  return Buffer.concat(pems.flatMap((p) => (p.at(-1) === 0x0a ? [p] : [p, Buffer.from('\n')])));
}
