/**
 * Faults from the REAL child (the skopeo release chosen by $SKOPEO) and from
 * consumers: skopeo killed at every stage, a failed start, a blob file cut
 * short mid-stream, streams destroyed or aborted at every stage, and the
 * parent process dying. Every test runs under a watchdog far below the
 * runner's timeout and checks that no fd and no child process is left
 * behind.
 */
import assert from 'node:assert/strict';
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it, type TestContext } from 'node:test';
import {
  BlobVerificationError,
  ImageProxy,
  OpenedImage,
  ProxyExitedError,
  RequestError,
  SpawnError,
  type BlobStream,
  type BlobTransfer,
} from '../src/index.js';
import { baseConfig, childPids, eventually, openFds, processAlive, processExists, SKOPEO, tempDir, watchdog } from './support/env.js';
import { buildImage, noise, sha256, type BuiltImage, type BuiltLayer } from './support/oci-layout.js';
import { RELEASE, SKOPEO_RELEASE, TRANSFERS } from './support/skopeo-release.js';

/** Far below the runner's --test-timeout (300 s): a hang fails one test, not the run. */
const WATCHDOG_MS = 30_000;

const scratch = tempDir('cip-faults-');
/** Tag `v1`: a small gzip layer and an 8 MB uncompressed one (many pipe buffers' worth). */
let image: BuiltImage;
/** Another image in the same layout, for "other requests go on". */
let other: BuiltImage;
let bigLayer: BuiltLayer;

before(async () => {
  const layout = join(scratch.path, 'layout');
  image = buildImage(layout, 'v1', [
    { entries: [{ type: 'file', name: 'etc/hello.txt', content: 'hello\n' }] },
    { compression: 'none', entries: [{ type: 'file', name: 'big.bin', content: noise(8_000_000, 11) }] },
  ]);
  other = buildImage(layout, 'other', [{ entries: [{ type: 'file', name: 'other.txt', content: 'other\n' }] }]);
  bigLayer = image.layers[1]!;
  // The first child process and the first pipe socket make libuv and Node
  // open fds they keep for good: do that here, so each test's before/after
  // comparison sees only what that test leaks.
  const warmup = await ImageProxy.spawn(baseConfig());
  const img = await warmup.openImage(image.reference);
  await buffer(await warmup.getDescriptor(img, image.layers[0]!));
  await warmup.close();
});

/** Scripts of the parent-death tests, killed at the end should a test fail before they exit. */
const scripts = new Set<ChildProcess>();

after(() => {
  for (const script of scripts) script.kill('SIGKILL');
  scratch[Symbol.dispose]();
});

// ---------------------------------------------------------------------------
// Probes

/** How many fds the skopeo process holds (we are root, or its owner). */
function serverFdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Runs a test body under the watchdog, then requires our fds and children to
 * be back where they were (pipe sockets close and children are reaped a few
 * loop turns after the fact, hence `eventually`).
 */
async function faultTest(what: string, body: () => Promise<void>, watchdogMs = WATCHDOG_MS): Promise<void> {
  const fdsBefore = openFds();
  const childrenBefore = childPids();
  await watchdog(watchdogMs, what, body());
  await eventually(() => openFds().length === fdsBefore.length && childPids().length === childrenBefore.length, 3000);
  assert.deepEqual(openFds(), fdsBefore, `${what}: our fds before/after`);
  assert.deepEqual(childPids(), childrenBefore, `${what}: our child processes before/after`);
}

/** The transfers this skopeo release serves (GetRawBlob from protocol 0.2.8). */
function transfers(): BlobTransfer[] {
  return [...TRANSFERS];
}

/**
 * Whether the server's own fd count is a meaningful leak probe. skopeo 1.9
 * (protocol 0.2.3) never closes the source file of a GetBlob, even one read
 * to the end, so its fd count grows by one per blob whatever the client does.
 */
function serverFdsComparable(t: TestContext): boolean {
  if (RELEASE.policyEnforcement) return true;
  t.diagnostic(`server fd count not compared: skopeo ${SKOPEO_RELEASE} (protocol ${RELEASE.protocol}) leaks one fd per GetBlob by itself`);
  return false;
}

/** The outcome of a stream, captured from the start so an early 'error' is never unhandled. */
function outcome(stream: Readable): Promise<Error | null> {
  return new Promise((resolve) => {
    stream.once('error', resolve);
    stream.once('end', () => resolve(null));
  });
}

/** Reads exactly `count` bytes (fewer if the stream ends first) and leaves the rest unread. */
async function readBytes(stream: Readable, count: number): Promise<number> {
  let got = 0;
  while (got < count) {
    // read(n) returns n bytes once n are buffered; read(1) on an empty buffer asks for more.
    const chunk = stream.read(Math.min(count - got, Math.max(stream.readableLength, 1))) as Buffer | null;
    if (chunk !== null) {
      got += chunk.length;
      continue;
    }
    if (stream.readableEnded || stream.destroyed) break;
    await once(stream, 'readable'); // also emitted at the end; rejects on 'error'
  }
  return got;
}

/**
 * Moments to abort a call at, from "before it is sent" through "in flight"
 * to "after its reply": right away, after some microtasks (the library may
 * take a few before it sends), and after the poll phase (setImmediate),
 * where the request has been sent but skopeo has rarely answered yet.
 */
const ABORT_MOMENTS: Array<{ name: string; wait(): Promise<void> }> = [
  { name: 'synchronously', wait: async () => {} },
  ...[1, 2, 3, 5, 8].map((ticks) => ({
    name: `after ${ticks} microtask(s)`,
    wait: async () => {
      for (let i = 0; i < ticks; i++) await Promise.resolve();
    },
  })),
  { name: 'after setImmediate', wait: () => new Promise<void>((resolve) => setImmediate(resolve)) },
  { name: 'after setImmediate (again)', wait: () => new Promise<void>((resolve) => setImmediate(resolve)) },
  { name: 'after 1 ms', wait: () => new Promise<void>((resolve) => setTimeout(resolve, 1)) },
];

/** A full garbage collection (the flag can be set at run time; `gc` then lives in a new context). */
const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/**
 * Starts a stream and stops it from inside its first 'data' handler, that
 * is from inside the library's own push(); returns a weak reference to it.
 */
async function stopInsideDataHandler(proxy: ImageProxy, img: OpenedImage, transfer: BlobTransfer, how: 'destroy' | 'abort'): Promise<WeakRef<BlobStream>> {
  const controller = new AbortController();
  const stream = await proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer, signal: controller.signal });
  stream.on('error', () => {}); // the AbortError is expected
  await new Promise<void>((resolve) => {
    stream.once('close', resolve);
    stream.once('data', () => (how === 'destroy' ? stream.destroy() : controller.abort()));
  });
  return new WeakRef(stream);
}

/** Downloads a whole blob and checks its digest: the proxy still serves blobs. */
async function assertBlobServed(proxy: ImageProxy, img: OpenedImage, layer: BuiltLayer, transfer: BlobTransfer): Promise<void> {
  const bytes = await buffer(await proxy.getBlob(img, layer.digest, layer.size, { transfer }));
  assert.equal(sha256(bytes), layer.digest, `a full ${transfer} of ${layer.digest} still verifies`);
}

function isKilledBySigkill(error: unknown): boolean {
  assert.ok(error instanceof ProxyExitedError, `expected ProxyExitedError, got ${String(error)}`);
  assert.equal(error.signal, 'SIGKILL');
  assert.equal(error.exitCode, null);
  assert.match(error.message, /killed by SIGKILL/);
  return true;
}

/** A TCP "registry" that accepts connections and never answers: skopeo stalls inside OpenImage. */
async function stalledRegistry(): Promise<{ reference: string; connected: Promise<void>; close(): void }> {
  const sockets: Socket[] = [];
  let onConnect: () => void = () => {};
  const connected = new Promise<void>((resolve) => (onConnect = resolve));
  const server: Server = createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    onConnect();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return {
    reference: `docker://127.0.0.1:${address.port}/stalled/image:latest`,
    connected,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

// ---------------------------------------------------------------------------

describe('skopeo killed with SIGKILL', () => {
  it('while idle: the next call fails with ProxyExitedError naming SIGKILL, no zombie, and a new spawn works', () =>
    faultTest('killed idle', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const pid = proxy.pid!;
      const img = await proxy.openImage(image.reference);
      process.kill(pid, 'SIGKILL');
      await assert.rejects(proxy.fetchManifest(img), isKilledBySigkill);
      assert.equal(proxy.running, false);
      assert.equal(processExists(pid), false, 'the child is reaped: no zombie');
      await proxy.close(); // nothing left to do, must not throw

      const next = await ImageProxy.spawn(baseConfig());
      const again = await next.openImage(image.reference);
      assert.equal((await next.fetchManifest(again)).digest, image.manifestDigest);
      await next.close();
    }));

  it('mid-request: the request in flight and every queued one fail with ProxyExitedError', () =>
    faultTest('killed mid-request', async () => {
      // OpenImage of a registry that never answers keeps skopeo inside a
      // request for as long as we like: deterministic "in flight".
      const registry = await stalledRegistry();
      try {
        const proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
        const pid = proxy.pid!;
        const stalled = proxy.openImage(registry.reference);
        const queued = [proxy.openImage(image.reference), proxy.openImage(other.reference), proxy.openImageOptional(image.reference)];
        await registry.connected; // skopeo is inside OpenImage now
        process.kill(pid, 'SIGKILL');
        for (const call of [stalled, ...queued]) await assert.rejects(call, isKilledBySigkill);
        const started = Date.now();
        await assert.rejects(proxy.openImage(image.reference), isKilledBySigkill);
        assert.ok(Date.now() - started < 500, 'a later call fails at once, not after the 2 s wait for an exit status');
        assert.equal(processExists(pid), false);
      } finally {
        registry.close();
      }
    }));

  it('right after a burst of openImage calls: all but possibly the first (answered before the kill landed) fail', () =>
    faultTest('killed after a burst', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const pid = proxy.pid!;
      const calls = Array.from({ length: 6 }, () => proxy.openImage(image.reference));
      process.kill(pid, 'SIGKILL');
      const results = await Promise.allSettled(calls);
      // At most the first request can have reached skopeo: the others wait
      // for its reply, which the event loop cannot process before the kill.
      results.slice(1).forEach((result) => {
        assert.equal(result.status, 'rejected');
        isKilledBySigkill((result as PromiseRejectedResult).reason);
      });
      const first = results[0]!;
      if (first.status === 'rejected') isKilledBySigkill(first.reason);
      assert.equal(processExists(pid), false);
    }));

  for (const transfer of ['GetBlob', 'GetRawBlob'] as const) {
    it(`mid-stream (${transfer}): the paused stream fails with ProxyExitedError, pending calls reject, later calls reject at once`, (t) =>
      faultTest(`killed mid-stream ${transfer}`, async () => {
        const proxy = await ImageProxy.spawn(baseConfig());
        if (transfer === 'GetRawBlob' && !RELEASE.getRawBlob) {
          await proxy.close();
          t.skip(`GetRawBlob needs protocol 0.2.8; skopeo ${SKOPEO_RELEASE} speaks ${RELEASE.protocol}`);
          return;
        }
        const pid = proxy.pid!;
        const img = await proxy.openImage(image.reference);
        const stream = await proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer });
        const result = outcome(stream);
        assert.ok((await readBytes(stream, 1)) === 1, 'the first byte arrived');
        // Calls made in the same tick as the kill: the first may already be
        // answered, the others are certainly still queued.
        const pending = [proxy.fetchConfig(img), proxy.openImage(other.reference), proxy.getLayerInfo(img)];
        process.kill(pid, 'SIGKILL');
        const settled = await Promise.allSettled(pending);
        settled.slice(1).forEach((r) => {
          assert.equal(r.status, 'rejected');
          isKilledBySigkill((r as PromiseRejectedResult).reason);
        });
        stream.resume(); // read on: the stream must fail, not end and not hang
        // At once: the pipe's EOF, not a timer, tells a GetBlob stream to ask FinishPipe for the verdict.
        const error = await watchdog(10_000, `the ${transfer} stream's failure after the kill`, result);
        assert.ok(stream.bytesReceived < bigLayer.size, 'the kill came before the end of the blob');
        isKilledBySigkill(error);
        const started = Date.now();
        await assert.rejects(proxy.fetchManifest(img), isKilledBySigkill);
        assert.ok(Date.now() - started < 500, 'a later call fails at once, not after the 2 s wait for an exit status');
        assert.equal(processExists(pid), false, 'no zombie');
        await proxy.close();
      }));
  }
});

describe('skopeo fails to start', () => {
  it('exits non-zero on an unknown flag: SpawnError quoting its stderr', () =>
    faultTest('unknown flag', async () => {
      await assert.rejects(ImageProxy.spawn({ skopeoCommand: [SKOPEO, '--no-such-flag'] }), (error: unknown) => {
        assert.ok(error instanceof SpawnError, String(error));
        assert.match(error.message, /unknown flag: --no-such-flag/);
        assert.match(error.message, /exited with code [1-9]/);
        assert.deepEqual(error.command, [SKOPEO, '--no-such-flag', 'experimental-image-proxy']);
        return true;
      });
    }));
});

describe('source blob truncated while streaming', () => {
  it('fails with a verification or request error, never hangs, and the proxy stays usable', () =>
    faultTest('truncated source', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      for (const transfer of transfers()) {
        for (const keep of [0, 2_000_000]) {
          using copy = tempDir();
          cpSync(image.layout, copy.path, { recursive: true });
          const blobFile = join(copy.path, 'blobs', 'sha256', bigLayer.digest.slice('sha256:'.length));
          const img = await proxy.openImage(`oci:${copy.path}:v1`);
          const stream = await proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer });
          const result = outcome(stream);
          await readBytes(stream, 1);
          truncateSync(blobFile, keep); // skopeo is still reading it
          stream.resume();
          const error = await watchdog(15_000, `truncated to ${keep} via ${transfer}`, result);
          assert.ok(
            error instanceof BlobVerificationError || error instanceof RequestError,
            `${transfer}, truncated to ${keep}: expected BlobVerificationError or RequestError, got ${String(error)}`,
          );
          assert.ok(stream.bytesReceived < bigLayer.size);
          await proxy.closeImage(img);
        }
        const img = await proxy.openImage(image.reference);
        await assertBlobServed(proxy, img, bigLayer, transfer);
        await proxy.closeImage(img);
      }
      await proxy.close();
    }));
});

describe('consumer faults', () => {
  it('a stream destroyed after 1 byte, after half, or right before the end: no leak here or in skopeo, proxy usable', (t) =>
    faultTest('destroyed streams', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const img = await proxy.openImage(image.reference);
      await assertBlobServed(proxy, img, bigLayer, 'GetBlob'); // let skopeo open what it keeps open
      const serverFds = serverFdCount(proxy.pid!);
      for (const transfer of transfers()) {
        for (const cut of [1, Math.floor(bigLayer.size / 2), bigLayer.size - 1]) {
          const stream = await proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer });
          const errors: Error[] = [];
          stream.on('error', (error) => errors.push(error));
          assert.equal(await readBytes(stream, cut), cut);
          stream.destroy();
          await once(stream, 'close');
          assert.deepEqual(errors, [], `${transfer} cut at ${cut}: a plain destroy() is not an error`);
        }
        await assertBlobServed(proxy, img, bigLayer, transfer);
        assert.equal((await proxy.fetchManifest(img)).digest, image.manifestDigest);
      }
      if (serverFdsComparable(t)) {
        // Every abandoned pipe was finished: skopeo closed its write ends and source files.
        await eventually(() => serverFdCount(proxy.pid!) <= serverFds, 15_000); // seconds on a loaded machine, as below
        assert.equal(serverFdCount(proxy.pid!), serverFds, 'skopeo fds before/after');
      }
      await proxy.close();
    }));

  it('a stream destroyed or aborted from inside its own data handler is garbage at once (no timer keeps it)', (t) =>
    faultTest('destroyed from a data handler', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const img = await proxy.openImage(image.reference);
      for (const transfer of transfers()) {
        for (const how of ['destroy', 'abort'] as const) {
          const refs: Array<WeakRef<BlobStream>> = [];
          for (let i = 0; i < 3; i++) refs.push(await stopInsideDataHandler(proxy, img, transfer, how));
          // Let every reply and FinishPipe settle, then collect.
          assert.equal((await proxy.fetchManifest(img)).digest, image.manifestDigest);
          await new Promise((resolve) => setTimeout(resolve, 50));
          collectGarbage();
          await new Promise((resolve) => setImmediate(resolve));
          collectGarbage();
          const alive = refs.filter((ref) => ref.deref() !== undefined).length;
          // A timer left armed (say a 60 s stall timer) would hold each stream
          // and its buffered megabyte until it fires: thousands of streams a
          // minute and the process grows by gigabytes.
          assert.equal(alive, 0, `${transfer}, ${how}: ${alive} of ${refs.length} streams still reachable after GC`);
        }
      }
      t.diagnostic(`checked ${transfers().join(', ')}`);
      await proxy.close();
    }));

  it('an AbortSignal aborted before the call rejects with AbortError and sends nothing', () =>
    faultTest('aborted before', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const first = await proxy.openImage(image.reference);
      const aborted = AbortSignal.abort();
      await assert.rejects(proxy.openImage(image.reference, { signal: aborted }), { name: 'AbortError' });
      for (const transfer of transfers()) {
        await assert.rejects(proxy.getBlob(first, bigLayer.digest, bigLayer.size, { transfer, signal: aborted }), { name: 'AbortError' });
      }
      await assert.rejects(proxy.fetchManifest(first, { signal: aborted }), { name: 'AbortError' });
      // skopeo numbers images 1, 2, 3, ...: had the aborted OpenImage been
      // sent, this one would skip a number.
      const second = await proxy.openImage(image.reference);
      assert.equal(second.id, first.id + 1, 'the aborted OpenImage never reached skopeo');
      await proxy.close();
    }));

  it('an AbortSignal aborted at any moment while openImage is under way: AbortError (or the image), no fd leak, proxy usable', (t) =>
    faultTest('aborted openImage', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const seen = { beforeSend: 0, inFlight: 0, afterReply: 0 };
      for (const moment of ABORT_MOMENTS) {
        const first = await proxy.openImage(image.reference);
        const controller = new AbortController();
        const call = proxy.openImage(image.reference, { signal: controller.signal });
        await moment.wait();
        controller.abort();
        const result = await call.then((img) => img, (error: unknown) => error);
        const next = await proxy.openImage(other.reference);
        if (result instanceof OpenedImage) {
          seen.afterReply++; // the reply won the race: a normal image
          assert.equal(result.id, first.id + 1);
          await result.close();
        } else {
          assert.equal((result as Error).name, 'AbortError', `${moment.name}: ${String(result)}`);
          // skopeo numbers images 1, 2, 3, ...: a skipped number means it was sent.
          if (next.id === first.id + 2) seen.inFlight++;
          else seen.beforeSend++;
        }
        assert.equal((await proxy.fetchManifest(next)).digest, other.manifestDigest, `${moment.name}: proxy usable`);
        await first.close();
        await next.close();
      }
      t.diagnostic(`abort moments: ${JSON.stringify(seen)}`);
      assert.ok(seen.inFlight > 0, `no abort landed while OpenImage was in flight: ${JSON.stringify(seen)}`);
      await proxy.close();
    }));

  it('an OpenImage abandoned in flight is closed on the server when its reply arrives', () =>
    faultTest('abandoned image closed', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      let abandonedId: number | undefined;
      for (const moment of ABORT_MOMENTS) {
        const first = await proxy.openImage(image.reference);
        const controller = new AbortController();
        const call = proxy.openImage(image.reference, { signal: controller.signal });
        await moment.wait();
        controller.abort();
        const result = await call.then((img) => img, (error: unknown) => error);
        if (result instanceof OpenedImage) await result.close();
        const next = await proxy.openImage(image.reference);
        if (!(result instanceof OpenedImage) && next.id === first.id + 2) {
          abandonedId = first.id + 1;
          break;
        }
      }
      assert.ok(abandonedId !== undefined, 'no abort landed while OpenImage was in flight');
      // Unless the library closes it, skopeo keeps that image (and whatever it
      // holds open) until it exits: a long-lived proxy with many aborted
      // opens grows without bound.
      await assert.rejects(
        proxy.closeImage(new OpenedImage(proxy, abandonedId, image.reference)),
        (error: unknown) => error instanceof RequestError && new RegExp(`no image ${abandonedId}\\b`).test(error.serverMessage),
        `image ${abandonedId}, abandoned in flight, is still open in skopeo`,
      );
      await proxy.close();
    }));

  it('an AbortSignal aborted at any moment while getBlob is under way: AbortError, the reply fds are closed on arrival, proxy usable', (t) =>
    faultTest('aborted getBlob', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const img = await proxy.openImage(image.reference);
      await assertBlobServed(proxy, img, bigLayer, 'GetBlob');
      const serverFds = serverFdCount(proxy.pid!);
      for (const transfer of transfers()) {
        const ourFds = openFds().length;
        for (const moment of ABORT_MOMENTS) {
          const controller = new AbortController();
          const call = proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer, signal: controller.signal });
          await moment.wait();
          controller.abort();
          const result = await call.then((stream) => stream, (error: unknown) => error);
          if (result instanceof Error) {
            assert.equal(result.name, 'AbortError', `${transfer}, ${moment.name}: ${String(result)}`);
          } else {
            // The reply won the race: the signal now destroys the stream.
            const error = await outcome(result as BlobStream);
            assert.equal(error?.name, 'AbortError', `${transfer}, ${moment.name}: the stream ends with AbortError`);
          }
        }
        // Replies of abandoned requests arrive after the rejections: one more
        // round trip and the queue has drained.
        assert.equal((await proxy.fetchManifest(img)).digest, image.manifestDigest);
        await eventually(() => openFds().length <= ourFds, 2000);
        assert.equal(openFds().length, ourFds, `${transfer}: the abandoned replies' fds were closed`);
        await assertBlobServed(proxy, img, bigLayer, transfer);
      }
      if (serverFdsComparable(t)) {
        // skopeo writes an abandoned blob until the pipe breaks: on a loaded
        // machine (CI runs jobs side by side) that took over 3 s for one of them.
        await eventually(() => serverFdCount(proxy.pid!) <= serverFds, 15_000);
        assert.equal(serverFdCount(proxy.pid!), serverFds, 'skopeo finished every abandoned pipe');
      }
      await proxy.close();
    }));

  it('an AbortSignal aborted during the stream destroys it with AbortError; proxy usable', () =>
    faultTest('aborted stream', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const img = await proxy.openImage(image.reference);
      for (const transfer of transfers()) {
        const controller = new AbortController();
        const stream = await proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer, signal: controller.signal });
        const result = outcome(stream);
        await readBytes(stream, 100_000);
        controller.abort();
        const error = await result;
        assert.equal(error?.name, 'AbortError');
        assert.ok(stream.destroyed);
        await assertBlobServed(proxy, img, bigLayer, transfer);
      }
      await proxy.close();
    }));

  it('a GetBlob stream nobody reads does not hold up other requests', () =>
    faultTest('unread stream', async () => {
      const proxy = await ImageProxy.spawn(baseConfig());
      const img = await proxy.openImage(image.reference);
      // Nobody reads this stream, so nothing is read from its pipe: skopeo's
      // writer fills the pipe and waits, which blocks only that goroutine.
      // The FinishPipe that would block skopeo's request loop until the pipe
      // is drained is sent only once the stream's bytes have been read (or
      // its pipe went quiet WHILE being read), so it has not been sent, and
      // the requests below are served while the stream sits there.
      const unread: BlobStream = await proxy.getBlob(img, bigLayer.digest, bigLayer.size, { transfer: 'GetBlob' });
      const result = outcome(unread);
      const otherImage = await proxy.openImage(other.reference);
      assert.equal((await proxy.fetchManifest(otherImage)).digest, other.manifestDigest);
      assert.equal((await proxy.fetchConfig(img)).architecture, 'amd64');
      assert.equal((await proxy.getLayerInfo(img)).length, 2);
      const small = image.layers[0]!;
      assert.equal(sha256(await buffer(await proxy.getBlob(img, small.digest, small.size, { transfer: 'GetBlob' }))), small.digest);
      assert.equal(unread.bytesReceived, 0, 'the paused stream read nothing meanwhile');
      assert.equal(unread.destroyed, false);
      // Reading it now still yields the whole, verified blob.
      assert.equal(sha256(await buffer(unread)), bigLayer.digest);
      assert.equal(await result, null);
      await proxy.close();
    }));
});

// ---------------------------------------------------------------------------
// Parent death: a separate Node process uses the library, then dies.

/** The built library, as the child script imports it. */
function libraryUrl(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'src', 'index.js');
    if (existsSync(candidate)) return pathToFileURL(candidate).href;
    if (dirname(dir) === dir) throw new Error('the built library (src/index.js) was not found above ' + import.meta.url);
  }
}

type ScriptMode = 'hold-stream' | 'stall-open' | 'exit-mid-stream' | 'throw-mid-stream';

/**
 * Writes the child's script (the library's URL inlined: an ESM import needs a
 * static specifier). It prints `{"pid": <skopeo pid>}` once it is where the
 * test wants it, then holds still, exits, or throws.
 */
function writeScript(dir: string): string {
  const path = join(dir, 'parent-death.mjs');
  writeFileSync(
    path,
    `import { ImageProxy } from ${JSON.stringify(libraryUrl())};
const { mode, config, reference, digest, size } = JSON.parse(process.argv[2]);
const proxy = await ImageProxy.spawn(config);
const report = () => console.log(JSON.stringify({ pid: proxy.pid }));
if (mode === 'stall-open') {
  proxy.openImage(reference).catch(() => {});
  report();
  setInterval(() => {}, 1000);
} else {
  const image = await proxy.openImage(reference);
  const stream = await proxy.getBlob(image, digest, size);
  stream.on('error', () => {});
  let seen = 0;
  stream.on('data', (chunk) => {
    seen += chunk.length;
    if (seen < size / 2 || stream.isPaused()) return;
    stream.pause(); // half read, the rest still in flight
    report();
    if (mode === 'hold-stream') setInterval(() => {}, 1000);
    else if (mode === 'exit-mid-stream') process.exit(0);
    else setTimeout(() => { throw new Error('uncaught error from the fault script'); }, 10);
  });
}
`,
  );
  return path;
}

/**
 * A PATH entry whose \`skopeo\` runs the release under test, so the child can
 * use the DEFAULT command, the one the library wraps in setpriv --pdeathsig.
 */
function skopeoShim(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const shim = join(bin, 'skopeo');
  writeFileSync(shim, `#!/bin/sh\nexec ${JSON.stringify(SKOPEO)} "$@"\n`);
  chmodSync(shim, 0o755);
  return bin;
}

interface ScriptRun {
  skopeoPid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  kill(signal: NodeJS.Signals): void;
}

async function runScript(mode: ScriptMode, options: { reference: string; defaultCommand: boolean; config?: Record<string, unknown> }): Promise<ScriptRun> {
  const dir = mkdtempSync(join(scratch.path, `script-${mode}-`));
  const script = writeScript(dir);
  const env = { ...process.env };
  let config: Record<string, unknown> = { ...options.config };
  if (options.defaultCommand) {
    if (process.env.SKOPEO) env.PATH = `${skopeoShim(dir)}:${env.PATH ?? '/usr/bin:/bin'}`;
  } else {
    config = { ...baseConfig(), ...config };
  }
  const child = spawnProcess(
    process.execPath,
    [script, JSON.stringify({ mode, config, reference: options.reference, digest: bigLayer.digest, size: bigLayer.size })],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  scripts.add(child);
  child.once('exit', () => scripts.delete(child));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => (stderr += text));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([once(lines, 'line').then(([line]) => String(line)), exited.then((status) => Promise.reject(new Error(`the script died early: ${JSON.stringify(status)}`)))]);
  const { pid } = JSON.parse(first) as { pid: number };
  assert.ok(Number.isInteger(pid) && pid > 0);
  return { skopeoPid: pid, exited, kill: (signal) => child.kill(signal) };
}

// The orphaned skopeo is re-parented to pid 1, which on some machines (this
// one included) never reaps it: "gone" therefore means dead or a zombie,
// which is what processAlive tells.
describe('parent death', () => {
  it('SIGKILL of the parent while it holds a half-read stream: skopeo is gone within seconds', () =>
    faultTest('parent killed mid-stream', async () => {
      const run = await runScript('hold-stream', { reference: image.reference, defaultCommand: true });
      assert.ok(processAlive(run.skopeoPid));
      run.kill('SIGKILL');
      assert.equal((await run.exited).signal, 'SIGKILL');
      assert.ok(await eventually(() => !processAlive(run.skopeoPid), 5000), `skopeo ${run.skopeoPid} outlived its parent`);
    }));

  it('SIGKILL of the parent while skopeo is stuck in a request (no socket EOF noticed): pdeathsig ends it', () =>
    faultTest('parent killed mid-request', async () => {
      // skopeo blocked in OpenImage does not read its socket, so it cannot
      // see the parent's death as EOF: only setpriv --pdeathsig ends it.
      const registry = await stalledRegistry();
      try {
        const run = await runScript('stall-open', {
          reference: registry.reference,
          defaultCommand: true,
          config: { insecureSkipTlsVerification: true },
        });
        await registry.connected;
        run.kill('SIGKILL');
        await run.exited;
        const gone = await eventually(() => !processAlive(run.skopeoPid), 5000);
        if (!gone) process.kill(run.skopeoPid, 'SIGKILL'); // do not leave it behind for the next test
        assert.ok(gone, `skopeo ${run.skopeoPid} outlived its parent by more than 5 s`);
      } finally {
        registry.close();
      }
    }));

  it('process.exit(0) with a proxy open and a stream half read: exit code 0, no skopeo left, no crash', () =>
    faultTest('parent exits', async () => {
      const run = await runScript('exit-mid-stream', { reference: image.reference, defaultCommand: false });
      const status = await run.exited;
      assert.deepEqual({ code: status.code, signal: status.signal }, { code: 0, signal: null }, status.stderr);
      assert.doesNotMatch(status.stderr, /Segmentation fault|Aborted|core dumped|FATAL ERROR/i);
      assert.ok(await eventually(() => !processAlive(run.skopeoPid), 5000), `skopeo ${run.skopeoPid} outlived its parent`);
    }));

  it('an uncaught error with a proxy open and a stream half read: exit code 1, no skopeo left, no crash', () =>
    faultTest('parent throws', async () => {
      const run = await runScript('throw-mid-stream', { reference: image.reference, defaultCommand: false });
      const status = await run.exited;
      assert.deepEqual({ code: status.code, signal: status.signal }, { code: 1, signal: null }, status.stderr);
      assert.match(status.stderr, /uncaught error from the fault script/);
      assert.doesNotMatch(status.stderr, /Segmentation fault|Aborted|core dumped|FATAL ERROR/i);
      assert.ok(await eventually(() => !processAlive(run.skopeoPid), 5000), `skopeo ${run.skopeoPid} outlived its parent`);
    }));
});
