/**
 * The call policy and the lifecycle defects it removed, against real skopeo:
 * every request has a reply deadline (FinishPipe included), an aborted call
 * settles at once, timeouts are validated (no timer Node would clamp to 1 ms),
 * the handshake has a deadline, closing is never lost, an unread stream does
 * not keep the process alive, and loose input gets typed errors.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ConfigurationError,
  ImageProxy,
  InvalidArgumentError,
  ProxyRestartedError,
  RequestStallError,
  SpawnError,
  type Descriptor,
} from '../src/index.js';
import { baseConfig, eventually, processAlive, processExists, skopeo, SKOPEO, stopProcess, tempDir, watchdog } from './support/env.js';
import { buildImage, noise, type BuiltImage } from './support/oci-layout.js';

const scratch = tempDir();
let image: BuiltImage;
/** An image whose only layer is a FIFO the test writes: skopeo's blob writer waits on it. */
let fifoImage: BuiltImage;
let fifoContent: Buffer;
/** Larger than a blob pipe's 1 MiB buffer, so skopeo's writer is still busy while nobody reads. */
let big: BuiltImage;

before(() => {
  image = buildImage(join(scratch.path, 'layout'), 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'a', content: noise(100_000, 3) }] }]);
  big = buildImage(join(scratch.path, 'layout'), 'big', [{ compression: 'none', entries: [{ type: 'file', name: 'big', content: noise(4 * 1024 * 1024, 5) }] }]);
  fifoImage = buildImage(join(scratch.path, 'fifo-layout'), 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'b', content: noise(50_000, 4) }] }]);
  const path = fifoImage.layers[0]!.path;
  fifoContent = readFileSync(path);
  rmSync(path);
  execFileSync('mkfifo', [path]);
});

after(() => scratch[Symbol.dispose]());

describe('reply deadlines', () => {
  it('restarts the proxy when a FinishPipe gets no answer, even with body stall detection off', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ replyTimeout: 1500, bodyIdleTimeout: 0 }));
    await using img = await proxy.openImage(fifoImage.reference);
    const layer = fifoImage.layers[0]!;
    // Read-write, so neither side's open blocks (Linux FIFOs). Every byte of the
    // blob goes in, but the FIFO never reaches EOF: skopeo's writer waits for
    // it, so FinishPipe (sent once the bytes are in) is never answered.
    const writer = openSync(layer.path, constants.O_RDWR);
    try {
      writeSync(writer, fifoContent);
      const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer: 'GetBlob' });
      const error = await watchdog(15_000, 'stuck FinishPipe', buffer(stream).then(() => null, (e: unknown) => e));
      assert.ok(error instanceof ProxyRestartedError, String(error));
      assert.ok(error.reason instanceof RequestStallError && error.reason.method === 'FinishPipe', String(error.reason));
      assert.equal(stream.bytesReceived, layer.size, 'the body itself arrived');
    } finally {
      closeSync(writer);
    }
    assert.equal((await proxy.fetchManifest(img)).manifest.layers.length, 1, 'the held image was re-opened');
    assert.equal(proxy.restarts, 1);
  });

  it('fails a request a stopped skopeo never answers after replyTimeout, and releases aborted callers at once', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ replyTimeout: 1500 }));
    await using img = await proxy.openImage(image.reference);
    // Stopped for sure before the next request goes out (kill() alone is not).
    const stopped = async (): Promise<number> => {
      const pid = proxy.pid!;
      await stopProcess(pid);
      return pid;
    };
    const released = async (work: Promise<unknown>): Promise<void> => {
      const started = Date.now();
      await assert.rejects(work, { name: 'TimeoutError' });
      assert.ok(Date.now() - started < 1200, `released after ${Date.now() - started} ms`);
    };
    // 1. A request in flight on a stopped child fails with the restart; one
    //    queued behind it, with its own signal, is released when that aborts.
    let restarted = once(proxy, 'restart');
    let pid = await stopped();
    const inFlight = proxy.fetchManifest(img).then(() => null, (e: unknown) => e);
    await released(proxy.fetchConfig(img, { signal: AbortSignal.timeout(200) }));
    const error = await watchdog(15_000, 'stopped skopeo', inFlight);
    assert.ok(error instanceof ProxyRestartedError, String(error));
    assert.ok(error.reason instanceof RequestStallError && error.reason.method === 'GetManifest', String(error.reason));
    await watchdog(10_000, 'restart', restarted);
    assert.equal(processAlive(pid), false, 'the stopped child was killed');
    restarted = once(proxy, 'restart');
    // 2. The caller of the request in flight is released by its signal; the
    //    request still expires, and the call queued behind is sent to the replacement.
    pid = await stopped();
    await released(proxy.fetchConfig(img, { signal: AbortSignal.timeout(200) }));
    assert.equal((await watchdog(15_000, 'after the restart', proxy.fetchManifest(img))).manifest.layers.length, 1);
    await watchdog(10_000, 'restart', restarted);
    assert.equal(proxy.restarts, 2);
    assert.notEqual(proxy.pid, pid);
  });

  it('gives the handshake a deadline: a child that never answers Initialize fails spawn', async () => {
    using dir = tempDir();
    const silent = join(dir.path, 'silent-skopeo');
    writeFileSync(silent, `#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 600\n`, { mode: 0o755 });
    const error = await watchdog(15_000, 'silent child', ImageProxy.spawn({ skopeoCommand: [silent], replyTimeout: 1000 }).then(() => null, (e: unknown) => e));
    assert.ok(error instanceof SpawnError, String(error));
    assert.match(error.message, /did not answer the handshake within 1000 ms/);
    const pid = Number(readFileSync(`${silent}.pid`, 'utf8'));
    assert.ok(await eventually(() => !processExists(pid)), `the silent child ${pid} was killed`);
  });
});

describe('timeouts are validated', () => {
  for (const [name, value] of [
    ['stallTimeout', 2 ** 31],
    ['stallTimeout', 1e10],
    ['replyTimeout', Number.NaN],
    ['bodyIdleTimeout', -1],
    ['replyTimeout', 1.5],
    ['stallTimeout', '100'],
  ] as const) {
    it(`refuses ${name}: ${String(value)} at spawn, naming it`, async () => {
      await assert.rejects(ImageProxy.spawn(baseConfig({ [name]: value })), (error: unknown) => {
        assert.ok(error instanceof ConfigurationError, String(error));
        assert.match(error.message, new RegExp(`^${name} must be a whole number of milliseconds`));
        return true;
      });
    });
  }

  it('takes Infinity as "never", not as a timer Node would fire after 1 ms', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ stallTimeout: Infinity }));
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[0]!;
    for (let i = 0; i < 3; i++) assert.equal((await buffer(await proxy.getBlob(img, layer.digest, layer.size))).length, layer.size);
    assert.equal(proxy.restarts, 0);
  });

  it('refuses a bad per-call timeout or retry with InvalidArgumentError, and stays usable', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig());
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[0]!;
    await assert.rejects(proxy.getBlob(img, layer.digest, layer.size, { stallTimeout: Number.NaN }), /^InvalidArgumentError: stallTimeout must be/);
    await assert.rejects(proxy.getBlob(img, layer.digest, layer.size, { bodyIdleTimeout: 2 ** 40 }), /^InvalidArgumentError: bodyIdleTimeout must be/);
    await assert.rejects(proxy.fetchManifest(img, { replyTimeout: -5 }), /^InvalidArgumentError: replyTimeout must be/);
    await assert.rejects(proxy.getBlob(img, layer.digest, layer.size, { retry: { attempts: 0 } }), /^InvalidArgumentError: retry.attempts must be/);
    assert.equal((await buffer(await proxy.getBlob(img, layer.digest, layer.size))).length, layer.size);
  });
});

describe('closing is never lost', () => {
  /** An oci-archive: image: skopeo unpacks it into --tmpdir while it is open. */
  async function archived(dir: string): Promise<string> {
    const archive = join(dir, 'image.tar');
    skopeo('copy', '--quiet', image.reference, `oci-archive:${archive}`);
    return `oci-archive:${archive}`;
  }

  it('sends CloseImage even when the close call is aborted', async () => {
    using dir = tempDir();
    const tmp = join(dir.path, 'tmp');
    const reference = await archived(dir.path);
    await using proxy = await ImageProxy.spawn(baseConfig({ tmpDir: mkdirp(tmp) }));
    const img = await proxy.openImage(reference);
    assert.notDeepEqual(readdirSync(tmp), [], 'the archive is unpacked while the image is open');
    await assert.rejects(img.close({ signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(img.closed, true);
    assert.ok(await eventually(() => readdirSync(tmp).length === 0), `left in --tmpdir: ${readdirSync(tmp).join(', ')}`);
  });

  it('closes the images still open before Shutdown', async () => {
    using dir = tempDir();
    const tmp = join(dir.path, 'tmp');
    const reference = await archived(dir.path);
    const proxy = await ImageProxy.spawn(baseConfig({ tmpDir: mkdirp(tmp) }));
    const img = await proxy.openImage(reference);
    assert.notDeepEqual(readdirSync(tmp), []);
    await proxy.close();
    assert.equal(img.closed, true);
    assert.deepEqual(readdirSync(tmp), [], 'skopeo removed the unpacked archive');
  });
});

describe('an unread stream does not keep the process alive', () => {
  const script = fileURLToPath(new URL('./support/unread-stream.js', import.meta.url));
  for (const transfer of ['GetBlob', 'GetRawBlob'] as const) {
    it(`lets a script that leaves a ${transfer} stream unread exit`, async (t) => {
      const probe = await ImageProxy.spawn(baseConfig());
      const raw = probe.supports('GetRawBlob');
      await probe.close();
      if (transfer === 'GetRawBlob' && !raw) {
        t.skip('GetRawBlob needs protocol 0.2.8');
        return;
      }
      const layer = big.layers[0]!;
      const started = Date.now();
      const { code, stdout } = await run(process.execPath, [script, SKOPEO, big.reference, layer.digest, String(layer.size), transfer]);
      assert.equal(code, 0);
      assert.equal(stdout.trim(), `opened ${transfer}`);
      assert.ok(Date.now() - started < 20_000);
    });
  }
});

describe('loose input gets typed errors', () => {
  it('refuses a null descriptor, an unknown transfer, a NUL in a reference and a digest that is not a string', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig());
    await using img = await proxy.openImage(image.reference);
    const layer = image.layers[0]!;
    await assert.rejects(proxy.getDescriptor(img, null as unknown as Descriptor), /^InvalidArgumentError: getDescriptor: expected a descriptor/);
    await assert.rejects(proxy.getBlob(img, layer.digest, layer.size, { transfer: 'Bogus' as 'GetBlob' }), /^InvalidArgumentError: getBlob: transfer must be one of GetBlob, GetRawBlob, got "Bogus"/);
    await assert.rejects(proxy.openImage(`${image.reference}\0x`), (error: unknown) => error instanceof InvalidArgumentError && /NUL byte/.test(error.message));
    await assert.rejects(proxy.openImageOptional(`oci:\0`), InvalidArgumentError);
    await assert.rejects(proxy.getBlob(img, undefined as unknown as string, 1), /^InvalidArgumentError: undefined is not a digest/);
    assert.equal((await buffer(await proxy.getBlob(img, layer.digest, layer.size))).length, layer.size, 'still usable');
  });
});

function mkdirp(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 30_000 }, (_error, stdout) => resolve({ code: child.exitCode, stdout }));
  });
}
