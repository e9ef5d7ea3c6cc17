/**
 * The supervisor owns the skopeo child: launch and handshake, the calls made
 * on it, the images it holds, restart when its transport is wedged (an
 * unanswered request blocks every later one), and shutdown. Streams and calls
 * only fail; the transport reports "wedged" here, and this decides.
 */
import { EventEmitter } from 'node:events';
import type { SpawnPlan } from './config.js';
import { ProtocolError, ProxyClosedError, ProxyExitedError, ProxyRestartedError, ProxyTooOldError, RequestStallError, SpawnError } from './errors.js';
import type { CallPolicy } from './policy.js';
import { compareVersions, expectString, expectUint, FEATURE_VERSIONS, isVersion, MINIMUM_PROTOCOL_VERSION, type Feature, type RequestArg } from './protocol.js';
import type { ReplyKind, ReplyOf } from './replies.js';
import { spawnChild, type SpawnedChild } from './spawn.js';
import { Transport, type RequestOptions, type TransportOwner } from './transport.js';

/** The `restart` event: the proxy replaced a wedged skopeo. */
export interface RestartEvent {
  /** Why: a StallError of a blob, or the RequestStallError of a request that got no answer. */
  reason: Error;
  /** Restarts so far, this one included. */
  restarts: number;
}

/** An image the child holds open, re-opened on a replacement child. */
export interface HeldImage {
  readonly reference: string;
  /** The new child's id, or why it could not be re-opened there. */
  rebind(id: number | Error): void;
}

/** A call on the current child; `args` is evaluated when it is sent, so a re-sent call picks up re-opened image ids. */
export type CallOptions<K extends ReplyKind> = Omit<RequestOptions<K>, 'replyTimeoutMs'> & { replyTimeoutMs?: number };

/** One skopeo child and the transport to it. */
interface Generation {
  child: SpawnedChild;
  transport: Transport;
  version: string;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

export class Supervisor extends EventEmitter<{ restart: [RestartEvent] }> implements TransportOwner {
  readonly #plan: SpawnPlan;
  readonly #policy: CallPolicy;
  #generation!: Generation;
  #recovering: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  /** Why the proxy can no longer work (a restart that could not start skopeo). */
  #fatal: Error | undefined;
  readonly #held = new Set<HeldImage>();
  /** Every child not yet reaped, by its transport. */
  readonly #children = new Map<Transport, Generation>();
  #restarts = 0;

  private constructor(plan: SpawnPlan, policy: CallPolicy) {
    super();
    this.#plan = plan;
    this.#policy = policy;
  }

  /** Starts skopeo and performs the handshake (within the reply timeout). */
  static async start(plan: SpawnPlan, policy: CallPolicy): Promise<Supervisor> {
    const supervisor = new Supervisor(plan, policy);
    supervisor.#generation = await supervisor.#launch();
    return supervisor;
  }

  get protocolVersion(): string {
    return this.#generation.version;
  }

  /** Whether the child is new enough for a protocol feature. */
  supports(feature: Feature): boolean {
    return compareVersions(this.protocolVersion, FEATURE_VERSIONS[feature]) >= 0;
  }

  get policy(): CallPolicy {
    return this.#policy;
  }

  get pid(): number | undefined {
    return this.#generation.child.child.pid;
  }

  get stderr(): string {
    return this.#generation.child.stderr();
  }

  get running(): boolean {
    return this.#closing === undefined && this.#fatal === undefined && (this.#recovering !== undefined || this.#generation.transport.open);
  }

  get closing(): boolean {
    return this.#closing !== undefined;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /** The images the child holds, oldest first. */
  get held(): HeldImage[] {
    return [...this.#held];
  }

  hold(image: HeldImage): void {
    this.#held.add(image);
  }

  unhold(image: HeldImage): void {
    this.#held.delete(image);
  }

  /**
   * Sends a request on the current child. One still queued when the child was
   * replaced is sent again to the new one; one already sent fails with a
   * retryable ProxyRestartedError.
   */
  async call<K extends ReplyKind>(method: string, args: () => RequestArg[], kind: K, options: CallOptions<K> = {}): Promise<ReplyOf<K>> {
    for (;;) {
      if (this.#closing) throw new ProxyClosedError();
      await this.#recovering;
      if (this.#fatal) throw this.#fatal;
      const { transport } = this.#generation;
      try {
        return await transport.request(method, args(), kind, { ...options, replyTimeoutMs: options.replyTimeoutMs ?? this.#policy.replyTimeoutMs });
      } catch (error) {
        if (error instanceof ProxyRestartedError && !error.sent) continue;
        throw error;
      }
    }
  }

  /** The one entry point for "this transport is stuck, here is why". */
  wedged(transport: Transport, reason: Error): void {
    if (this.#generation?.transport !== transport || this.#closing || this.#recovering) {
      // A child being launched or re-opening images: it fails, its caller decides.
      transport.fail(reason);
      return;
    }
    this.#restart(reason);
  }

  disconnected(transport: Transport): void {
    const generation = this.#children.get(transport);
    if (!generation) return; // reaped: its transport has failed already
    // The socket can report EOF before the exit status is known: give the exit
    // a moment so the error can say how skopeo died.
    const timer = setTimeout(() => transport.fail(exitedError(generation)), 2000);
    void generation.child.exited.then(() => {
      clearTimeout(timer);
      transport.fail(exitedError(generation));
    });
  }

  /**
   * Sends Shutdown after the calls already queued and waits for skopeo to exit
   * (SIGTERM, then SIGKILL, after `timeoutMs`). Idempotent.
   * @throws {ProxyExitedError} skopeo exited with a non-zero status on its own.
   */
  shutdown(timeoutMs: number): Promise<void> {
    this.#closing ??= this.#shutdown(timeoutMs);
    return this.#closing;
  }

  async #shutdown(timeoutMs: number): Promise<void> {
    await this.#recovering?.catch(() => {});
    const generation = this.#generation;
    const { child, transport } = generation;
    child.child.ref(); // keep the process alive until the child is reaped
    if (generation.exit) return;
    await transport.sendOneWay('Shutdown').catch(() => {});
    let killed = false;
    const escalate = async (signal: NodeJS.Signals, wait: number): Promise<void> => {
      if (await settlesWithin(child.exited, wait)) return;
      killed = true;
      child.child.kill(signal);
    };
    await escalate('SIGTERM', timeoutMs);
    await escalate('SIGKILL', 2000);
    const status = await child.exited;
    transport.fail(new ProxyClosedError());
    if (!killed && status.code !== 0 && status.code !== null) {
      throw exitedError(generation);
    }
  }

  /** Replaces a wedged child: fail what it holds, start another, re-open held images. */
  #restart(reason: Error): void {
    const old = this.#generation;
    old.transport.fail(new ProxyRestartedError(reason, true), new ProxyRestartedError(reason, false));
    old.child.child.kill('SIGKILL');
    this.#recovering = (async () => {
      try {
        this.#generation = await this.#reopenAll();
        this.#restarts++;
        this.emit('restart', { reason, restarts: this.#restarts });
      } catch (error) {
        // No replacement: the proxy stays failed; later calls see why.
        this.#fatal = error as Error;
      }
    })().finally(() => {
      this.#recovering = undefined;
    });
  }

  /**
   * Starts a child and re-opens the held images on it, in order. An image
   * whose re-open gets no answer is given up (its calls then fail with the
   * stall), and the hung child is replaced again for the rest.
   */
  async #reopenAll(): Promise<Generation> {
    let pending = [...this.#held];
    for (;;) {
      const next = await this.#launch();
      const hung = await reopen(next.transport, pending, this.#policy.replyTimeoutMs);
      if (hung < 0) return next;
      next.child.child.kill('SIGKILL');
      pending = pending.slice(hung + 1);
    }
  }

  /** Spawns a child and performs the handshake. */
  async #launch(): Promise<Generation> {
    const child = spawnChild(this.#plan);
    const transport = new Transport(child.socketFd, this);
    const generation: Generation = { child, transport, version: '' };
    this.#children.set(transport, generation);
    void child.exited.then((status) => {
      generation.exit = status;
      this.#children.delete(transport);
      transport.fail(this.#closing ? new ProxyClosedError() : exitedError(generation));
    });
    try {
      const reply = await transport.request('Initialize', [], 'plain', { replyTimeoutMs: this.#policy.replyTimeoutMs });
      const version = expectString('Initialize', reply.value);
      if (!isVersion(version)) throw new ProtocolError(`Initialize: ${JSON.stringify(version)} is not a version`);
      if (compareVersions(version, MINIMUM_PROTOCOL_VERSION) < 0) throw new ProxyTooOldError(MINIMUM_PROTOCOL_VERSION, version);
      generation.version = version;
      return generation;
    } catch (error) {
      transport.fail(new ProxyClosedError());
      child.child.ref();
      child.child.kill('SIGKILL');
      await child.exited;
      const argv = this.#plan.argv.join(' ');
      if (error instanceof ProxyExitedError) {
        const why = exitedError(generation).message.replace(/^skopeo image proxy /, '');
        throw new SpawnError(`${argv} did not start: ${why}`, this.#plan.argv, { cause: error });
      }
      if (error instanceof RequestStallError) {
        throw new SpawnError(
          `${argv} started but did not answer the handshake within ${error.stallTimeoutMs} ms; check that it is skopeo's experimental-image-proxy (or raise replyTimeout)`,
          this.#plan.argv,
          { cause: error },
        );
      }
      throw error;
    }
  }
}

function exitedError({ child, exit }: Generation): ProxyExitedError {
  return new ProxyExitedError(exit?.code ?? null, exit?.signal ?? null, child.stderr());
}

/** Re-opens `images` on a new child; the index of the one that got no answer, or -1. */
async function reopen(transport: Transport, images: HeldImage[], replyTimeoutMs: number): Promise<number> {
  for (const [index, image] of images.entries()) {
    try {
      image.rebind(expectUint('OpenImage', (await transport.request('OpenImage', [image.reference], 'plain', { replyTimeoutMs })).value));
    } catch (error) {
      image.rebind(error as Error);
      if (error instanceof RequestStallError) return index;
    }
  }
  return -1;
}

function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void promise.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
