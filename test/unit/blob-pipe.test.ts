/**
 * BlobPipe (src/blobs/blob-pipe.ts) on a real pipe, a FIFO written by a child
 * process in bursts of odd sizes: the same bytes, and the same digests as
 * node:crypto, whether hashed on the reader thread or on the main thread; a
 * paused pipe stops reading; destroy() ends the reader thread and closes the
 * fd. The streams built on it are tested against real skopeo in
 * test/proxy.test.ts and test/blob-pipe.test.ts.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto, { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { BlobPipe, offThreadHashing } from '../../src/blobs/blob-pipe.js';
import { native } from '../../src/native.js';
import { eventually, readerThreads, tempDir } from '../support/env.js';

// Writes FILE into fd 3 (the FIFO) in pieces of the given sizes (cycled), with a pause of PAUSE_MS after each.
const WRITER = `
const fs = require('node:fs');
const [file, sizes, pauseMs] = process.argv.slice(1);
const data = fs.readFileSync(file);
const pieces = sizes.split(',').map(Number);
const fd = 3;
let at = 0, i = 0;
(function next() {
  while (at < data.length) {
    const n = Math.min(pieces[i++ % pieces.length], data.length - at);
    fs.writeSync(fd, data, at, n);
    at += n;
    if (Number(pauseMs) > 0) return setTimeout(next, Number(pauseMs));
  }
  fs.closeSync(fd);
})();
`;

interface Fixture {
  data: Buffer;
  pipe: BlobPipe;
  fd: number;
  writer: ChildProcess;
  [Symbol.dispose](): void;
}

/** A FIFO with a child writing `data` into it, and a BlobPipe reading it. */
function pipeOf(data: Buffer, options: ConstructorParameters<typeof BlobPipe>[1], sizes = [1, 4096, 65_537, 1 << 20, 300_000], pauseMs = 20): Fixture {
  const dir = tempDir();
  const file = join(dir.path, 'data');
  writeFileSync(file, data);
  const fifo = join(dir.path, 'fifo');
  native.mknod(Buffer.from(fifo), 'fifo', 0o600, 0, 0);
  const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  // Opened here, before the reader starts: a FIFO with no writer yet reads as EOF.
  const writeEnd = openSync(fifo, 'w');
  const writer = spawn(process.execPath, ['-e', WRITER, file, sizes.join(','), String(pauseMs)], { stdio: ['ignore', 'ignore', 'ignore', writeEnd] });
  closeSync(writeEnd);
  const pipe = new BlobPipe(fd, options);
  return {
    data,
    pipe,
    fd,
    writer,
    [Symbol.dispose]() {
      pipe.destroy();
      writer.kill();
      dir[Symbol.dispose]();
    },
  };
}

/** A 1 MiB FIFO whose two ends this process holds, both non-blocking: the read end for a BlobPipe, the write end for the test. */
function fifoEnds(): { readFd: number; writeFd: number; [Symbol.dispose](): void } {
  const dir = tempDir();
  const fifo = join(dir.path, 'fifo');
  native.mknod(Buffer.from(fifo), 'fifo', 0o600, 0, 0);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  native.setPipeSize(writeFd, 1024 * 1024);
  return { readFd, writeFd, [Symbol.dispose]: () => dir[Symbol.dispose]() };
}

/** Reads the pipe to its end, keeping every chunk as delivered (a consumer that holds on to them). */
function readAll(pipe: BlobPipe): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    pipe.on('data', (chunk) => chunks.push(chunk));
    pipe.on('end', () => resolve(chunks));
    pipe.on('error', reject);
    pipe.resume();
  });
}

/**
 * The algorithms of the node:crypto hashes `make` creates: node:crypto's
 * createHash is wrapped for its duration, the ESM bindings synced.
 */
function hashesMadeWhile(make: () => void): string[] {
  const made: string[] = [];
  const original = crypto.createHash;
  crypto.createHash = ((algorithm: string, options?: crypto.HashOptions) => {
    made.push(algorithm);
    return original(algorithm, options);
  }) as typeof crypto.createHash;
  syncBuiltinESMExports();
  try {
    make();
  } finally {
    crypto.createHash = original;
    syncBuiltinESMExports();
  }
  return made;
}

describe('BlobPipe', () => {
  it('the addon hashes off the main thread here (the Node process has OpenSSL)', () => {
    assert.equal(offThreadHashing, true);
  });

  for (const hashOffThread of [true, false]) {
    for (const algorithm of ['sha256', 'sha384', 'sha512']) {
      it(`gives the bytes written, and node:crypto's ${algorithm} digest (hashed on the ${hashOffThread ? 'reader' : 'main'} thread)`, async () => {
        using fixture = pipeOf(randomBytes(5 * 1024 * 1024 + 12_345), { algorithm, hashOffThread });
        const chunks = await readAll(fixture.pipe);
        // Chunks are kept until the end: a buffer read into again would have changed an earlier one.
        assert.ok(Buffer.concat(chunks).equals(fixture.data), 'the same bytes, in order');
        assert.ok(chunks.some((chunk) => chunk.length < 64 * 1024), 'small chunks were delivered too (the copy path ran)');
        assert.equal(fixture.pipe.digest(), createHash(algorithm).update(fixture.data).digest('hex'));
      });
    }
  }

  it('hashes on the reader thread by default, on the main thread with hashOffThread: false, and not at all without an algorithm', () => {
    using fifo = fifoEnds();
    const made = (options: ConstructorParameters<typeof BlobPipe>[1]): string[] =>
      hashesMadeWhile(() => new BlobPipe(openSync(`/proc/self/fd/${fifo.readFd}`, constants.O_RDONLY | constants.O_NONBLOCK), options).destroy());
    assert.deepEqual(made({ algorithm: 'sha256' }), [], 'default: no node:crypto hash on the main thread');
    assert.deepEqual(made({ algorithm: 'sha256', hashOffThread: true }), []);
    assert.deepEqual(made({ algorithm: 'sha384', hashOffThread: false }), ['sha384']);
    assert.deepEqual(made({}), []);
    assert.deepEqual(made({ hashOffThread: false }), []);
  });

  it('reads an empty pipe to its end, with the digest of nothing', async () => {
    using fixture = pipeOf(Buffer.alloc(0), { algorithm: 'sha256' });
    assert.deepEqual(await readAll(fixture.pipe), []);
    assert.equal(fixture.pipe.digest(), createHash('sha256').digest('hex'));
  });

  it('without an algorithm there is no digest', async () => {
    using fixture = pipeOf(Buffer.alloc(1000, 1), {});
    assert.equal(Buffer.concat(await readAll(fixture.pipe)).length, 1000);
    assert.throws(() => fixture.pipe.digest(), { message: 'BlobPipe.digest(): not hashing, or the pipe has not ended' });
  });

  for (const hashOffThread of [true, false]) {
    it(`gives no digest before the end, not a digest of the bytes so far (hashed on the ${hashOffThread ? 'reader' : 'main'} thread)`, async () => {
      using fixture = pipeOf(randomBytes(256 * 1024), { algorithm: 'sha256', hashOffThread }, [64 * 1024], 0);
      await new Promise<void>((resolve) => {
        fixture.pipe.once('data', () => resolve());
        fixture.pipe.resume();
      });
      assert.throws(() => fixture.pipe.digest(), { message: 'BlobPipe.digest(): not hashing, or the pipe has not ended' });
      fixture.pipe.destroy();
    });
  }

  it('reads nothing until resumed, and stops reading while paused (the writer blocks on the full pipe)', async () => {
    using fixture = pipeOf(randomBytes(16 * 1024 * 1024), { algorithm: 'sha256' }, [1 << 20], 0);
    let received = 0;
    let atPause = -1;
    fixture.pipe.on('data', (chunk) => {
      received += chunk.length;
      if (received >= 3 * 1024 * 1024 && atPause === -1) {
        atPause = received;
        fixture.pipe.pause();
      }
    });
    assert.equal(fixture.pipe.isPaused(), true, 'made paused');
    await sleep(200);
    assert.equal(received, 0, 'made paused: no read before resume()');
    const ended = new Promise<void>((resolve) => fixture.pipe.on('end', resolve));
    fixture.pipe.resume();
    await eventually(() => fixture.pipe.isPaused());
    await sleep(300);
    const held = received;
    await sleep(300);
    assert.equal(received, held, 'no chunk while paused');
    assert.equal(held, atPause, 'no chunk after pause(), though the reader thread had read ahead');
    assert.equal(fixture.writer.exitCode, null, 'the writer is still blocked on the pipe');
    fixture.pipe.resume();
    await ended;
    assert.equal(received, fixture.data.length);
    assert.equal(fixture.pipe.digest(), createHash('sha256').update(fixture.data).digest('hex'));
  });

  it('reads one block ahead while the consumer is busy, and no further', async () => {
    // A 1 MiB FIFO filled by this process: the bytes the reader thread takes
    // out show up as room for more non-blocking writes.
    using fifo = fifoEnds();
    const { writeFd } = fifo;
    const pipe = new BlobPipe(fifo.readFd, { algorithm: 'sha256' });
    try {
      const piece = Buffer.alloc(64 * 1024, 1);
      const room = (): number => {
        let written = 0;
        for (;;) {
          try {
            written += writeSync(writeFd, piece);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return written;
            throw error;
          }
        }
      };
      assert.ok(room() >= 1024 * 1024, 'the FIFO took 1 MiB');
      const taken = await new Promise<{ first: number; freed: number }>((resolve) => {
        pipe.once('data', (chunk: Buffer) => {
          // The loop is busy in this handler: the thread goes on without it.
          const until = Date.now() + 300;
          while (Date.now() < until) {
            /* busy */
          }
          resolve({ first: chunk.length, freed: room() });
          pipe.pause();
        });
        pipe.resume();
      });
      assert.equal(taken.first, 256 * 1024, 'a full block first');
      assert.equal(taken.freed, 2 * 256 * 1024, 'the delivered block and exactly one read ahead left the FIFO');
    } finally {
      pipe.destroy();
      closeSync(writeFd);
    }
  });

  it('hands over one chunk per turn of the event loop: timers and immediates run between chunks', async () => {
    // 1 MiB is in the FIFO before the first read, so the thread has the next
    // block ready long before each slow handler returns; still, what the
    // handler scheduled runs before the next chunk.
    using fifo = fifoEnds();
    assert.equal(writeSync(fifo.writeFd, Buffer.alloc(1024 * 1024, 7)), 1024 * 1024);
    closeSync(fifo.writeFd);
    const pipe = new BlobPipe(fifo.readFd, { algorithm: 'sha256' });
    try {
      const events: string[] = [];
      await new Promise<void>((resolve, reject) => {
        pipe.on('data', (chunk: Buffer) => {
          events.push(`data ${chunk.length}`);
          const until = Date.now() + 30; // a slow consumer: the thread reads on meanwhile
          while (Date.now() < until) {
            /* busy */
          }
          setImmediate(() => events.push('immediate'));
        });
        pipe.on('end', () => setImmediate(resolve));
        pipe.on('error', reject);
        pipe.resume();
      });
      const data = 'data 262144';
      assert.deepEqual(events, [data, 'immediate', data, 'immediate', data, 'immediate', data, 'immediate']);
    } finally {
      pipe.destroy();
    }
  });

  for (const hashOffThread of [true, false]) {
    it(`a read that fails: the error, once, then no digest (hashed on the ${hashOffThread ? 'reader' : 'main'} thread)`, async () => {
      // A directory's fd stands in for the pipe: read() fails with EISDIR (a FIFO never fails a read).
      using dir = tempDir();
      const pipe = new BlobPipe(openSync(dir.path, constants.O_RDONLY | constants.O_DIRECTORY), { algorithm: 'sha256', hashOffThread });
      const events: string[] = [];
      pipe.on('end', () => events.push('end'));
      pipe.on('data', () => events.push('data'));
      const error = await new Promise<NodeJS.ErrnoException>((resolve) => {
        pipe.on('error', (failure) => {
          events.push('error');
          resolve(failure);
        });
        pipe.resume();
      });
      assert.equal(error.code, 'EISDIR');
      assert.throws(() => pipe.digest(), { message: 'BlobPipe.digest(): not hashing, or the pipe has not ended' });
      await sleep(50);
      assert.deepEqual(events, ['error']);
    });
  }

  it('destroy() mid-read ends the reader thread and closes the fd, with no event after; pause(), resume() and destroy() after it do nothing', async () => {
    const before = readerThreads();
    using fixture = pipeOf(randomBytes(8 * 1024 * 1024), { algorithm: 'sha256' }, [65_536], 10);
    const events: string[] = [];
    fixture.pipe.on('end', () => events.push('end'));
    fixture.pipe.on('error', () => events.push('error'));
    await new Promise<void>((resolve) => {
      fixture.pipe.on('data', () => resolve());
      fixture.pipe.resume();
    });
    assert.equal(readerThreads(), before + 1, 'one reader thread while reading');
    assert.ok(existsSync(`/proc/self/fd/${fixture.fd}`));
    fixture.pipe.on('data', () => events.push('data'));
    fixture.pipe.destroy();
    assert.equal(readerThreads(), before, 'the thread is joined by destroy()');
    assert.equal(existsSync(`/proc/self/fd/${fixture.fd}`), false, 'the fd is closed');
    fixture.pipe.pause();
    fixture.pipe.resume();
    fixture.pipe.destroy();
    assert.equal(readerThreads(), before, 'no thread after calls on a destroyed pipe');
    await sleep(100);
    assert.deepEqual(events, []);
  });
});
