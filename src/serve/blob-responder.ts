/**
 * Sends a blob stream as an HTTP body. HTTP cannot report an error once the
 * status is sent, so:
 *  - the last chunk is held back until the stream has ended, which it does
 *    only once the blob is verified (by the proxy's FinishPipe verdict, or by
 *    the hash on the GetRawBlob path), and the status goes out with the first
 *    byte sent: a blob missing or broken at the source, or one that fails
 *    verification before any byte went out (a blob of one chunk), is a
 *    proper 404 or 500; any failure after the first byte destroys the
 *    connection short of its Content-Length, never a whole-looking 200;
 *  - a client that takes no bytes for `clientIdleTimeoutMs` is cut off, so a
 *    slow client cannot hold the proxy (on protocols before 0.2.8, FinishPipe
 *    waits for the pipe to be drained), and buffering is bounded: at most
 *    MAX_QUEUED_BYTES wait in the response, plus the streams' high-water marks.
 */
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { RegistryError } from './registry-errors.js';

/** Bytes a response may queue in memory beyond the socket before the blob waits for the client. */
const MAX_QUEUED_BYTES = 1024 * 1024;

/** What the response says about the blob. */
export interface BlobHeaders {
  digest: string;
  size: number;
}

/** How a blob answer ended, for the request log. */
export type BlobOutcome = 'complete' | 'client-gone' | 'client-idle' | 'failed';

/**
 * Answers with the blob `open()` gives. Rejects while nothing is sent (the
 * caller answers with an error body); once the status is out, resolves with
 * how it ended and destroys the connection unless it was complete. Counts
 * the body bytes handed to the socket in `sent`.
 */
export async function respondWithBlob(
  res: ServerResponse,
  open: () => Promise<Readable>,
  headers: BlobHeaders,
  clientIdleTimeoutMs: number,
  sent: { bytes: number },
): Promise<BlobOutcome> {
  const stream = await open();
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const sendStatus = (): void => {
    if (res.headersSent) return;
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': headers.size,
      'Docker-Content-Digest': headers.digest,
    });
  };
  // Held back until the stream has ended, i.e. the blob is verified.
  let held: Buffer | undefined;
  try {
    for (;;) {
      const next = await untilClientGone(res, chunks.next());
      if (next === CLIENT_GONE) return abandon(res, stream, 'client-gone');
      if (next.done) break;
      if (held) {
        sendStatus();
        sent.bytes += held.length;
        // Wait for the client only once a bounded amount is queued: a wait per chunk costs a fifth of the throughput.
        if (!res.write(held) && res.writableLength >= MAX_QUEUED_BYTES && !(await drained(res, clientIdleTimeoutMs))) {
          return abandon(res, stream, res.destroyed ? 'client-gone' : 'client-idle');
        }
      }
      held = next.value;
    }
  } catch (error) {
    if (!res.headersSent) {
      stream.destroy();
      throw error; // nothing went out: the caller answers 404 or 500
    }
    return abandon(res, stream, 'failed');
  }
  sendStatus();
  if (held) sent.bytes += held.length;
  await new Promise<void>((resolve) => res.end(held, resolve));
  return 'complete';
}

function abandon(res: ServerResponse, stream: Readable, outcome: BlobOutcome): BlobOutcome {
  stream.destroy();
  res.destroy(); // short of Content-Length: the client sees a failed transfer
  return outcome;
}

const CLIENT_GONE = Symbol('client gone') as unknown as IteratorResult<Buffer>;

/** `step`, or CLIENT_GONE as soon as the client closed the connection. */
function untilClientGone(res: ServerResponse, step: Promise<IteratorResult<Buffer>>): Promise<IteratorResult<Buffer>> {
  if (res.destroyed) return Promise.resolve(CLIENT_GONE);
  return new Promise((resolve, reject) => {
    // The answer ends only after the last chunk: a close while waiting for one is the client's.
    const onClose = (): void => resolve(CLIENT_GONE);
    res.once('close', onClose);
    step
      .finally(() => res.off('close', onClose))
      .then(resolve, (error: unknown) => reject(error instanceof Error ? error : new RegistryError(500, 'UNKNOWN', String(error))));
  });
}

/** Whether the client drained the response within `timeoutMs` (false: it is gone or idle). */
function drained(res: ServerResponse, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = (): void => finish(true);
    const onClose = (): void => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
