/**
 * getBlob's argument checks, transfer choice and reply handling
 * (src/blobs/index.ts) without skopeo: a stand-in supervisor answers
 * GetBlob and GetRawBlob with real FIFOs, so that what real skopeo does not
 * produce (a malformed size in the reply, a size that differs from the one
 * asked for, an old proxy asked for GetRawBlob) is checked. Stryker
 * survivors of the integration files (see MUTATION.md).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { offThreadHashing } from '../../src/blobs/blob-pipe.js';
import { blobRequest, defaultTransfer, fetchBlob, fetchRawBlob, type BlobRequest } from '../../src/blobs/index.js';
import { BlobVerificationError, InvalidArgumentError, ProtocolError, RequestError, UnsupportedOperationError } from '../../src/errors.js';
import type { CallContext, OpenedImage } from '../../src/images.js';
import { native } from '../../src/native.js';
import { DualReply, PipeReply } from '../../src/replies.js';
import { RetryingBlobStream } from '../../src/retry.js';
import { STORE_BLOB_HINT } from '../../src/storage.js';
import type { Supervisor } from '../../src/supervisor.js';
import { openFdsOn } from '../support/env.js';

const sha256 = (data: string): string => 'sha256:' + createHash('sha256').update(data).digest('hex');
const BLOB = 'hello, blob';
const DIGEST = sha256(BLOB);

const fifoDir = mkdtempSync(join(tmpdir(), 'cip-blob-requests-'));
after(() => rmSync(fifoDir, { recursive: true, force: true }));
let fifos = 0;
/** A FIFO holding `data`, its write end closed: the read end. */
function filled(data: string): number {
  const path = join(fifoDir, `fifo-${fifos++}`);
  native.mknod(Buffer.from(path), 'fifo', 0o600, 0, 0);
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY);
  if (data.length > 0) writeSync(write, data);
  closeSync(write);
  return read;
}

interface Sent {
  method: string;
  args: unknown[];
}

/** A supervisor of protocol `version` that answers each request with `answer(method)`. */
function supervisor(version: string, answer: (method: string, attempt: number) => Promise<PipeReply | DualReply>): Supervisor & { sent: Sent[] } {
  const sent: Sent[] = [];
  const raw = version === '0.2.8';
  return {
    sent,
    protocolVersion: version,
    supports: (feature: string) => feature !== 'GetRawBlob' || raw,
    call: (method: string, args: () => unknown[]) => {
      sent.push({ method, args: args() });
      return answer(method, sent.length);
    },
  } as unknown as Supervisor & { sent: Sent[] };
}

const image = (reference = 'docker://127.0.0.1:5000/x:1'): OpenedImage => ({ reference, wireId: () => 7 }) as unknown as OpenedImage;
const call = (retry?: CallContext['policy']['retry']): CallContext => ({ policy: { replyTimeoutMs: 0, bodyIdleTimeoutMs: 0, retry } });
const pipeReply = (value: unknown, data = BLOB, verdict: () => Promise<void> = () => Promise.resolve()): PipeReply =>
  new PipeReply(value, 3, filled(data), { finishPipe: verdict }, 0);
const dualReply = (value: unknown, data = BLOB): DualReply =>
  new DualReply(value, filled(data), filled(''), { failureWithin: () => Promise.resolve(undefined) });

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('blobRequest', () => {
  it('refuses a bad size with a message that says what is allowed, before anything is sent', () => {
    const s = supervisor('0.2.8', () => assert.fail('nothing sent'));
    for (const size of [-2, 1.5, 2 ** 53, Number.NaN]) {
      assert.throws(
        () => blobRequest(s, image(), DIGEST, size),
        (e: unknown) => e instanceof InvalidArgumentError && e.message === `getBlob: size must be a non-negative integer below 2^53, or -1 (or left out) when unknown; got ${size}`,
        String(size),
      );
    }
    assert.equal(blobRequest(s, image(), DIGEST, -1, 'GetBlob').size, -1, '-1: unknown');
    assert.equal(blobRequest(s, image(), DIGEST, undefined, 'GetBlob').size, -1, 'left out: unknown');
    assert.equal(blobRequest(s, image(), DIGEST, 0, 'GetBlob').size, 0);
    assert.equal(blobRequest(s, image(), DIGEST, 2 ** 53 - 1, 'GetBlob').size, 2 ** 53 - 1);
  });

  it('picks the transfer: the default where none is forced, a forced one checked against the proxy', () => {
    const modern = supervisor('0.2.8', () => assert.fail('nothing sent'));
    const old = supervisor('0.2.6', () => assert.fail('nothing sent'));
    assert.equal(blobRequest(modern, image(), DIGEST, 11).transfer, defaultTransfer(true));
    assert.equal(blobRequest(old, image(), DIGEST, 11).transfer, 'GetBlob');
    assert.equal(blobRequest(modern, image(), DIGEST, 11, 'GetBlob').transfer, 'GetBlob');
    assert.equal(blobRequest(modern, image(), DIGEST, 11, 'GetRawBlob').transfer, 'GetRawBlob');
    assert.throws(
      () => blobRequest(modern, image(), DIGEST, 11, 'Fetch' as 'GetBlob'),
      (e: unknown) => e instanceof InvalidArgumentError && e.message === 'getBlob: transfer must be one of GetBlob, GetRawBlob, got "Fetch"',
    );
    assert.throws(
      () => blobRequest(old, image(), DIGEST, 11, 'GetRawBlob'),
      (e: unknown) => e instanceof UnsupportedOperationError && /getBlob with transfer GetRawBlob/.test(e.message) && /0\.2\.8/.test(e.message) && /0\.2\.6/.test(e.message),
    );
  });

  it('defaultTransfer: GetRawBlob only where the proxy has it and the hash runs off the main thread', () => {
    assert.equal(defaultTransfer(true, true), 'GetRawBlob');
    assert.equal(defaultTransfer(true, false), 'GetBlob');
    assert.equal(defaultTransfer(false, true), 'GetBlob');
    assert.equal(defaultTransfer(false, false), 'GetBlob');
    assert.equal(defaultTransfer(true), offThreadHashing ? 'GetRawBlob' : 'GetBlob');
  });
});

describe('fetching', () => {
  const request = (transfer: BlobRequest['transfer'], size: number, reference?: string): BlobRequest => ({ image: image(reference), digest: DIGEST, size, transfer });

  it('GetBlob asks for the size, or for 0 when it is unknown and takes the reply\'s', async () => {
    const s = supervisor('0.2.8', async () => pipeReply(11));
    assert.equal(await text(await fetchBlob(s, request('GetBlob', 11), call())), BLOB);
    const unknown = supervisor('0.2.8', async () => pipeReply(11, BLOB, () => Promise.reject(new RequestError('FinishPipe', 'expected 0 bytes in blob, got 11'))));
    const stream = await fetchBlob(unknown, request('GetBlob', -1), call());
    assert.equal(stream.expectedSize, 11);
    assert.equal(await text(stream), BLOB);
    assert.deepEqual([...s.sent, ...unknown.sent], [
      { method: 'GetBlob', args: [7, DIGEST, 11] },
      { method: 'GetBlob', args: [7, DIGEST, 0] },
    ]);
  });

  it('GetRawBlob: a reported size that differs from the one asked for is a verification error; an unknown one is taken', async () => {
    const differs = supervisor('0.2.8', async () => dualReply(12));
    await assert.rejects(fetchBlob(differs, request('GetRawBlob', 11), call()), (e: unknown) => {
      assert.ok(e instanceof BlobVerificationError, String(e));
      assert.equal(e.detail, 'the source reports 12 bytes');
      assert.equal(e.expectedSize, 11);
      return true;
    });
    const unreported = await fetchBlob(supervisor('0.2.8', async () => dualReply(-1)), request('GetRawBlob', 11), call());
    assert.equal(unreported.expectedSize, 11);
    assert.equal(await text(unreported), BLOB);
    const unknown = await fetchBlob(supervisor('0.2.8', async () => dualReply(11)), request('GetRawBlob', -1), call());
    assert.equal(unknown.expectedSize, 11, 'the size the proxy reports');
    assert.equal(await text(unknown), BLOB);
  });

  it('a malformed size in the reply: ProtocolError, and the reply\'s fds are closed', async () => {
    const before = openFdsOn(fifoDir);
    for (const transfer of ['GetBlob', 'GetRawBlob'] as const) {
      const s = supervisor('0.2.8', async (method) => (method === 'GetBlob' ? pipeReply('eleven') : dualReply('eleven')));
      await assert.rejects(fetchBlob(s, request(transfer, 11), call()), (e: unknown) => e instanceof ProtocolError && e.message === `${transfer}: expected a blob size in the reply, got "eleven"`, transfer);
    }
    assert.deepEqual(openFdsOn(fifoDir), before, 'no FIFO left open');
  });

  it('fetchRawBlob refuses a proxy older than 0.2.8 and a bad digest before sending anything', async () => {
    const old = supervisor('0.2.6', () => assert.fail('nothing sent'));
    await assert.rejects(fetchRawBlob(old, image(), DIGEST, undefined, call()), (e: unknown) => e instanceof UnsupportedOperationError && /getRawBlob/.test(e.message));
    await assert.rejects(fetchRawBlob(supervisor('0.2.8', () => assert.fail('nothing sent')), image(), 'nope', undefined, call()), InvalidArgumentError);
  });

  it('a store without the blob asked for: the error says which digests a store serves', async () => {
    const missing = new RequestError('GetBlob', 'locating item named "manifest-sha256:abc" for image with ID "x": file does not exist');
    const store = supervisor('0.2.8', () => Promise.reject(missing));
    await assert.rejects(fetchBlob(store, request('GetBlob', 11, 'containers-storage:x'), call()), (e: unknown) => {
      assert.ok(e instanceof RequestError && e.cause === missing, String(e));
      assert.ok(e.message.endsWith(`; ${STORE_BLOB_HINT}`), e.message);
      return true;
    });
    const registry = supervisor('0.2.8', () => Promise.reject(missing));
    await assert.rejects(fetchBlob(registry, request('GetBlob', 11), call()), (e: unknown) => e === missing, 'not a store: as it is');
    const other = new RequestError('GetBlob', 'manifest unknown');
    await assert.rejects(fetchBlob(supervisor('0.2.8', () => Promise.reject(other)), request('GetBlob', 11, 'containers-storage:x'), call()), (e: unknown) => e === other);
  });

  it('retries only with a policy of more than one attempt, counting the opening\'s retries', async () => {
    const plain = await fetchBlob(supervisor('0.2.8', async () => pipeReply(11)), request('GetBlob', 11), call({ attempts: 1 }));
    assert.ok(!(plain instanceof RetryingBlobStream));
    await text(plain);
    const flaky = supervisor('0.2.8', async (_method, attempt) => {
      if (attempt === 1) throw new RequestError('GetBlob', 'received unexpected HTTP status: 503 Service Unavailable', 'retryable');
      return pipeReply(11);
    });
    const retrying = await fetchBlob(flaky, request('GetBlob', 11), call({ attempts: 2, backoff: 1 }));
    assert.ok(retrying instanceof RetryingBlobStream);
    assert.equal(await text(retrying), BLOB);
    assert.equal(flaky.sent.length, 2);
  });
});
