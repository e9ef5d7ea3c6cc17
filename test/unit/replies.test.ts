/**
 * Reply deadlines, pipe and dual replies, untilAborted, and the transport's
 * send path, without skopeo: a real socketpair (the addon's) and real FIFOs
 * stand in for the proxy's socket and pipes. Stryker survivors of the
 * integration suite, which reaches these only through the happy paths (see
 * MUTATION.md).
 */
import assert from 'node:assert/strict';
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ProtocolError, RequestStallError } from '../../src/errors.js';
import { native } from '../../src/native.js';
import { DualReply, PipeReply, ReplyDeadline, STALLED_FINISH_GRACE_MS, untilAborted, type PipeOwner } from '../../src/replies.js';
import { Transport, type TransportOwner } from '../../src/transport.js';
import { watchdog } from '../support/env.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A deadline's expiries, as they happen. */
function watch(deadline: ReplyDeadline): Error[] {
  const expired: Error[] = [];
  deadline.arm((reason) => expired.push(reason));
  return expired;
}

/**
 * The first expiry of a deadline, armed now. The deadline's timer is unref'd;
 * the watchdog's timer keeps the loop alive until it fires (without one the loop
 * may end first, and node:test fails the test as "still pending").
 */
function expiry(deadline: ReplyDeadline): Promise<Error> {
  return watchdog(60_000, 'a deadline expiring', new Promise<Error>((resolve) => deadline.arm(resolve)));
}

/**
 * Counts refresh() calls on the timers made while it is installed (the
 * deadline's timer is private; a wait started over cannot be seen without
 * timing it, and the tests time nothing).
 */
function countRefreshes(): { readonly count: number; restore(): void } {
  const real = globalThis.setTimeout;
  let count = 0;
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    const handle = real(...args);
    const refresh = handle.refresh.bind(handle);
    handle.refresh = () => {
      count++;
      return refresh();
    };
    return handle;
  }) as typeof setTimeout;
  return {
    get count() {
      return count;
    },
    restore: () => void (globalThis.setTimeout = real),
  };
}

describe('ReplyDeadline', () => {
  it('refresh() starts an armed wait over, and does nothing before the request is sent', () => {
    const refreshes = countRefreshes();
    try {
      const deadline = new ReplyDeadline('GetBlob', 60_000);
      deadline.refresh(); // not armed: no timer to start over
      assert.equal(refreshes.count, 0);
      watch(deadline);
      deadline.refresh();
      assert.equal(refreshes.count, 1, "the armed timer's wait started over");
      deadline.settle();
    } finally {
      refreshes.restore();
    }
  });

  it('expires once, with a RequestStallError naming the method, and not after settle()', async () => {
    const expiring = new ReplyDeadline('OpenImage', 20);
    const expired = watch(expiring);
    await sleep(150);
    assert.equal(expired.length, 1);
    assert.ok(expired[0] instanceof RequestStallError && expired[0].method === 'OpenImage' && expired[0].stallTimeoutMs === 20);

    const settled = new ReplyDeadline('OpenImage', 20);
    settled.settle();
    const expiredSettled = watch(settled); // armed after its reply came: nothing to wait for
    await sleep(100);
    assert.deepEqual(expiredSettled, []);
  });

  it('tighten: a longer or equal wait, or a settled deadline, keeps what it had', async () => {
    const looser = new ReplyDeadline('FinishPipe', 30);
    const expiredLooser = watch(looser);
    looser.tighten(5000, new Error('not this one'));
    const equal = new ReplyDeadline('FinishPipe', 30);
    const expiredEqual = watch(equal);
    equal.tighten(30, new Error('not this one either'));
    const settled = new ReplyDeadline('FinishPipe', 5000);
    const expiredSettled = watch(settled);
    settled.settle();
    settled.tighten(10, new Error('settled'));
    await sleep(300);
    for (const expired of [expiredLooser, expiredEqual]) {
      assert.equal(expired.length, 1);
      assert.ok(expired[0] instanceof RequestStallError, String(expired[0]));
    }
    assert.deepEqual(expiredSettled, []);
  });

  it('tighten: a shorter wait (or none before) restarts the timer once, with the new reason', async () => {
    const stalled = new Error('the body stalled');
    const long = new ReplyDeadline('FinishPipe', 60_000);
    const expiredLong = watch(long);
    long.tighten(20, stalled);
    const never = new ReplyDeadline('FinishPipe', 0);
    const expiredNever = watch(never);
    never.tighten(20, stalled);
    // Tightened between two arms of its own timer: the first timer must not fire as well.
    const short = new ReplyDeadline('FinishPipe', 60);
    const expiredShort = watch(short);
    short.tighten(30, stalled);
    await sleep(400);
    assert.deepEqual(expiredLong, [stalled]);
    assert.deepEqual(expiredNever, [stalled]);
    assert.deepEqual(expiredShort, [stalled], 'one expiry: the first timer was cleared');
  });

  it('tighten before the request is sent arms nothing until it is', async () => {
    const stalled = new Error('the body stalled');
    const deadline = new ReplyDeadline('FinishPipe', 0);
    deadline.tighten(10, stalled); // a timer without an owner would throw when it fires
    await sleep(60);
    const expired = watch(deadline);
    await sleep(200);
    assert.deepEqual(expired, [stalled]);
  });
});

/** A FIFO's two ends: real pipe fds for PipeReply.readAll. */
const fifoDir = mkdtempSync(join(tmpdir(), 'cip-replies-'));
after(() => rmSync(fifoDir, { recursive: true, force: true }));
let fifos = 0;
function pipe(): { read: number; write: number } {
  const path = join(fifoDir, `fifo-${fifos++}`);
  native.mknod(Buffer.from(path), 'fifo', 0o600, 0, 0);
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY);
  return { read, write };
}

/** A PipeOwner that records FinishPipe and answers it with `verdict`. */
function owner(verdict: () => Promise<void> = () => Promise.resolve()): PipeOwner & { finishes: Array<{ pipeId: number; deadline: ReplyDeadline }> } {
  const finishes: Array<{ pipeId: number; deadline: ReplyDeadline }> = [];
  return {
    finishes,
    finishPipe(pipeId, deadline) {
      finishes.push({ pipeId, deadline });
      return verdict();
    },
  };
}

describe('PipeReply', () => {
  it('reads the pipe whole and finishes it once', async () => {
    const { read, write } = pipe();
    writeSync(write, 'a manifest');
    closeSync(write);
    const finisher = owner();
    const reply = new PipeReply({}, 7, read, finisher, 0);
    assert.equal((await reply.readAll('the manifest')).toString(), 'a manifest');
    await reply.finish();
    assert.deepEqual(finisher.finishes.map((f) => f.pipeId), [7]);
  });

  it('reads a body of any size up to 64 MiB by default (60 KB here)', async () => {
    const { read, write } = pipe();
    const body = Buffer.alloc(60_000, 'm');
    writeSync(write, body);
    closeSync(write);
    const reply = new PipeReply({}, 2, read, owner(), 0);
    assert.ok((await reply.readAll('the manifest')).equals(body));
  });

  it("FinishPipe's deadline names FinishPipe, and the body's progress starts it over", async () => {
    const finisher = owner(() => new Promise(() => {}));
    const { read, write } = pipe();
    closeSync(write);
    const reply = new PipeReply({}, 6, read, finisher, 1);
    void reply.finish();
    const expired = await expiry(finisher.finishes[0]!.deadline);
    assert.ok(expired instanceof RequestStallError, String(expired));
    assert.equal(expired.method, 'FinishPipe');
    assert.equal(expired.message.includes('FinishPipe'), true, expired.message);
    reply.release();

    const refreshes = countRefreshes();
    try {
      const other = pipe();
      closeSync(other.write);
      const moving = new PipeReply({}, 8, other.read, finisher, 60_000);
      void moving.finish();
      watch(finisher.finishes[1]!.deadline);
      moving.progress();
      assert.equal(refreshes.count, 1, "FinishPipe's wait started over");
      finisher.finishes[1]!.deadline.settle();
      moving.release();
    } finally {
      refreshes.restore();
    }
  });

  it('fails with the error the poll or read of the pipe gives, after the call (a socket whose peer left a packet unread)', async () => {
    // The fd is valid when readAll starts: the error (the socket's ECONNRESET, which libuv's
    // poll reports as EBADF) comes through the callback, not from the call.
    const [ours, theirs] = native.socketPair();
    writeSync(ours, 'unread');
    closeSync(theirs);
    const reply = new PipeReply({}, 1, ours, owner(), 0);
    await assert.rejects(reply.readAll('the manifest'), (error: unknown) => {
      assert.ok(!(error instanceof ProtocolError), String(error));
      assert.ok(['EBADF', 'ECONNRESET'].includes((error as { code?: string }).code ?? ''), String(error));
      return true;
    });
  });

  it('refuses a body over maxBytes with a ProtocolError naming it', async () => {
    const { read, write } = pipe();
    writeSync(write, Buffer.alloc(100));
    closeSync(write);
    const reply = new PipeReply({}, 1, read, owner(), 0);
    await assert.rejects(reply.readAll('the config', undefined, 10), (error: unknown) => {
      assert.ok(error instanceof ProtocolError, String(error));
      assert.equal(error.message, 'the config is larger than 10 bytes; refusing to buffer it');
      return true;
    });
  });

  it('fails with the read error of a bad fd', async () => {
    const reply = new PipeReply({}, 1, 1_000_000, owner(), 0); // no such fd
    await assert.rejects(reply.readAll('the manifest'), (error: unknown) => error instanceof Error && !(error instanceof ProtocolError) && (error as { code?: string }).code !== undefined);
  });

  it('hands its fd over once', () => {
    const { read, write } = pipe();
    closeSync(write);
    const reply = new PipeReply({}, 1, read, owner(), 0);
    assert.equal(reply.takeFd(), read);
    assert.throws(() => reply.takeFd(), /^Error: the pipe fd was already taken or closed$/);
    closeSync(read);
  });

  it('release(stalled) gives FinishPipe the grace, and its reason', async () => {
    const { read, write } = pipe();
    closeSync(write);
    const finisher = owner(() => new Promise(() => {}));
    const stalled = new Error('stalled');
    const reply = new PipeReply({}, 3, read, finisher, 0);
    reply.release(stalled);
    assert.equal(finisher.finishes.length, 1);
    const expired = watch(finisher.finishes[0]!.deadline);
    await sleep(STALLED_FINISH_GRACE_MS + 500);
    assert.deepEqual(expired, [stalled]);
    assert.throws(() => reply.takeFd(), /already taken or closed/, 'release closed the fd');
  });
});

describe('DualReply', () => {
  it('hands its fds over once; release after that closes nothing and does not throw', () => {
    const first = pipe();
    const second = pipe();
    const reply = new DualReply({}, first.read, second.read, { failureWithin: () => Promise.resolve(undefined) });
    assert.deepEqual(reply.takeFds(), [first.read, second.read]);
    assert.throws(() => reply.takeFds(), /^Error: the fds were already taken or closed$/);
    reply.release();
    for (const fd of [first.read, first.write, second.read, second.write]) closeSync(fd); // still open: release closed none
  });
});

describe('untilAborted', () => {
  it('settles as the promise does and leaves no listener on the signal', async () => {
    const controller = new AbortController();
    assert.equal(await untilAborted(Promise.resolve(5), controller.signal), 5);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'after a success');
    const failure = new Error('failed');
    await assert.rejects(untilAborted(Promise.reject(failure), controller.signal), (error) => error === failure);
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'after a failure');
  });

  it('an already aborted signal: rejects with its reason at once, and a later rejection of the promise is handled', async () => {
    const reason = new Error('aborted before');
    await assert.rejects(untilAborted(new Promise(() => {}), AbortSignal.abort(reason)), (error) => error === reason);
    let rejectLater!: (error: Error) => void;
    const failing = new Promise<never>((_resolve, reject) => (rejectLater = reject));
    await assert.rejects(untilAborted(failing, AbortSignal.abort(reason)), (error) => error === reason);
    let unhandled = false;
    const onUnhandled = (): void => void (unhandled = true);
    process.on('unhandledRejection', onUnhandled);
    try {
      rejectLater(new Error('the call failed after the abort'));
      await new Promise((resolve) => setImmediate(resolve));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(unhandled, false);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('rejects with the reason as soon as the signal aborts', async () => {
    const controller = new AbortController();
    const waiting = untilAborted(new Promise(() => {}), controller.signal);
    const reason = new Error('stop');
    controller.abort(reason);
    await assert.rejects(waiting, (error) => error === reason);
  });
});

/** An owner that records what the transport reports. */
function transportOwner(): TransportOwner & { disconnects: Array<Error | undefined> } {
  const disconnects: Array<Error | undefined> = [];
  return { disconnects, wedged: () => {}, disconnected: (_transport, cause) => void disconnects.push(cause) };
}

describe('Transport', () => {
  it('failureWithin resolves as soon as the transport fails, not when the wait is over', async () => {
    const [ours, theirs] = native.socketPair();
    const transport = new Transport(ours, transportOwner());
    const failure = new Error('gone');
    const started = Date.now();
    const within = transport.failureWithin(30_000);
    setTimeout(() => transport.fail(failure), 20);
    assert.equal(await within, failure);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.equal(await transport.failureWithin(30_000), failure, 'once failed, at once');
    closeSync(theirs);
  });

  it('a request sent to a closed peer reports the disconnect (EPIPE) and waits for the owner to fail it', async () => {
    const [ours, theirs] = native.socketPair();
    closeSync(theirs);
    const owner = transportOwner();
    const transport = new Transport(ours, owner);
    const request = transport.request('OpenImage', ['x'], 'plain', { replyTimeoutMs: 0 });
    let settled = false;
    request.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(50);
    assert.equal(settled, false, 'the request waits for the exit status, as the supervisor decides');
    assert.equal(owner.disconnects.length >= 1, true);
    assert.equal((owner.disconnects[0] as { code?: string } | undefined)?.code, 'EPIPE');
    const exited = new Error('exited');
    transport.fail(exited);
    await assert.rejects(request, (error) => error === exited);
  });

  it('a request sent after the peer closed with a packet unread reports the disconnect (ECONNRESET, not EPIPE) and waits for the owner', async () => {
    const [ours, theirs] = native.socketPair();
    const owner = transportOwner();
    const transport = new Transport(ours, owner);
    // In one turn, before the loop polls the socket (whose read would take the reset first): Shutdown
    // goes out, the peer goes away without reading it (skopeo killed), and the next send meets the reset.
    const shutdown = transport.sendOneWay('Shutdown');
    closeSync(theirs);
    const request = transport.request('CloseImage', [1], 'plain', { replyTimeoutMs: 0 });
    await shutdown;
    assert.equal((owner.disconnects[0] as { code?: string } | undefined)?.code, 'ECONNRESET');
    const exited = new Error('exited');
    transport.fail(exited);
    await assert.rejects(request, (error) => error === exited);
  });

  it('a send that fails otherwise (EAGAIN: the peer reads nothing, its queue is full) fails that request alone, and is no disconnect', async () => {
    const [ours, theirs] = native.socketPair();
    const owner = transportOwner();
    const transport = new Transport(ours, owner);
    // 500 one-way packets of 30 KB: more than a socket buffer holds (wmem_default, 208 KiB here; up to 15 MB).
    const method = 'M'.repeat(30_000);
    const sends = Array.from({ length: 500 }, () => transport.sendOneWay(method));
    const disconnects = [...owner.disconnects];
    transport.fail(new Error('done'));
    closeSync(theirs);
    assert.deepEqual(disconnects, [], 'no disconnect reported');
    const outcomes = await Promise.allSettled(sends);
    const refused = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as { code?: string }] : []));
    assert.equal(outcomes[0]!.status, 'fulfilled');
    assert.ok(refused.length > 0, 'the queue filled up');
    assert.deepEqual([...new Set(refused.map((error) => error.code))], ['EAGAIN']);
  });

  it('Shutdown goes out with no arguments', async () => {
    const [ours, theirs] = native.socketPair();
    const transport = new Transport(ours, transportOwner());
    let arrived!: (packet: string) => void;
    const packet = new Promise<string>((resolve) => (arrived = resolve));
    const peer = new native.Channel(theirs, (error, data) => {
      if (!error && data) arrived(data.toString());
    });
    try {
      await transport.sendOneWay('Shutdown');
      assert.deepEqual(JSON.parse(await packet), { method: 'Shutdown', args: [] });
    } finally {
      transport.fail(new Error('done'));
      peer.close();
    }
  });

  it('a request with a signal leaves no listener on it once answered', async () => {
    const [ours, theirs] = native.socketPair();
    const transport = new Transport(ours, transportOwner());
    const peer = new native.Channel(theirs, (error, data) => {
      if (!error && data) peer.send(Buffer.from('{"success":true,"value":1,"pipeid":0}'));
    });
    const controller = new AbortController();
    try {
      assert.deepEqual(await transport.request('OpenImage', ['x'], 'plain', { replyTimeoutMs: 0, signal: controller.signal }), { kind: 'plain', value: 1 });
      assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    } finally {
      transport.fail(new Error('done'));
      peer.close();
    }
  });

  it('a plain reply with a pipe id is a ProtocolError naming it, and the next request is answered', async () => {
    const [ours, theirs] = native.socketPair();
    const transport = new Transport(ours, transportOwner());
    // The peer: answers the first request with a stray pipe id, the second properly.
    const answers = ['{"success":true,"value":1,"pipeid":5}', '{"success":true,"value":2,"pipeid":0}'];
    const peer = new native.Channel(theirs, (error, data) => {
      if (!error && data) peer.send(Buffer.from(answers.shift()!));
    });
    try {
      await assert.rejects(transport.request('OpenImage', ['one'], 'plain', { replyTimeoutMs: 0 }), (error: unknown) => {
        assert.ok(error instanceof ProtocolError, String(error));
        assert.equal(error.message, 'OpenImage: the reply has an unexpected pipeid 5');
        return true;
      });
      assert.deepEqual(await transport.request('OpenImage', ['two'], 'plain', { replyTimeoutMs: 0 }), { kind: 'plain', value: 2 });
    } finally {
      transport.fail(new Error('done'));
      peer.close(); // an open channel would keep the test process alive
    }
  });
});
