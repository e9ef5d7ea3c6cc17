/**
 * respondWithBlob over a real node:http server and client on 127.0.0.1,
 * fed by streams the test controls (what the proxy's blob streams would
 * give: chunks, an error, a wait): the held-back last chunk, backpressure
 * bounded by MAX_QUEUED_BYTES, and what a client that goes away leaves.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { respondWithBlob, type BlobOutcome } from '../../src/serve/blob-responder.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

interface Answered {
  res: ServerResponse;
  /** The response's close and drain listeners before respondWithBlob ran. */
  listeners: { close: number; drain: number };
  sent: { bytes: number };
  outcome: Promise<BlobOutcome>;
}

/** A server on 127.0.0.1 answering its one request with respondWithBlob(open); `answered` once it was called. */
async function blobServer(open: () => Promise<Readable>, size: number, clientIdleTimeoutMs: number) {
  let answer!: (answered: Answered) => void;
  const answered = new Promise<Answered>((resolve) => (answer = resolve));
  const server = createServer((_req, res) => {
    const sent = { bytes: 0 };
    const listeners = { close: res.listenerCount('close'), drain: res.listenerCount('drain') };
    answer({ res, listeners, sent, outcome: respondWithBlob(res, open, { digest: DIGEST, size }, clientIdleTimeoutMs, sent) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    answered,
    get: (onResponse: (res: IncomingMessage) => void): ReturnType<typeof request> => {
      const req = request({ host: '127.0.0.1', port, path: '/blob', agent: false }, onResponse);
      req.on('error', () => {});
      req.end();
      return req;
    },
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** `count` chunks of `size` bytes, made as they are read; `pulled` counts the bytes read so far. */
function source(count: number, size: number): { stream: Readable; pulled: () => number } {
  let made = 0;
  const stream = new Readable({
    read() {
      this.push(made < count ? Buffer.alloc(size, made++ % 251) : null);
    },
  });
  return { stream, pulled: () => made * size };
}

/** Reads a whole response: its status, headers, body and whether it was complete. */
function readAll(res: IncomingMessage): Promise<{ res: IncomingMessage; body: Buffer; complete: boolean }> {
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => res.on('close', () => resolve({ res, body: Buffer.concat(chunks), complete: res.complete })));
}

/** The MaxListenersExceededWarnings `work` makes (a listener left behind per chunk or per wait). */
async function listenerWarnings(work: () => Promise<void>): Promise<string[]> {
  const warnings: string[] = [];
  const onWarning = (warning: Error): void => {
    if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning.message);
  };
  process.on('warning', onWarning);
  try {
    await work();
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', onWarning);
  }
  return warnings;
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('respondWithBlob', () => {
  it('a blob of many small chunks goes out whole with its headers, counted in sent, without waiting for the client or leaving a listener', async () => {
    const { stream } = source(512, 1024);
    // 1 ms: a wait for drain would cut the client off; under 1 MiB queued there is none.
    await using server = await blobServer(async () => stream, 512 * 1024, 1);
    const warnings = await listenerWarnings(async () => {
      const got = await new Promise<Awaited<ReturnType<typeof readAll>>>((resolve) => server.get((res) => resolve(readAll(res))));
      const { sent, outcome } = await server.answered;
      assert.equal(await outcome, 'complete');
      assert.deepEqual([got.res.statusCode, got.res.headers['content-type'], got.res.headers['content-length'], got.res.headers['docker-content-digest']], [200, 'application/octet-stream', String(512 * 1024), DIGEST]);
      assert.equal(got.complete, true);
      assert.equal(got.body.length, 512 * 1024);
      assert.ok(got.body.subarray(511 * 1024).every((byte) => byte === 511 % 251), 'the held-back last chunk is there');
      assert.equal(sent.bytes, 512 * 1024);
    });
    assert.deepEqual(warnings, []);
  });

  it('a client that does not read holds the source: what is read from it stays bounded; once the client reads, all of it', async () => {
    const count = 512;
    const size = 64 * 1024; // 32 MiB in all, far beyond what sockets buffer (about 5 MiB go out before the wait here)
    const { stream, pulled } = source(count, size);
    await using server = await blobServer(async () => stream, count * size, 60_000);
    const warnings = await listenerWarnings(async () => {
      let response!: IncomingMessage;
      const responded = new Promise<void>((resolve) =>
        server.get((res) => {
          res.pause();
          response = res;
          resolve();
        }),
      );
      const { res, listeners, sent, outcome } = await server.answered;
      await responded;
      await eventually(() => res.listenerCount('drain') > listeners.drain || pulled() === count * size, 'the blob to wait for the client');
      assert.ok(pulled() < (count * size) / 2, `${pulled()} bytes read from the source while the client read nothing`);
      assert.ok(res.listenerCount('close') <= listeners.close + 1, `${res.listenerCount('close') - listeners.close} close listeners: one for the wait under way at most`);
      const got = readAll(response);
      response.resume();
      const { body, complete } = await got;
      assert.equal(await outcome, 'complete');
      assert.equal(complete, true);
      assert.equal(body.length, count * size);
      assert.equal(sent.bytes, count * size);
    });
    assert.deepEqual(warnings, [], 'no listener left per wait');
  });

  it('a source that fails after the first bytes went out: the connection is cut short of Content-Length, the outcome is failed', async () => {
    let made = 0;
    const stream = new Readable({
      read() {
        if (made++ < 3) this.push(Buffer.alloc(1024, 1));
        else this.destroy(new Error('digest mismatch'));
      },
    });
    await using server = await blobServer(async () => stream, 8 * 1024, 10_000);
    const answer = new Promise<Awaited<ReturnType<typeof readAll>>>((resolve) => server.get((res) => resolve(readAll(res))));
    const { outcome } = await server.answered;
    assert.equal(await outcome, 'failed');
    const got = await answer;
    assert.equal(got.res.statusCode, 200);
    assert.equal(got.complete, false);
    assert.ok(got.body.length < 8 * 1024);
    assert.equal(stream.destroyed, true);
  });

  it('a client gone before the blob opened: the blob is given up at once, not read through', async () => {
    let release!: (stream: Readable) => void;
    const opened = new Promise<Readable>((resolve) => (release = resolve));
    const { stream, pulled } = source(1024, 64 * 1024);
    await using server = await blobServer(() => opened, 1024 * 64 * 1024, 10_000);
    const req = server.get(() => {});
    const { res, outcome } = await server.answered;
    req.destroy();
    if (!res.destroyed) await once(res, 'close');
    const readThrough = once(stream, 'end').then(() => 'read to its end');
    release(stream);
    assert.equal(await Promise.race([outcome, readThrough]), 'client-gone');
    assert.equal(stream.destroyed, true);
    assert.ok(pulled() <= 2 * 64 * 1024, `${pulled()} bytes read for a client that was gone`);
  });
});
