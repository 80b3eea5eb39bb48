import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BlobFeed } from '../../src/copy/blob-feed.js';
import type { PlannedBlob } from '../../src/copy/plan.js';
import type { Source } from '../../src/transport/types.js';
import { sha256Digest } from '../../src/digest/digest.js';

function fakeSource(log: string[], fail?: string): Source {
  return {
    description: 'fake',
    getManifest: () => Promise.reject(new Error('unused')),
    listTags: () => Promise.resolve([]),
    openBlob: async (_repo, desc) => {
      log.push(`open ${desc.mediaType}`);
      if (desc.mediaType === fail) throw new Error(`cannot open ${fail}`);
      const s = Readable.from([Buffer.from(desc.mediaType)]);
      s.on('close', () => log.push(`closed ${desc.mediaType}`));
      return s;
    },
  };
}

function blobs(source: Source, names: string[]): PlannedBlob[] {
  return names.map((n) => ({ desc: { mediaType: n, digest: sha256Digest(n), size: n.length }, source, repository: 'r' }));
}

describe('BlobFeed', () => {
  it('hands blobs out in order while opening the next ones ahead', async () => {
    const log: string[] = [];
    const feed = new BlobFeed(blobs(fakeSource(log), ['a', 'b', 'c', 'd', 'e']), 2);
    const first = await feed.next();
    expect(first?.blob.desc.mediaType).toBe('a');
    expect(log.filter((l) => l.startsWith('open'))).toEqual(['open a', 'open b', 'open c', 'open d']);
    const order = [first!.blob.desc.mediaType];
    for (let n = await feed.next(); n !== undefined; n = await feed.next()) order.push(n.blob.desc.mediaType);
    expect(order).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('reports an open failure when that blob is asked for, not before', async () => {
    const log: string[] = [];
    const feed = new BlobFeed(blobs(fakeSource(log, 'c'), ['a', 'b', 'c']), 3);
    expect((await feed.next())?.blob.desc.mediaType).toBe('a');
    expect((await feed.next())?.blob.desc.mediaType).toBe('b');
    await expect(feed.next()).rejects.toThrow('cannot open c');
  });

  it('closes what it opened ahead when closed early', async () => {
    const log: string[] = [];
    const feed = new BlobFeed(blobs(fakeSource(log), ['a', 'b', 'c']), 2);
    (await feed.next())!.body.destroy();
    await feed.close();
    await new Promise((r) => setImmediate(r));
    expect(log).toContain('closed b');
    expect(log).toContain('closed c');
  });
});
