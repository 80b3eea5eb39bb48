/**
 * The one manifest-graph walker (src/oci/walk.ts), on hand-made graphs: visit order (children
 * before the index that lists them, requests one at a time in list order), the platform handed
 * down, each manifest once (in one walk and across walks sharing `seen`), a getter that answers
 * with the wrong manifest, missing children, the depth limit and the cap, and the sync driver
 * walking exactly as the async one.
 */
import { describe, expect, it } from 'vitest';
import { sha256Digest, type Digest } from '../../src/digest/digest.js';
import type { Descriptor, Platform } from '../../src/oci/descriptor.js';
import { parseManifest, type RawManifest } from '../../src/oci/manifest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { MAX_INDEX_DEPTH, manifestReferences, walkManifests, walkManifestsSync, type WalkOptions } from '../../src/oci/walk.js';

/** Manifests by digest, as a source or a bundle would hold them; names them for the log. */
class Graph {
  readonly byDigest = new Map<Digest, RawManifest>();
  readonly names = new Map<Digest, string>();

  blob(text: string, mediaType: string = MediaType.OciLayerGzip): Descriptor {
    const bytes = Buffer.from(text);
    return { mediaType, digest: sha256Digest(bytes), size: bytes.length };
  }

  image(name: string, layers = 1): RawManifest {
    const config = this.blob(`config of ${name}`, MediaType.OciConfig);
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config,
      layers: Array.from({ length: layers }, (_, i) => this.blob(`layer ${i} of ${name}`)),
    };
    return this.put(name, doc);
  }

  index(name: string, children: Descriptor[]): RawManifest {
    return this.put(name, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: children });
  }

  put(name: string, doc: object): RawManifest {
    const m = parseManifest(Buffer.from(JSON.stringify({ ...doc, annotations: { name } })), undefined, name);
    this.byDigest.set(m.digest, m);
    this.names.set(m.digest, name);
    return m;
  }

  named(name: string): RawManifest {
    const digest = [...this.names].find(([, n]) => n === name)?.[0];
    if (digest === undefined) throw new Error(`no manifest ${name}`);
    return this.byDigest.get(digest)!;
  }

  name(d: { digest: Digest }): string {
    return this.names.get(d.digest) ?? d.digest;
  }
}

const desc = (m: RawManifest, platform?: Platform): Descriptor => ({
  mediaType: m.mediaType,
  digest: m.digest,
  size: m.bytes.length,
  ...(platform === undefined ? {} : { platform }),
});

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

/** Walk `top` over `graph` (async unless `sync`), logging every hook call in order. */
async function logWalk(
  graph: Graph,
  top: RawManifest,
  opts: WalkOptions & { sync?: boolean; missing?: Set<Digest>; deep?: 'throw' | 'keep' } = {},
): Promise<string[]> {
  const log: string[] = [];
  const hooks = {
    ...(opts.seen === undefined ? {} : { seen: opts.seen }),
    ...(opts.cap === undefined ? {} : { cap: opts.cap }),
    descriptor: (d: Descriptor) => void log.push(`desc ${graph.name(d)}`),
    manifest: (m: RawManifest, blobs: Descriptor[], platform: Platform | undefined) =>
      void log.push(`manifest ${graph.name(m)} ${platform === undefined ? '-' : `${platform.os}/${platform.architecture}`} ${blobs.length} blobs`),
    index: (m: RawManifest) => void log.push(`index ${graph.name(m)}`),
    tooDeep: (m: RawManifest) => {
      log.push(`too deep ${graph.name(m)}`);
      if (opts.deep !== 'keep') throw new Error(`${graph.name(m)} is too deep`);
    },
  };
  const get = (d: Descriptor): RawManifest | undefined => {
    log.push(`get ${graph.name(d)}`);
    return opts.missing?.has(d.digest) === true ? undefined : graph.byDigest.get(d.digest);
  };
  if (opts.sync === true) {
    walkManifestsSync(top, { ...hooks, child: get });
  } else {
    await walkManifests(top, {
      ...hooks,
      child: async (d) => {
        const m = get(d);
        await new Promise((resolve) => setTimeout(resolve, 1));
        return m;
      },
    });
  }
  return log;
}

/** top → [a (amd64), nested → [b (arm64), c]], nested given a platform c inherits. */
function nested(): { graph: Graph; top: RawManifest } {
  const graph = new Graph();
  const a = graph.image('a');
  const b = graph.image('b', 2);
  const c = graph.image('c');
  const inner = graph.index('nested', [desc(b, ARM64), desc(c)]);
  const top = graph.index('top', [desc(a, AMD64), desc(inner, AMD64)]);
  return { graph, top };
}

describe('walkManifests', () => {
  it('visits children before the index that lists them, fetching one child at a time in list order', async () => {
    const { graph, top } = nested();
    expect(await logWalk(graph, top)).toEqual([
      'desc a',
      'get a',
      'manifest a linux/amd64 2 blobs',
      'desc nested',
      'get nested',
      'desc b',
      'get b',
      'manifest b linux/arm64 3 blobs',
      'desc c',
      'get c',
      'manifest c linux/amd64 2 blobs', // no platform of its own: the nearest index descriptor's
      'index nested',
      'index top',
    ]);
  });

  it('walks a single manifest alone, with no platform', async () => {
    const graph = new Graph();
    expect(await logWalk(graph, graph.image('solo'))).toEqual(['manifest solo - 2 blobs']);
  });

  it('walks the same with the sync driver', async () => {
    const { graph, top } = nested();
    expect(await logWalk(graph, top, { sync: true })).toEqual(await logWalk(graph, top));
  });

  it('fetches and enters a child listed many times, at every level, once; the descriptor hook sees every listing', async () => {
    const graph = new Graph();
    let level = graph.image('leaf');
    for (let i = 0; i < 3; i++)
      level = graph.index(
        `level ${i}`,
        Array.from({ length: 10 }, () => desc(level, AMD64)),
      );
    const log = await logWalk(graph, level);
    expect(log.filter((l) => l.startsWith('get '))).toEqual(['get level 1', 'get level 0', 'get leaf']);
    expect(log.filter((l) => l.startsWith('manifest ') || l.startsWith('index '))).toEqual([
      'manifest leaf linux/amd64 2 blobs',
      'index level 0',
      'index level 1',
      'index level 2',
    ]);
    expect(log.filter((l) => l.startsWith('desc '))).toHaveLength(30);
  });

  it('visits a manifest once across walks that share `seen`, and not a top already seen', async () => {
    const graph = new Graph();
    const shared = graph.image('shared');
    const one = graph.index('one', [desc(shared, AMD64)]);
    const own = graph.image('own');
    const two = graph.index('two', [desc(shared, AMD64), desc(own, ARM64)]);
    const seen = new Set<Digest>();
    expect(await logWalk(graph, one, { seen })).toEqual(['desc shared', 'get shared', 'manifest shared linux/amd64 2 blobs', 'index one']);
    expect(await logWalk(graph, two, { seen })).toEqual(['desc shared', 'desc own', 'get own', 'manifest own linux/arm64 2 blobs', 'index two']);
    expect(await logWalk(graph, one, { seen })).toEqual([]);
    expect(seen).toEqual(new Set([one, shared, two, own].map((m) => m.digest)));
  });

  it('does not enter again a manifest a getter answers with when it was already entered (no loop)', async () => {
    const graph = new Graph();
    const leaf = graph.image('leaf');
    const top = graph.index('top', [desc(leaf), desc(graph.image('other'))]);
    // A getter that answers every request with the top itself: the walk must not recurse into it.
    const log: string[] = [];
    await walkManifests(top, {
      child: async (d) => {
        log.push(`get ${graph.name(d)}`);
        return top;
      },
      index: (m) => void log.push(`index ${graph.name(m)}`),
      tooDeep: () => {
        throw new Error('followed a loop');
      },
    });
    expect(log).toEqual(['get leaf', 'get other', 'index top']);
  });

  it('leaves out a child the getter does not give, and keeps walking', async () => {
    const { graph, top } = nested();
    const log = await logWalk(graph, top, { missing: new Set([graph.named('b').digest]) });
    expect(log).toContain('get b');
    expect(log.some((l) => l.startsWith('manifest b'))).toBe(false);
    expect(log.slice(-3)).toEqual(['manifest c linux/amd64 2 blobs', 'index nested', 'index top']);
  });

  it('stops with the error of a getter that fails, visiting nothing after it', async () => {
    const { graph, top } = nested();
    const visited: string[] = [];
    const walk = walkManifests(top, {
      child: async (d) => {
        if (graph.name(d) === 'nested') throw new Error('no such manifest');
        return graph.byDigest.get(d.digest);
      },
      manifest: (m) => void visited.push(graph.name(m)),
      index: (m) => void visited.push(graph.name(m)),
      tooDeep: () => undefined,
    });
    await expect(walk).rejects.toThrow('no such manifest');
    expect(visited).toEqual(['a']);
  });

  it(`follows indexes nested ${MAX_INDEX_DEPTH} deep and stops at the next level, refusing or keeping it without its children`, async () => {
    const chain = (levels: number): { graph: Graph; top: RawManifest } => {
      const graph = new Graph();
      let m = graph.image('leaf');
      for (let i = levels - 1; i >= 0; i--) m = graph.index(`depth ${i}`, [desc(m, AMD64)]);
      return { graph, top: m };
    };
    const ok = chain(MAX_INDEX_DEPTH); // indexes at depths 0..3, the manifest at 4
    expect((await logWalk(ok.graph, ok.top)).filter((l) => !l.startsWith('desc ') && !l.startsWith('get '))).toEqual([
      'manifest leaf linux/amd64 2 blobs',
      ...Array.from({ length: MAX_INDEX_DEPTH }, (_, i) => `index depth ${MAX_INDEX_DEPTH - 1 - i}`),
    ]);

    const deep = chain(MAX_INDEX_DEPTH + 1); // an index at depth 4
    await expect(logWalk(deep.graph, deep.top)).rejects.toThrow(`depth ${MAX_INDEX_DEPTH} is too deep`);
    expect(() =>
      walkManifestsSync(deep.top, {
        child: (d) => deep.graph.byDigest.get(d.digest),
        tooDeep: () => {
          throw new Error('refused');
        },
      }),
    ).toThrow('refused');

    const kept = await logWalk(deep.graph, deep.top, { deep: 'keep' });
    expect(kept).not.toContain('get leaf');
    expect(kept.filter((l) => !l.startsWith('desc ') && !l.startsWith('get '))).toEqual([
      `too deep depth ${MAX_INDEX_DEPTH}`,
      ...Array.from({ length: MAX_INDEX_DEPTH + 1 }, (_, i) => `index depth ${MAX_INDEX_DEPTH - i}`),
    ]);
  });

  it('refuses a graph of more distinct manifests than the cap, after fetching the one over it, and allows exactly the cap', async () => {
    const graph = new Graph();
    const children = ['a', 'b', 'c'].map((n) => desc(graph.image(n), AMD64));
    const top = graph.index('top', [...children, children[0]!]);
    const cap = (manifests: number): WalkOptions['cap'] => ({ manifests, exceeded: () => new Error(`more than ${manifests}`) });
    await expect(logWalk(graph, top, { cap: cap(4) })).resolves.toContain('index top'); // top + 3 children
    const log: string[] = [];
    const seen = new Set<Digest>();
    await expect(
      walkManifests(top, {
        seen,
        cap: cap(3),
        child: async (d) => (log.push(`get ${graph.name(d)}`), graph.byDigest.get(d.digest)),
        manifest: (m) => void log.push(`manifest ${graph.name(m)}`),
        tooDeep: () => undefined,
      }),
    ).rejects.toThrow('more than 3');
    expect(log).toEqual(['get a', 'manifest a', 'get b', 'manifest b', 'get c']);
    // A manifest already seen does not count again: the repeat of a stays under the cap.
    expect(seen.size).toBe(4);
  });

  it('awaits each hook before the next: a slow manifest hook holds the next request back', async () => {
    const { graph, top } = nested();
    const log: string[] = [];
    await walkManifests(top, {
      child: (d) => (log.push(`get ${graph.name(d)}`), graph.byDigest.get(d.digest)),
      manifest: async (m) => {
        log.push(`start ${graph.name(m)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        log.push(`end ${graph.name(m)}`);
      },
      tooDeep: () => undefined,
    });
    expect(log).toEqual(['get a', 'start a', 'end a', 'get nested', 'get b', 'start b', 'end b', 'get c', 'start c', 'end c']);
  });
});

describe('manifestReferences', () => {
  it('gives an index its children and a manifest its config then layers, without foreign layers', () => {
    const graph = new Graph();
    const config = graph.blob('config', MediaType.OciConfig);
    const layer = graph.blob('layer');
    const foreign = graph.blob('windows base', MediaType.DockerForeignLayerGzip);
    const m = graph.put('m', { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [foreign, layer] });
    expect(manifestReferences(m).map((d) => d.digest)).toEqual([config.digest, layer.digest]);
    const index = graph.index('i', [desc(m, AMD64)]);
    expect(manifestReferences(index)).toEqual([desc(m, AMD64)]);
  });
});
