/**
 * Opened images: the handle a caller holds, and opening and closing them on
 * the supervisor's child. Closing is never lost: CloseImage is sent even when
 * the caller stops waiting for it.
 */
import { ImageClosedError, ImageNotFoundError, InvalidArgumentError, RequestError } from './errors.js';
import type { CallPolicy, PolicyOptions } from './policy.js';
import { expectUint, type RequestArg } from './protocol.js';
import { untilAborted, type PlainReply } from './replies.js';
import { isNotFound } from './skopeo-messages.js';
import { storeNotFoundHint } from './storage.js';
import type { ImageProxy } from './proxy.js';
import type { Supervisor } from './supervisor.js';
import type { Transport } from './transport.js';

/** Options every call accepts. */
export interface CallOptions extends Pick<PolicyOptions, 'replyTimeout'> {
  /** Aborts the call (and, for blob streams, destroys the stream). */
  signal?: AbortSignal;
}

/** One call, as the modules below the facade see it: its signal and its resolved policy. */
export interface CallContext {
  readonly signal?: AbortSignal | undefined;
  readonly policy: CallPolicy;
}

/** An image opened on a proxy. Close it (or `await using` it) when done. */
export class OpenedImage {
  #id: number;
  #closed = false;
  #lost: Error | undefined;

  /** @internal */
  constructor(
    /** The proxy it was opened on. */
    readonly proxy: ImageProxy,
    id: number,
    /** The reference it was opened with, e.g. `docker://quay.io/fedora/fedora:42`. */
    readonly reference: string,
  ) {
    this.#id = id;
  }

  /** The proxy's current id for this image (it changes if the proxy restarts). */
  get id(): number {
    return this.#id;
  }

  /** Whether the image was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal After a restart: the new child's id, or why it could not be re-opened. */
  rebind(id: number | Error): void {
    if (typeof id === 'number') this.#id = id;
    else this.#lost = id;
  }

  /** @internal The id to send: throws if the image cannot be used. */
  wireId(): number {
    if (this.#closed) throw new ImageClosedError(this.reference);
    if (this.#lost) throw this.#lost;
    return this.#id;
  }

  /** @internal Marks it closed; whether it was open. */
  markClosed(): boolean {
    const wasOpen = !this.#closed;
    this.#closed = true;
    return wasOpen;
  }

  /** @internal */
  get lost(): Error | undefined {
    return this.#lost;
  }

  /** Same as `proxy.closeImage(this)`. */
  close(options?: CallOptions): Promise<void> {
    return this.proxy.closeImage(this, options);
  }

  /** Closes the image, if the proxy still runs (`await using image = …`). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#closed && this.proxy.running) await this.close();
  }
}

/** OpenImage; not-found errors become ImageNotFoundError. */
export async function openImage(supervisor: Supervisor, owner: ImageProxy, reference: string, call: CallContext): Promise<OpenedImage> {
  checkReference(reference);
  let reply: PlainReply;
  try {
    reply = await supervisor.call('OpenImage', () => [reference], 'plain', requestOptions(call, closeAbandonedImage(call.policy)));
  } catch (error) {
    if (error instanceof RequestError && isNotFound(error.serverMessage)) {
      throw new ImageNotFoundError(reference, error.method, error.serverMessage, error.code, { cause: error, hint: storeNotFoundHint(reference) });
    }
    throw error;
  }
  return hold(supervisor, new OpenedImage(owner, expectUint('OpenImage', reply.value), reference));
}

/**
 * OpenImageOptional (0.2.4), or OpenImage with each transport's not-found
 * errors recognised before that; null when the image is not there.
 */
export async function openImageOptional(
  supervisor: Supervisor,
  owner: ImageProxy,
  reference: string,
  call: CallContext,
  probeManifest: (image: OpenedImage) => Promise<unknown>,
): Promise<OpenedImage | null> {
  checkReference(reference);
  let image: OpenedImage | null = null;
  try {
    if (!supervisor.supports('OpenImageOptional')) image = await openImage(supervisor, owner, reference, call);
    else {
      const reply = await supervisor.call('OpenImageOptional', () => [reference], 'plain', requestOptions(call, closeAbandonedImage(call.policy)));
      const id = expectUint('OpenImageOptional', reply.value);
      image = id === 0 ? null : hold(supervisor, new OpenedImage(owner, id, reference));
    }
    // dir: opens lazily, whether or not the directory exists: look for its manifest.
    if (image && reference.startsWith('dir:')) await probeManifest(image);
    return image;
  } catch (error) {
    if (error instanceof RequestError && isNotFound(error.serverMessage)) {
      await image?.close().catch(() => {});
      return null;
    }
    throw error;
  }
}

/**
 * CloseImage. The image counts as closed at once; the request is sent even
 * if `signal` aborts (the caller only stops waiting), and the image stays held
 * until it is answered, so a restart in between re-opens it and the re-sent
 * CloseImage finds it on the new child.
 */
export async function closeImage(supervisor: Supervisor, image: OpenedImage, call: CallContext): Promise<void> {
  if (!image.markClosed()) return;
  const id = (): RequestArg[] => {
    if (image.lost) throw image.lost;
    return [image.id];
  };
  const closed = supervisor
    .call('CloseImage', id, 'plain', requestOptions({ policy: call.policy }))
    .then(
      () => undefined,
      (error: unknown) => {
        if (!image.lost) throw error; // one a restart could not re-open is gone anyway
      },
    )
    .finally(() => supervisor.unhold(image));
  await untilAborted(closed, call.signal);
}

/** Closes every image the child holds (before Shutdown: the server frees what they hold, e.g. an `oci-archive:`'s unpacked copy). */
export async function closeAll(supervisor: Supervisor, call: CallContext): Promise<void> {
  if (!supervisor.running) return;
  await Promise.all(supervisor.held.map((image) => closeImage(supervisor, image as OpenedImage, call).catch(() => {})));
}

export function checkOwner(image: OpenedImage, owner: ImageProxy): void {
  if (!(image instanceof OpenedImage) || image.proxy !== owner) {
    throw new InvalidArgumentError('this OpenedImage belongs to another ImageProxy (or is not one)');
  }
}

function hold(supervisor: Supervisor, image: OpenedImage): OpenedImage {
  supervisor.hold(image);
  return image;
}

/** What the supervisor is told about a call. */
export function requestOptions<R>(
  call: CallContext,
  onAbandoned?: (reply: R, transport: Transport) => void,
): { signal?: AbortSignal; replyTimeoutMs: number; onAbandoned?: (reply: R, transport: Transport) => void } {
  return { ...(call.signal && { signal: call.signal }), replyTimeoutMs: call.policy.replyTimeoutMs, ...(onAbandoned && { onAbandoned }) };
}

/** An OpenImage the caller aborted still opened the image on the server: close it there. */
function closeAbandonedImage(policy: CallPolicy): (reply: PlainReply, transport: Transport) => void {
  return (reply, transport) => {
    if (typeof reply.value !== 'number' || reply.value <= 0) return;
    transport.request('CloseImage', [reply.value], 'plain', { replyTimeoutMs: policy.replyTimeoutMs }).catch(() => {});
  };
}

function checkReference(reference: string): void {
  if (typeof reference !== 'string' || reference.trim() === '') {
    throw new InvalidArgumentError('an image reference must be a non-empty string such as "docker://quay.io/fedora/fedora:42"');
  }
  if (reference.includes('\0')) {
    throw new InvalidArgumentError(`the image reference ${JSON.stringify(reference)} contains a NUL byte; no transport accepts one`);
  }
}
