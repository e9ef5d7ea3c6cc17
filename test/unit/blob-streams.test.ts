/**
 * The two blob streams (src/blobs/raw-blob-stream.ts, finish-pipe-stream.ts)
 * without skopeo: real FIFOs stand in for the proxy's data and error pipes,
 * and a PipeOwner of the test's answers FinishPipe, so that the outcomes
 * real skopeo rarely or never produces (an error pipe that talks and a data
 * pipe that ends whole, a death after a short pipe, a FinishPipe failure of
 * each kind, a source longer than its size with the excess in reads of its
 * own, a GetBlob size of -1, a verdict slow to come, a data pipe whose read
 * fails: a directory's fd) are each checked. Stryker survivors of the
 * integration files (see MUTATION.md).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { FinishPipeBlobStream, type FinishPipeStreamOptions } from '../../src/blobs/finish-pipe-stream.js';
import { parseRawBlobError, RawBlobStream } from '../../src/blobs/raw-blob-stream.js';
import { hashAlgorithm, HIGH_WATER_MARK, IdleTimer, watchSignal } from '../../src/blobs/stream-kit.js';
import { BlobVerificationError, InvalidArgumentError, ProtocolError, RequestError, StallError } from '../../src/errors.js';
import { native } from '../../src/native.js';
import { DualReply, PipeReply, type PipeOwner, type ReplyDeadline } from '../../src/replies.js';
import { watchdog } from '../support/env.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (data: Buffer | string): string => 'sha256:' + createHash('sha256').update(data).digest('hex');

const fifoDir = mkdtempSync(join(tmpdir(), 'cip-blob-streams-'));
after(() => rmSync(fifoDir, { recursive: true, force: true }));
let fifos = 0;

/** A FIFO's two ends (kept under 64 KiB of data: the test writes it in one go). */
function pipe(nonBlockingWrite = false): { read: number; write: number } {
  const path = join(fifoDir, `fifo-${fifos++}`);
  native.mknod(Buffer.from(path), 'fifo', 0o600, 0, 0);
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY | (nonBlockingWrite ? constants.O_NONBLOCK : 0));
  return { read, write };
}

/** Writes `data` (if any) and closes the write end unless `keepOpen`. */
function feed(fd: number, data: Buffer | string | undefined, keepOpen = false): void {
  if (data !== undefined && data.length > 0) writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  if (!keepOpen) closeSync(fd);
}

/** Reads a stream to its end or error: the bytes, and the error. */
async function drain(stream: Readable): Promise<{ bytes: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}

interface RawCase {
  data?: Buffer | string;
  /** What the error pipe carries (closed after). */
  errors?: Buffer | string;
  digest?: string;
  expectedSize?: number;
  /** What the transport reports when the stream asks whether the proxy died. */
  died?: Error;
  bodyIdleTimeoutMs?: number;
  signal?: AbortSignal;
  /** Leave the data pipe's write end open (returned). */
  keepDataOpen?: boolean;
}

/** A RawBlobStream over two FIFOs fed with `data` and `errors`. */
function raw(c: RawCase): { stream: RawBlobStream; dataWrite: number; asked: number[] } {
  const data = pipe();
  const errors = pipe();
  const asked: number[] = [];
  const reply = new DualReply({}, data.read, errors.read, {
    failureWithin: (ms) => {
      asked.push(ms);
      return Promise.resolve(c.died);
    },
  });
  const body = c.data ?? '';
  const stream = new RawBlobStream(reply, {
    digest: c.digest ?? sha256(body),
    expectedSize: c.expectedSize ?? Buffer.byteLength(body),
    bodyIdleTimeoutMs: c.bodyIdleTimeoutMs ?? 0,
    signal: c.signal,
  });
  feed(data.write, c.data, c.keepDataOpen);
  feed(errors.write, c.errors);
  return { stream, dataWrite: data.write, asked };
}

/**
 * A unix stream socket whose read fails with ECONNRESET: its peer went away
 * with bytes unread. Made by python3 (Node cannot make a socketpair) and
 * received over the addon's channel.
 */
async function resetSocket(): Promise<number> {
  const script = [
    'import socket',
    'ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)',
    "ours.send(b'unread')",
    "socket.send_fds(socket.socket(fileno=3), [b'fd'], [ours.fileno()])",
    'peer.close()',
  ].join('\n');
  const [ours, theirs] = native.socketPair();
  const received = new Promise<number>((resolve, reject) => {
    const channel = new native.Channel(ours, (error, _data, fds) => {
      setImmediate(() => channel.close());
      if (error || fds?.length !== 1) reject(error ?? new Error(`expected one fd, got ${fds?.length}`));
      else resolve(fds[0]!);
    });
  });
  const child = spawnSync('python3', ['-c', script], { stdio: ['ignore', 'inherit', 'inherit', theirs], timeout: 20_000 });
  closeSync(theirs);
  assert.equal(child.status, 0, String(child.error ?? ''));
  return received;
}

describe('RawBlobStream (GetRawBlob)', () => {
  it('delivers the bytes and ends when size and digest match; bytesReceived counts them', async () => {
    const { stream } = raw({ data: 'hello, blob' });
    assert.equal(stream.transfer, 'GetRawBlob');
    assert.equal(stream.readableHighWaterMark, HIGH_WATER_MARK, 'buffers one reader block for a consumer that is behind (bench/RESULTS.md 4f)');
    const { bytes, error } = await drain(stream);
    assert.equal(error, undefined);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.equal(stream.bytesReceived, 11);
  });

  it('fails with the error the error pipe carries, though the bytes arrived whole', async () => {
    const { stream } = raw({ data: 'hello, blob', errors: '{"code":"retryable","message":"connection reset"}' });
    const { error } = await drain(stream);
    assert.ok(error instanceof RequestError, String(error));
    assert.equal(error.serverMessage, 'connection reset');
    assert.equal(error.code, 'retryable');
    assert.equal(error.method, 'GetRawBlob');
  });

  it('waits for the error pipe to end: an error that comes after the data ended still fails the stream', async () => {
    const data = pipe();
    const errors = pipe();
    const reply = new DualReply({}, data.read, errors.read, { failureWithin: () => Promise.resolve(undefined) });
    const stream = new RawBlobStream(reply, { digest: sha256('hello, blob'), expectedSize: 11, bodyIdleTimeoutMs: 100 });
    feed(data.write, 'hello, blob');
    // Longer than the stall timeout: waiting for the error pipe after the data ended is no stall.
    setTimeout(() => feed(errors.write, '{"code":"other","message":"blob unknown to registry"}'), 300);
    const { bytes, error } = await drain(stream);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.ok(error instanceof RequestError, String(error));
    assert.equal(error.serverMessage, 'blob unknown to registry');
  });

  it('an error pipe that closes empty long after the data ended, read late: the stream ends, no stall', async () => {
    const data = pipe();
    const errors = pipe();
    const reply = new DualReply({}, data.read, errors.read, { failureWithin: () => Promise.resolve(undefined) });
    const stream = new RawBlobStream(reply, { digest: sha256('hello, blob'), expectedSize: 11, bodyIdleTimeoutMs: 100 });
    feed(data.write, 'hello, blob');
    setTimeout(() => closeSync(errors.write), 400);
    stream.read(0); // the data is read and ends while the consumer is not reading yet
    await sleep(100);
    const { bytes, error } = await drain(stream); // it asks for more after the data ended

    assert.equal(error, undefined);
    assert.equal(bytes.toString(), 'hello, blob');
  });

  it('keeps the process alive while it waits for the error pipe after the data ended', () => {
    // A script that reads a blob whose error pipe is held open for 500 ms by
    // another process: it must print the blob, not exit half-way (exit code 13,
    // an unsettled top-level await) because nothing held the event loop.
    const script = join(fifoDir, 'late-error-pipe.mjs');
    const module = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
    writeFileSync(
      script,
      `
      import { spawn } from 'node:child_process';
      import { closeSync, constants, openSync, writeSync } from 'node:fs';
      import { createHash } from 'node:crypto';
      import { native } from ${module('../../src/native.js')};
      import { DualReply } from ${module('../../src/replies.js')};
      import { RawBlobStream } from ${module('../../src/blobs/raw-blob-stream.js')};
      const fifo = (name) => {
        const path = ${JSON.stringify(fifoDir)} + '/late-' + process.pid + '-' + name;
        native.mknod(Buffer.from(path), 'fifo', 0o600, 0, 0);
        return [openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), openSync(path, constants.O_WRONLY)];
      };
      const [dataRead, dataWrite] = fifo('data');
      const [errorRead, errorWrite] = fifo('errors');
      const holder = spawn('sleep', ['0.5'], { stdio: ['ignore', 'ignore', 'ignore', errorWrite] });
      holder.unref();
      closeSync(errorWrite);
      const blob = 'hello, blob';
      const reply = new DualReply({}, dataRead, errorRead, { failureWithin: () => Promise.resolve(undefined) });
      const stream = new RawBlobStream(reply, { digest: 'sha256:' + createHash('sha256').update(blob).digest('hex'), expectedSize: blob.length, bodyIdleTimeoutMs: 0 });
      writeSync(dataWrite, blob);
      closeSync(dataWrite);
      let text = '';
      for await (const chunk of stream) text += chunk;
      console.log('read: ' + text);
      `,
    );
    const child = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.stdout.trim(), 'read: hello, blob', child.stderr);
    assert.equal(child.status, 0);
  });

  it('gives the data pipe a 1 MiB buffer, and reads no further ahead than its consumer is: a buffer, not the blob', async () => {
    const blob = Buffer.alloc(1024 * 1024, 0x5a);
    const data = pipe(true);
    const errors = pipe();
    const reply = new DualReply({}, data.read, errors.read, { failureWithin: () => Promise.resolve(undefined) });
    const stream = new RawBlobStream(reply, { digest: sha256(blob), expectedSize: blob.length, bodyIdleTimeoutMs: 0 });
    // A non-blocking write takes what the pipe can hold: 1 MiB only with the bigger buffer (the default holds 64 KiB).
    assert.equal(writeSync(data.write, blob), blob.length);
    closeSync(data.write);
    closeSync(errors.write);
    stream.read(0); // a consumer that asks, then reads nothing
    await sleep(300);
    assert.ok(stream.bytesReceived <= 2 * HIGH_WATER_MARK, `read ${stream.bytesReceived} bytes ahead of a consumer that takes none`);
    const { bytes, error } = await drain(stream);
    assert.equal(error, undefined);
    assert.ok(bytes.equals(blob));
  });

  it('a data pipe that ends short: the proxy death it learns of within a second, else a size mismatch', async () => {
    const died = new Error('the proxy exited');
    const dying = raw({ data: 'hello', expectedSize: 11, digest: sha256('hello, blob'), died });
    assert.equal((await drain(dying.stream)).error, died);
    assert.deepEqual(dying.asked, [1000], 'waited up to a second for the proxy to fail');
    const alive = raw({ data: 'hello', expectedSize: 11, digest: sha256('hello, blob') });
    const { error } = await drain(alive.stream);
    assert.ok(error instanceof BlobVerificationError, String(error));
    assert.equal(error.message, `blob ${sha256('hello, blob')} failed verification: size mismatch (expected 11 bytes, received 5)`);
  });

  it('a digest mismatch names what the bytes hash to; an unknown size (-1) checks the digest alone', async () => {
    const wrong = sha256('other bytes');
    const { error } = await drain(raw({ data: 'hello, blob', digest: wrong }).stream);
    assert.ok(error instanceof BlobVerificationError, String(error));
    assert.equal(error.detail, `digest mismatch: the bytes hash to ${sha256('hello, blob')}`);
    const unknown = await drain(raw({ data: 'hello, blob', expectedSize: -1 }).stream);
    assert.equal(unknown.error, undefined);
    assert.equal(unknown.bytes.toString(), 'hello, blob');
  });

  it('stalls with StallError when no byte comes for bodyIdleTimeoutMs while read', async () => {
    const { stream, dataWrite } = raw({ data: 'hel', expectedSize: 11, digest: sha256('hello, blob'), bodyIdleTimeoutMs: 100, keepDataOpen: true });
    const started = Date.now();
    const { error } = await drain(stream);
    closeSync(dataWrite);
    assert.ok(error instanceof StallError, String(error));
    assert.equal(error.bytesReceived, 3);
    assert.ok(Date.now() - started >= 90, `stalled after ${Date.now() - started} ms`);
  });

  it('a data pipe whose read fails: the stream fails with that error', async () => {
    // A directory's fd stands in for the data pipe: read() fails with EISDIR (a FIFO never fails a read).
    const errors = pipe();
    const reply = new DualReply({}, openSync(fifoDir, constants.O_RDONLY | constants.O_DIRECTORY), errors.read, { failureWithin: () => Promise.resolve(undefined) });
    const stream = new RawBlobStream(reply, { digest: sha256('hello, blob'), expectedSize: 11, bodyIdleTimeoutMs: 0 });
    closeSync(errors.write);
    const { error } = await watchdog(5_000, 'a pipe whose read fails', drain(stream)).finally(() => stream.destroy());
    assert.equal((error as NodeJS.ErrnoException | undefined)?.code, 'EISDIR', String(error));
  });

  it('stalls with StallError when it is read and not one byte ever comes', async () => {
    const { stream, dataWrite } = raw({ data: '', expectedSize: 11, digest: sha256('hello, blob'), bodyIdleTimeoutMs: 50, keepDataOpen: true });
    const { error } = await watchdog(10_000, 'a silent data pipe', drain(stream)).finally(() => stream.destroy());
    closeSync(dataWrite);
    assert.ok(error instanceof StallError, String(error));
    assert.equal(error.bytesReceived, 0);
  });

  it('keeps the first 64 reads of the error pipe only: a longer error is cut there (then not JSON), a 64-read one is whole', async () => {
    // One piece per read: each is written after the loop has polled (and read) the one before.
    const polled = async (): Promise<void> => {
      for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    };
    const errorOfReads = async (reads: number): Promise<unknown> => {
      const data = pipe();
      const errors = pipe();
      const reply = new DualReply({}, data.read, errors.read, { failureWithin: () => Promise.resolve(undefined) });
      const stream = new RawBlobStream(reply, { digest: sha256('hello, blob'), expectedSize: 11, bodyIdleTimeoutMs: 0 });
      feed(data.write, 'hello, blob');
      const pieces = ['{"message":"', ...Array.from({ length: reads - 2 }, () => 'x'), '"}'];
      const reading = drain(stream);
      for (const piece of pieces) {
        writeSync(errors.write, piece);
        await polled();
      }
      closeSync(errors.write);
      return (await reading).error;
    };
    const whole = await errorOfReads(64);
    assert.ok(whole instanceof RequestError, String(whole));
    assert.equal(whole.serverMessage, 'x'.repeat(62));
    const cut = await errorOfReads(65);
    assert.ok(cut instanceof ProtocolError, String(cut));
    assert.equal(cut.message, `GetRawBlob: the error pipe carried something that is not JSON: ${JSON.stringify('{"message":"' + 'x'.repeat(63))}`);
  });

  it('an error pipe whose read fails: the stream fails with that error (no uncaught error)', async () => {
    // A FIFO never fails a read; a unix stream socket (an fd a misbehaving proxy could pass) does.
    const data = pipe();
    const errorRead = await resetSocket();
    const reply = new DualReply({}, data.read, errorRead, { failureWithin: () => Promise.resolve(undefined) });
    const stream = new RawBlobStream(reply, { digest: sha256('hello, blob'), expectedSize: 11, bodyIdleTimeoutMs: 0 });
    feed(data.write, 'hello, blob');
    const { error } = await watchdog(5_000, 'an error pipe whose read fails', drain(stream)).finally(() => stream.destroy());
    assert.equal((error as NodeJS.ErrnoException | undefined)?.code, 'ECONNRESET', String(error));
  });

  it('an aborted signal destroys it with the reason', async () => {
    const controller = new AbortController();
    const { stream, dataWrite } = raw({ data: 'hel', expectedSize: 11, digest: sha256('hello, blob'), signal: controller.signal, keepDataOpen: true });
    const reason = new Error('stop');
    setTimeout(() => controller.abort(reason), 20);
    const { error } = await drain(stream);
    closeSync(dataWrite);
    assert.equal(error, reason);
  });
});

interface FinishCase extends Partial<FinishPipeStreamOptions> {
  data?: Buffer | string;
  /** FinishPipe's answer (default: success once asked); `closeData` closes the write end (once), as skopeo does inside FinishPipe. */
  verdict?: (closeData: () => void) => Promise<void>;
  keepDataOpen?: boolean;
  /** As skopeo: the write end stays open until FinishPipe is sent, which closes it. */
  serverCloses?: boolean;
}

/** A FinishPipeBlobStream over a FIFO fed with `data`, and the FinishPipe requests it sent. */
function finishPipe(c: FinishCase): { stream: FinishPipeBlobStream; dataWrite: number; finishes: Array<{ pipeId: number; deadline: ReplyDeadline; at: number }> } {
  const data = pipe();
  const finishes: Array<{ pipeId: number; deadline: ReplyDeadline; at: number }> = [];
  let writeOpen = true;
  const closeData = (): void => {
    if (writeOpen) closeSync(data.write);
    writeOpen = false;
  };
  const owner: PipeOwner = {
    finishPipe(pipeId, deadline) {
      finishes.push({ pipeId, deadline, at: Date.now() });
      if (c.serverCloses) closeData();
      return (c.verdict ?? (() => Promise.resolve()))(closeData);
    },
  };
  const body = c.data ?? '';
  const reply = new PipeReply({}, 9, data.read, owner, 0);
  const { data: _data, verdict: _verdict, keepDataOpen: _keep, serverCloses: _closes, ...options } = c;
  const stream = new FinishPipeBlobStream(reply, {
    digest: sha256(body),
    expectedSize: Buffer.byteLength(body),
    bodyIdleTimeoutMs: 0,
    ...options,
  });
  feed(data.write, c.data, c.keepDataOpen || c.serverCloses);
  if (!c.keepDataOpen && !c.serverCloses) writeOpen = false;
  return { stream, dataWrite: data.write, finishes };
}

describe('FinishPipeBlobStream (GetBlob)', () => {
  it('sends FinishPipe once all `size` bytes are in, and ends on its success', async () => {
    const { stream, finishes } = finishPipe({ data: 'hello, blob' });
    assert.equal(stream.transfer, 'GetBlob');
    assert.equal(stream.readableHighWaterMark, HIGH_WATER_MARK, 'buffers one reader block for a consumer that is behind (bench/RESULTS.md 4f)');
    const { bytes, error } = await drain(stream);
    assert.equal(error, undefined);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.equal(stream.bytesReceived, 11);
    assert.deepEqual(finishes.map((f) => f.pipeId), [9], 'FinishPipe once, for its pipe');
  });

  it("FinishPipe's verification failure becomes a BlobVerificationError; any other failure passes as it is", async () => {
    const corrupted = await drain(finishPipe({ data: 'hello, blob', verdict: () => Promise.reject(new RequestError('FinishPipe', 'corrupted blob: digest mismatch')) }).stream);
    assert.ok(corrupted.error instanceof BlobVerificationError, String(corrupted.error));
    assert.equal(corrupted.error.detail, 'corrupted blob: digest mismatch');
    const exited = new RequestError('FinishPipe', 'manifest unknown');
    assert.equal((await drain(finishPipe({ data: 'hello, blob', verdict: () => Promise.reject(exited) }).stream)).error, exited);
    const plain = await drain(finishPipe({ data: 'hello, blob', verdict: () => Promise.reject(new Error('raw failure')) }).stream);
    assert.ok(plain.error instanceof ProtocolError, String(plain.error));
    assert.equal(plain.error.message, 'Error: raw failure');
  });

  it('a retryable failure of FinishPipe stays a RequestError (a retry may help), though its message is about verification', async () => {
    const flaky = new RequestError('FinishPipe', 'corrupted blob: connection reset', 'retryable');
    assert.equal((await drain(finishPipe({ data: 'hello, blob', verdict: () => Promise.reject(flaky) }).stream)).error, flaky);
  });

  it('reads no further ahead than its consumer is: a buffer, not the blob', async () => {
    const blob = Buffer.alloc(1024 * 1024, 0x5a);
    const data = pipe(true);
    const finishes: number[] = [];
    const reply = new PipeReply({}, 9, data.read, { finishPipe: (pipeId) => (finishes.push(pipeId), Promise.resolve()) }, 0);
    const stream = new FinishPipeBlobStream(reply, { digest: sha256(blob), expectedSize: blob.length, bodyIdleTimeoutMs: 0 });
    assert.equal(writeSync(data.write, blob), blob.length, 'the 1 MiB pipe holds the blob');
    closeSync(data.write);
    stream.read(0); // a consumer that asks, then reads nothing
    await sleep(300);
    assert.ok(stream.bytesReceived <= 2 * HIGH_WATER_MARK, `read ${stream.bytesReceived} bytes ahead of a consumer that takes none`);
    assert.deepEqual(finishes, [], 'no FinishPipe before the bytes are in: a paused consumer is no short source');
    const { bytes, error } = await drain(stream);
    assert.equal(error, undefined);
    assert.ok(bytes.equals(blob));
    assert.deepEqual(finishes, [9]);
  });

  it('a source shorter than its size: FinishPipe is sent once the pipe was quiet for quietMs, and the stream fails with a size mismatch', async () => {
    const { stream, dataWrite, finishes } = finishPipe({ data: 'hello', expectedSize: 11, quietMs: 100, keepDataOpen: true });
    const started = Date.now();
    // The server closes its end inside FinishPipe: do that when it is sent.
    const reading = drain(stream);
    while (finishes.length === 0) await sleep(5);
    const waited = Date.now() - started;
    closeSync(dataWrite);
    const { error } = await reading;
    assert.ok(waited >= 90, `FinishPipe after ${waited} ms of quiet`);
    assert.ok(error instanceof BlobVerificationError, String(error));
    assert.equal(error.message, `blob ${sha256('hello')} failed verification: size mismatch (expected 11 bytes, received 5)`);
  });

  it('a source longer than its size: only `size` bytes are delivered, the rest is drained', async () => {
    const { stream, finishes } = finishPipe({ data: 'hello, blob and more', expectedSize: 11, digest: sha256('hello, blob') });
    const { bytes, error } = await drain(stream);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.equal(finishes.length, 1);
    assert.ok(error instanceof BlobVerificationError, 'the server read more bytes than the size: a size mismatch');
  });

  it('size unknown (0 asked for): the complaint "expected 0 bytes in blob, got N" is the expected outcome, and the digest is checked here', async () => {
    const complaint = () => Promise.reject(new RequestError('FinishPipe', 'expected 0 bytes in blob, got 11'));
    const ok = await drain(finishPipe({ data: 'hello, blob', requestedSize: 0, verdict: complaint }).stream);
    assert.equal(ok.error, undefined);
    assert.equal(ok.bytes.toString(), 'hello, blob');
    const wrongCount = await drain(finishPipe({ data: 'hello, blob', requestedSize: 0, verdict: () => Promise.reject(new RequestError('FinishPipe', 'expected 0 bytes in blob, got 12')) }).stream);
    assert.ok(wrongCount.error instanceof BlobVerificationError, 'another count is a real failure');
    assert.equal(wrongCount.error.detail, 'expected 0 bytes in blob, got 12');
    const otherSize = await drain(finishPipe({ data: 'hello, blob', requestedSize: 0, verdict: () => Promise.reject(new RequestError('FinishPipe', 'expected 5 bytes in blob, got 11')) }).stream);
    assert.ok(otherSize.error instanceof BlobVerificationError, 'a complaint about another size than the one asked for is a real failure');
    assert.equal(otherSize.error.detail, 'expected 5 bytes in blob, got 11');
    const corrupt = await drain(finishPipe({ data: 'hello, blob', requestedSize: 0, digest: sha256('other'), verdict: complaint }).stream);
    assert.ok(corrupt.error instanceof BlobVerificationError, String(corrupt.error));
    assert.equal(corrupt.error.detail, `digest mismatch: the bytes hash to ${sha256('hello, blob')}`);
  });

  it('destroyed after a stall: FinishPipe is sent with the short grace of a stalled pipe', async () => {
    const { stream, dataWrite, finishes } = finishPipe({ data: 'hel', expectedSize: 11, digest: sha256('hello, blob'), bodyIdleTimeoutMs: 100, quietMs: 60_000, keepDataOpen: true, verdict: () => new Promise(() => {}) });
    const { error } = await drain(stream);
    closeSync(dataWrite);
    assert.ok(error instanceof StallError, String(error));
    assert.equal(finishes.length, 1, 'the pipe is released: FinishPipe sent');
    const expired: Error[] = [];
    finishes[0]!.deadline.arm((reason) => expired.push(reason));
    await sleep(1500);
    assert.deepEqual(expired, [error], 'the grace expires with the stall as its reason');
  });

  it('asks for the verdict as soon as `size` bytes are in, not after the pipe went quiet: skopeo closes its end only inside FinishPipe', async () => {
    // A quiet of a minute: had the stream waited for it, every blob would take that long.
    const { stream, finishes } = finishPipe({ data: 'hello, blob', serverCloses: true, quietMs: 60_000 });
    const { bytes, error } = await watchdog(5_000, 'a blob whose pipe closes only inside FinishPipe', drain(stream)).finally(() => stream.destroy());
    assert.equal(error, undefined);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.equal(finishes.length, 1);
  });

  it('a source longer than its size, the excess in reads of its own: no byte past `size` reaches the consumer, all are drained, and skopeo\'s complaint is the error', async () => {
    const { stream, dataWrite, finishes } = finishPipe({
      data: 'hello, blob!!',
      expectedSize: 11,
      digest: sha256('hello, blob'),
      keepDataOpen: true,
      verdict: () => Promise.reject(new RequestError('FinishPipe', 'expected 11 bytes in blob, got 22')),
    });
    const delivered: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => delivered.push(chunk));
    const failed = new Promise<unknown>((resolve) => stream.on('error', resolve));
    // The first read overshoots `size` by two bytes; the rest of the excess comes in a read after it.
    await watchdog(5_000, 'the first read', (async () => {
      while (stream.bytesReceived < 13) await sleep(5);
    })());
    feed(dataWrite, ' and more');
    const error = await watchdog(5_000, 'the excess drained', failed);
    assert.equal(Buffer.concat(delivered).toString(), 'hello, blob');
    assert.equal(stream.bytesReceived, 22, 'the excess is read (and dropped), so the server\'s writer can finish');
    assert.equal(finishes.length, 1);
    assert.ok(error instanceof BlobVerificationError, String(error));
    assert.equal(error.detail, 'expected 11 bytes in blob, got 22', "skopeo's own words on the mismatch");
  });

  it('a source that cannot tell its size (GetBlob replies -1): the pipe is read until skopeo closes it, its complaint about 0 bytes is expected, and the digest is checked here', async () => {
    const complaint = () => Promise.reject(new RequestError('FinishPipe', 'expected 0 bytes in blob, got 11'));
    const unknown = { data: 'hello, blob', expectedSize: -1, requestedSize: 0, quietMs: 50, serverCloses: true, verdict: complaint };
    const { stream, finishes } = finishPipe(unknown);
    const { bytes, error } = await watchdog(5_000, 'a blob of unknown size', drain(stream));
    assert.equal(error, undefined);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.equal(stream.expectedSize, -1);
    assert.equal(finishes.length, 1, 'FinishPipe once the pipe went quiet');
    const corrupt = await watchdog(5_000, 'a corrupt blob of unknown size', drain(finishPipe({ ...unknown, digest: sha256('other') }).stream));
    assert.ok(corrupt.error instanceof BlobVerificationError, String(corrupt.error));
    assert.equal(corrupt.error.detail, `digest mismatch: the bytes hash to ${sha256('hello, blob')}`);
  });

  it('size unknown (-1): reads no further ahead than its consumer either, and a consumer that is behind is no quiet source', async () => {
    const blob = Buffer.alloc(1024 * 1024, 0x5a);
    const data = pipe(true);
    const finishes: number[] = [];
    const owner: PipeOwner = {
      finishPipe(pipeId) {
        finishes.push(pipeId);
        return Promise.reject(new RequestError('FinishPipe', `expected 0 bytes in blob, got ${blob.length}`));
      },
    };
    const reply = new PipeReply({}, 9, data.read, owner, 0);
    const stream = new FinishPipeBlobStream(reply, { digest: sha256(blob), expectedSize: -1, requestedSize: 0, bodyIdleTimeoutMs: 0 });
    assert.equal(writeSync(data.write, blob), blob.length, 'the 1 MiB pipe holds the blob');
    closeSync(data.write);
    stream.read(0); // a consumer that asks, then reads nothing
    await sleep(300);
    assert.ok(stream.bytesReceived <= 2 * HIGH_WATER_MARK, `read ${stream.bytesReceived} bytes ahead of a consumer that takes none`);
    assert.deepEqual(finishes, [], 'no FinishPipe while the consumer is behind');
    const { bytes, error } = await watchdog(5_000, 'the blob of unknown size', drain(stream));
    assert.equal(error, undefined);
    assert.ok(bytes.equals(blob));
    assert.deepEqual(finishes, [9]);
  });

  it('all `size` bytes in and the verdict slow to come: waiting for FinishPipe is no body stall', async () => {
    // The server closes its end inside FinishPipe, here only when its verdict comes, well after the stall timeout.
    const { stream, finishes } = finishPipe({ data: 'hello, blob', keepDataOpen: true, bodyIdleTimeoutMs: 400, verdict: (closeData) => sleep(1200).then(closeData) });
    const { bytes, error } = await watchdog(5_000, 'a blob whose verdict is slow', drain(stream));
    assert.equal(error, undefined);
    assert.equal(bytes.toString(), 'hello, blob');
    assert.equal(finishes.length, 1);
  });

  it('a data pipe whose read fails: the stream fails with that error, and the pipe is released', async () => {
    // A directory's fd stands in for the pipe: read() fails with EISDIR (a FIFO never fails a read).
    const finishes: number[] = [];
    const reply = new PipeReply({}, 9, openSync(fifoDir, constants.O_RDONLY | constants.O_DIRECTORY), { finishPipe: (pipeId) => (finishes.push(pipeId), Promise.resolve()) }, 0);
    const stream = new FinishPipeBlobStream(reply, { digest: sha256('hello, blob'), expectedSize: 11, bodyIdleTimeoutMs: 0 });
    const { error } = await watchdog(5_000, 'a pipe whose read fails', drain(stream)).finally(() => stream.destroy());
    assert.equal((error as NodeJS.ErrnoException | undefined)?.code, 'EISDIR', String(error));
    assert.deepEqual(finishes, [9], 'FinishPipe sent: the server frees the pipe');
  });
});

describe('stream-kit', () => {
  it('hashAlgorithm: the node:crypto name of sha256, sha384 and sha512; anything else refused with a message that says what to use', () => {
    assert.equal(hashAlgorithm('sha256:' + 'a'.repeat(64)), 'sha256');
    assert.equal(hashAlgorithm('sha384:' + 'a'.repeat(96)), 'sha384');
    assert.equal(hashAlgorithm('sha512:' + 'a'.repeat(128)), 'sha512');
    const refused = (digest: unknown, message: string) =>
      assert.throws(() => hashAlgorithm(digest as string), (e: unknown) => e instanceof InvalidArgumentError && e.message === message, String(digest));
    refused('not-a-digest', '"not-a-digest" is not a digest; expected "algorithm:hex", e.g. "sha256:…"');
    refused(undefined, 'undefined is not a digest; expected "algorithm:hex", e.g. "sha256:…"');
    refused('md5:abcd', 'digest algorithm md5 is not supported; use sha256, sha384 or sha512');
    refused('sha256+b64u:abcd', 'digest algorithm sha256+b64u is not supported; use sha256, sha384 or sha512');
    refused('SHA256:abcd', '"SHA256:abcd" is not a digest; expected "algorithm:hex", e.g. "sha256:…"');
    refused('sha256:abcd efgh', '"sha256:abcd efgh" is not a digest; expected "algorithm:hex", e.g. "sha256:…"');
    // From an untyped caller: a value that only prints like a digest is not one.
    refused(['sha256:abcd'], '["sha256:abcd"] is not a digest; expected "algorithm:hex", e.g. "sha256:…"');
  });

  it('parseRawBlobError: what is not JSON is a ProtocolError quoting it; JSON without a message is quoted whole', () => {
    const garbage = parseRawBlobError(Buffer.from('panic: runtime error'));
    assert.ok(garbage instanceof ProtocolError);
    assert.equal(garbage.message, 'GetRawBlob: the error pipe carried something that is not JSON: "panic: runtime error"');
    const bare = parseRawBlobError(Buffer.from('{"code":"other"}'));
    assert.ok(bare instanceof RequestError);
    assert.equal(bare.method, 'GetRawBlob');
    assert.equal(bare.serverMessage, '{"code":"other"}');
  });

  it('IdleTimer: fires once after the wait without arm(), not while re-armed, never after clear() or with 0', async () => {
    // Margins of 300 ms and more: a loaded machine delays timers, never by that much.
    let fired = 0;
    const idle = new IdleTimer(400, () => fired++);
    idle.arm();
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      idle.arm(); // re-armed before it expires: it waits again
    }
    assert.equal(fired, 0, 'fired though re-armed every 100 ms');
    await sleep(800);
    assert.equal(fired, 1);
    idle.arm(); // armed again after it fired: a new timer
    await sleep(800);
    assert.equal(fired, 2);
    idle.arm();
    idle.clear();
    await sleep(800);
    assert.equal(fired, 2, 'cleared');
    let never = 0;
    const off = new IdleTimer(0, () => never++);
    off.arm();
    await sleep(50);
    assert.equal(never, 0);
  });

  it('watchSignal: destroys the stream with the reason (an Error made of any other value); already aborted, on the next microtask; detached, never', async () => {
    const reading = (): Readable => new Readable({ read() {} }).on('error', () => {});
    const reason = new Error('stop');
    const controller = new AbortController();
    const first = reading();
    watchSignal(first, controller.signal);
    controller.abort(reason);
    assert.equal(first.errored, reason);

    const texty = new AbortController();
    const second = reading();
    watchSignal(second, texty.signal);
    texty.abort('user cancelled');
    assert.ok(second.errored instanceof Error && second.errored.message === 'user cancelled', String(second.errored));

    const third = reading();
    watchSignal(third, AbortSignal.abort(reason));
    assert.equal(third.destroyed, false, 'not inside the constructor that calls it');
    await Promise.resolve();
    assert.equal(third.errored, reason);

    const late = new AbortController();
    const fourth = reading();
    const detach = watchSignal(fourth, late.signal);
    detach();
    late.abort(reason);
    assert.equal(fourth.destroyed, false);
    fourth.destroy();
  });
});
