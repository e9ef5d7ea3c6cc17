/**
 * Blobs: getBlob and getRawBlob. Picks the transfer, sends the request
 * through the supervisor, and wraps the typed reply in the stream that
 * verifies it; retries, when the policy asks, wrap the whole opening.
 */
import { BlobVerificationError, InvalidArgumentError, RequestError, UnsupportedOperationError } from '../errors.js';
import { requestOptions, type CallContext, type CallOptions, type OpenedImage } from '../images.js';
import type { PolicyOptions } from '../policy.js';
import { expectSize, FEATURE_VERSIONS, UNKNOWN_SIZE } from '../protocol.js';
import type { DualReply, PipeReply } from '../replies.js';
import { RetryingBlobStream, withRetry } from '../retry.js';
import { isMissingStoreBlob } from '../skopeo-messages.js';
import { isStorageReference, STORE_BLOB_HINT } from '../storage.js';
import type { Supervisor } from '../supervisor.js';
import { offThreadHashing } from './blob-pipe.js';
import { FinishPipeBlobStream } from './finish-pipe-stream.js';
import { RawBlobStream } from './raw-blob-stream.js';
import { BLOB_TRANSFERS, hashAlgorithm, type BlobStream, type BlobTransfer } from './stream-kit.js';

export { BLOB_TRANSFERS, hashAlgorithm, type BlobStream, type BlobTransfer } from './stream-kit.js';

/** Options of {@link ImageProxy.getBlob}: the call's, and its blob policy. */
export interface BlobOptions extends CallOptions, Omit<PolicyOptions, 'replyTimeout'> {
  /**
   * Force a transfer method. Default: the fastest that leaves the event loop
   * free: `GetRawBlob` where the proxy has it (0.2.8) and the addon hashes
   * off the main thread (verified here, on the pipe's reader thread), else
   * `GetBlob` (verified by the proxy).
   */
  transfer?: BlobTransfer;
}

/** One blob to fetch: `size` may be {@link UNKNOWN_SIZE}. */
export interface BlobRequest {
  image: OpenedImage;
  digest: string;
  size: number;
  transfer: BlobTransfer;
}

/**
 * Checks getBlob's arguments and picks the transfer.
 * @throws {InvalidArgumentError} a bad digest, size or transfer.
 * @throws {UnsupportedOperationError} GetRawBlob forced on a proxy older than 0.2.8.
 */
export function blobRequest(supervisor: Supervisor, image: OpenedImage, digest: string, size: number | undefined, transfer?: BlobTransfer): BlobRequest {
  hashAlgorithm(digest);
  if (size !== undefined && size !== UNKNOWN_SIZE && (!Number.isSafeInteger(size) || size < 0)) {
    throw new InvalidArgumentError(`getBlob: size must be a non-negative integer below 2^53, or -1 (or left out) when unknown; got ${size}`);
  }
  const raw = supervisor.supports('GetRawBlob');
  transfer ??= defaultTransfer(raw);
  if (!BLOB_TRANSFERS.includes(transfer)) {
    throw new InvalidArgumentError(`getBlob: transfer must be one of ${BLOB_TRANSFERS.join(', ')}, got ${JSON.stringify(transfer)}`);
  }
  if (transfer === 'GetRawBlob' && !raw) throw unsupported(supervisor, 'getBlob with transfer GetRawBlob');
  return { image, digest, size: size ?? UNKNOWN_SIZE, transfer };
}

/**
 * The transfer getBlob uses when none is forced: the fastest that keeps the
 * event loop free (bench scenario 1). `GetRawBlob` (0.2.8) saves skopeo's
 * hashing and FinishPipe's round trip, but we must hash instead: only worth it
 * where the addon hashes on the pipe's reader thread; with the hash on the
 * main thread it was the slowest path (issue 13). Else `GetBlob`, which skopeo
 * verifies.
 */
export function defaultTransfer(proxyHasRawBlob: boolean, hashOffThread: boolean = offThreadHashing): BlobTransfer {
  return proxyHasRawBlob && hashOffThread ? 'GetRawBlob' : 'GetBlob';
}

/** A verified stream of the blob, re-opened by the call's retry policy while it has emitted nothing. */
export async function fetchBlob(supervisor: Supervisor, blob: BlobRequest, call: CallContext): Promise<BlobStream> {
  const policy = call.policy.retry;
  const open = (): Promise<BlobStream> => openBlob(supervisor, blob, call);
  if (!policy || policy.attempts <= 1) return open();
  let attempt = 1;
  const first = await withRetry(policy, (n) => {
    attempt = n;
    return open();
  });
  return new RetryingBlobStream(first, open, policy, attempt);
}

/** GetRawBlob: the size the proxy reports (-1 when the source cannot tell) and the stream, verified here. */
export async function fetchRawBlob(
  supervisor: Supervisor,
  image: OpenedImage,
  digest: string,
  expectedSize: number | undefined,
  call: CallContext,
): Promise<{ size: number; stream: BlobStream }> {
  hashAlgorithm(digest);
  if (!supervisor.supports('GetRawBlob')) throw unsupported(supervisor, 'getRawBlob');
  const reply = await supervisor.call('GetRawBlob', () => [image.wireId(), digest], 'dual', requestOptions<DualReply>(call));
  const size = valueOrRelease(reply, () => expectSize('GetRawBlob', reply.value));
  const stream = new RawBlobStream(reply, {
    digest,
    expectedSize: expectedSize ?? size,
    signal: call.signal,
    bodyIdleTimeoutMs: call.policy.bodyIdleTimeoutMs,
  });
  return { size, stream };
}

async function openBlob(supervisor: Supervisor, blob: BlobRequest, call: CallContext): Promise<BlobStream> {
  try {
    return blob.transfer === 'GetRawBlob' ? await openRaw(supervisor, blob, call) : await openFinishPipe(supervisor, blob, call);
  } catch (error) {
    // A store asked for a blob it does not keep: most likely a compressed digest from the manifest.
    if (error instanceof RequestError && isStorageReference(blob.image.reference) && isMissingStoreBlob(error.serverMessage)) {
      throw new RequestError(error.method, error.serverMessage, error.code, { cause: error, hint: STORE_BLOB_HINT });
    }
    throw error;
  }
}

async function openRaw(supervisor: Supervisor, { image, digest, size }: BlobRequest, call: CallContext): Promise<BlobStream> {
  const known = size !== UNKNOWN_SIZE;
  const { size: reported, stream } = await fetchRawBlob(supervisor, image, digest, known ? size : undefined, call);
  if (known && reported !== UNKNOWN_SIZE && reported !== size) {
    stream.destroy();
    throw new BlobVerificationError(digest, size, reported, `the source reports ${reported} bytes`);
  }
  return stream;
}

async function openFinishPipe(supervisor: Supervisor, { image, digest, size }: BlobRequest, call: CallContext): Promise<BlobStream> {
  // GetBlob needs a size. When it is unknown, ask for 0: the server's reply
  // value is the size the source reports, and its only complaint will be
  // that 0 bytes were expected (see FinishPipeBlobStream).
  const known = size !== UNKNOWN_SIZE;
  const requested = known ? size : 0;
  const pipe = await supervisor.call('GetBlob', () => [image.wireId(), digest, requested], 'pipe', requestOptions<PipeReply>(call));
  const reported = valueOrRelease(pipe, () => expectSize('GetBlob', pipe.value));
  return new FinishPipeBlobStream(pipe, {
    digest,
    expectedSize: known ? size : reported,
    requestedSize: requested,
    signal: call.signal,
    bodyIdleTimeoutMs: call.policy.bodyIdleTimeoutMs,
  });
}

function unsupported(supervisor: Supervisor, operation: string): UnsupportedOperationError {
  return new UnsupportedOperationError(operation, FEATURE_VERSIONS.GetRawBlob, supervisor.protocolVersion);
}

/** Reads a reply's value; if it is malformed, frees what the reply holds before throwing. */
function valueOrRelease<T>(reply: PipeReply | DualReply, read: () => T): T {
  try {
    return read();
  } catch (error) {
    reply.release();
    throw error;
  }
}
