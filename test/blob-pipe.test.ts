/**
 * The off-thread blob read path (src/blobs/blob-pipe.ts, native/blobreader.c)
 * against real skopeo, on a 1 GiB layer (a sparse file of zeros, so building
 * it costs no disk and little time): a paused consumer holds the reads, RSS
 * stays flat with 1 GiB unread; destroying a stream mid-read leaves no reader
 * thread and no fd; the 1 GiB read to the end verifies. Corrupted, short and
 * wrong-size blobs through this path: test/proxy.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, ftruncateSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, type OpenedImage } from '../src/index.js';
import { baseConfig, eventually, openFds, readerThreads, tempDir, watchdog } from './support/env.js';
import { writeImage } from './support/oci-layout.js';
import { DEFAULT_TRANSFER, TRANSFERS } from './support/skopeo-release.js';

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
const scratch = tempDir();
let proxy: ImageProxy;
let image: OpenedImage;
let digest: string;

before(async () => {
  const layout = join(scratch.path, 'layout');
  const zeros = Buffer.alloc(MiB);
  const hash = createHash('sha256');
  for (let i = 0; i < GiB / MiB; i++) hash.update(zeros);
  digest = `sha256:${hash.digest('hex')}`;
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const fd = openSync(join(layout, 'blobs', 'sha256', digest.slice(7)), 'w');
  ftruncateSync(fd, GiB);
  closeSync(fd);
  writeImage(layout, 'zeros', [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: GiB, diffId: digest }]);
  proxy = await ImageProxy.spawn(baseConfig());
  image = await proxy.openImage(`oci:${layout}:zeros`);
});

after(async () => {
  await image?.close();
  await proxy?.close();
  scratch[Symbol.dispose]();
});

describe('blob pipes read off the main thread', () => {
  for (const transfer of TRANSFERS) {
    it(`a paused consumer holds the reads: 1 GiB unread, bytes received and RSS stay flat (${transfer}${transfer === DEFAULT_TRANSFER ? ', then read to the end and verified' : ''})`, async () => {
      const rssBefore = process.memoryUsage.rss();
      const stream = await proxy.getBlob(image, digest, GiB, { transfer });
      await once(stream, 'readable'); // a chunk is in; nobody reads it
      await sleep(300);
      const held = stream.bytesReceived;
      const rssHeld = process.memoryUsage.rss();
      await sleep(1000);
      assert.equal(stream.bytesReceived, held, 'no read while the consumer is paused');
      // The stream buffers one 256 KiB block (its high-water mark); the reader thread's block read ahead is not delivered.
      assert.ok(held <= 512 * 1024, `at most the stream's high-water mark and one chunk, got ${held} bytes`);
      const rss = process.memoryUsage.rss();
      assert.ok(rss - rssHeld < 8 * MiB, `RSS grew by ${((rss - rssHeld) / MiB).toFixed(1)} MiB while paused`);
      assert.ok(rss - rssBefore < 32 * MiB, `RSS grew by ${((rss - rssBefore) / MiB).toFixed(1)} MiB with 1 GiB unread`);
      if (transfer !== DEFAULT_TRANSFER) {
        stream.destroy();
        return;
      }
      let bytes = 0;
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          callback();
        },
      });
      await watchdog(120_000, '1 GiB read', pipeline(stream, sink)); // ends only once the digest verified
      assert.equal(bytes, GiB);
      assert.ok(process.memoryUsage.rss() - rssBefore < 64 * MiB, 'streaming 1 GiB does not hold it');
    });

    it(`destroy() mid-read leaves no reader thread and no fd, and the proxy keeps serving (${transfer})`, async () => {
      const threads = readerThreads();
      const fds = openFds();
      const stream = await proxy.getBlob(image, digest, GiB, { transfer });
      let seen = 0;
      let threadsWhileReading = -1;
      await assert.rejects(
        pipeline(
          stream,
          new Writable({
            write(chunk: Buffer, _encoding, callback) {
              seen += chunk.length;
              if (seen < 16 * MiB) return callback();
              threadsWhileReading = readerThreads();
              callback(new Error('consumer gave up'));
            },
          }),
        ),
        /consumer gave up/,
      );
      assert.equal(threadsWhileReading, threads + 1, 'one reader thread while reading');
      assert.equal(readerThreads(), threads, 'the reader thread is joined when the stream is destroyed');
      assert.ok(await eventually(() => openFds().length === fds.length), `fds: ${fds.length} before, ${openFds().length} after`);
      assert.equal((await proxy.fetchConfig(image)).architecture, 'amd64', 'proxy still serves requests');
    });
  }
});
