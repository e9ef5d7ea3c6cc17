/**
 * Faults real skopeo cannot produce, from the protocol-level fake proxy
 * (test/fake-proxy/fake_skopeo.py): malformed and oversized replies, stray
 * or missing fds, a reply to no request, a socket that closes, a Shutdown
 * that never returns. Each test checks the typed error, that no fd or child
 * process is left behind, and that nothing hangs (watchdog).
 *
 * These tests do not use $SKOPEO; the runner executes them once per release
 * anyway, which is harmless.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { buffer } from 'node:stream/consumers';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import {
  BlobVerificationError,
  ImageProxy,
  ProtocolError,
  ProxyExitedError,
  ProxyTooOldError,
  RequestError,
} from '../src/index.js';
import { childPids, eventually, openFds, processAlive, processExists, watchdog } from './support/env.js';

/** The fake lives next to the TypeScript sources; walk up from wherever this file was compiled to. */
function findFake(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'test', 'fake-proxy', 'fake_skopeo.py');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error('test/fake-proxy/fake_skopeo.py not found above ' + import.meta.url);
  }
}

const FAKE = findFake();
const TEST_TIMEOUT_MS = 15_000;

/**
 * Spawns the fake with a scenario. The library passes process.env to the
 * child, so the scenario travels there; it is restored right after.
 */
async function spawnFake(scenario: string, version?: string): Promise<ImageProxy> {
  const saved = { scenario: process.env.FAKE_PROXY_SCENARIO, version: process.env.FAKE_PROXY_VERSION };
  process.env.FAKE_PROXY_SCENARIO = scenario;
  if (version === undefined) delete process.env.FAKE_PROXY_VERSION;
  else process.env.FAKE_PROXY_VERSION = version;
  try {
    return await ImageProxy.spawn({ skopeoCommand: ['python3', FAKE] });
  } finally {
    restore('FAKE_PROXY_SCENARIO', saved.scenario);
    restore('FAKE_PROXY_VERSION', saved.version);
  }
}

function restore(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

/** Runs a test body under a watchdog, then checks fds and children are back where they were. */
async function faultTest(what: string, body: () => Promise<void>): Promise<void> {
  const fdsBefore = openFds();
  const childrenBefore = childPids();
  await watchdog(TEST_TIMEOUT_MS, what, body());
  // Pipe sockets close on the next loop turns, and a child is reaped a little
  // after it exits: seconds on a machine loaded ten times over (CI jobs run
  // side by side; a Stryker run meanwhile failed its dry run at 3 s).
  await eventually(() => openFds().length === fdsBefore.length && childPids().length === childrenBefore.length, 15_000);
  assert.deepEqual(openFds(), fdsBefore, `${what}: fds before/after`);
  assert.deepEqual(childPids(), childrenBefore, `${what}: child processes before/after`);
}

/** Errors that mention a truncated packet would mean the client read a large reply in pieces. */
const TRUNCATION = /truncat|could not be received whole/i;

before(async () => {
  // The first child process makes libuv open its signal pipe for good: do
  // that here so the per-test fd comparison sees only what a test leaks.
  const warmup = await spawnFake('normal');
  await warmup.close();
});

describe('fake proxy: handshake', () => {
  it('refuses a proxy older than 0.2.3 with ProxyTooOldError', () =>
    faultTest('too old', async () => {
      await assert.rejects(spawnFake('normal', '0.2.2'), (error: unknown) => {
        assert.ok(error instanceof ProxyTooOldError, String(error));
        assert.equal(error.requiredVersion, '0.2.3');
        assert.equal(error.actualVersion, '0.2.2');
        return true;
      });
    }));

  it('refuses an Initialize reply that is not a version with ProtocolError', () =>
    faultTest('not a version', async () => {
      await assert.rejects(spawnFake('normal', 'banana'), (error: unknown) => error instanceof ProtocolError && /"banana" is not a version/.test(error.message));
    }));
});

describe('fake proxy: malformed replies', () => {
  it('a reply that is not JSON fails that call with ProtocolError; the next call works', () =>
    faultTest('malformed JSON', async () => {
      const proxy = await spawnFake('malformed-json');
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => error instanceof ProtocolError && /not JSON/.test(error.message));
      const image = await proxy.openImage('fake:two');
      assert.equal(image.id, 1, 'the malformed reply was consumed: the client is in step');
      await proxy.close();
    }));

  it('a 100 KB reply arrives whole: a wrong-typed value is a ProtocolError about the type, not truncation', () =>
    faultTest('huge string value', async () => {
      const proxy = await spawnFake('huge-string-value');
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => {
        assert.ok(error instanceof ProtocolError, String(error));
        assert.match(error.message, /OpenImage: expected a non-negative integer in the reply, got "xxxx/);
        assert.doesNotMatch(error.message, TRUNCATION);
        return true;
      });
      assert.equal((await proxy.openImage('fake:two')).id, 1);
      await proxy.close();
    }));

  it('a 100 KB valid reply arrives whole and succeeds', () =>
    faultTest('huge valid reply', async () => {
      const proxy = await spawnFake('huge-valid-reply');
      const image = await proxy.openImage('fake:one');
      assert.equal(image.id, 1);
      assert.equal((await proxy.openImage('fake:two')).id, 2);
      await proxy.close();
    }));

  it('a value of the wrong type (OpenImage returning a string) is a ProtocolError', () =>
    faultTest('wrong type', async () => {
      const proxy = await spawnFake('wrong-type');
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => error instanceof ProtocolError && /expected a non-negative integer in the reply, got "seven"/.test(error.message));
      assert.equal((await proxy.openImage('fake:two')).id, 1);
      await proxy.close();
    }));

  it('an unknown error_code is kept in RequestError.code', () =>
    faultTest('unknown error code', async () => {
      const proxy = await spawnFake('unknown-error-code');
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => {
        assert.ok(error instanceof RequestError, String(error));
        assert.equal(error.method, 'OpenImage');
        assert.equal(error.code, 'flux-capacitor');
        assert.equal(error.serverMessage, 'the flux capacitor is out of alignment');
        assert.equal(error.retryable, false);
        return true;
      });
      assert.equal((await proxy.openImage('fake:two')).id, 1);
      await proxy.close();
    }));
});

describe('fake proxy: GetBlob with the size unknown', () => {
  // What the fake's GetBlob serves (BLOB in fake_skopeo.py).
  const blob = Buffer.from('fake blob bytes\n'.repeat(200));
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

  it('the reply value is the size: exactly that is read, and the size complaint about the 0 asked for is expected', () =>
    faultTest('size unknown', async () => {
      const proxy = await spawnFake('normal', '0.2.3');
      const image = await proxy.openImage('fake:one');
      const stream = await proxy.getBlob(image, digest);
      assert.equal(stream.expectedSize, blob.length);
      assert.deepEqual(await buffer(stream), blob);
      await proxy.close();
    }));

  it('a source that cannot tell the size (reply -1): read until FinishPipe ends the pipe, then the digest decides', () =>
    faultTest('size unreported', async () => {
      const proxy = await spawnFake('blob-size-unreported', '0.2.3');
      const image = await proxy.openImage('fake:one');
      const stream = await proxy.getBlob(image, digest);
      assert.equal(stream.expectedSize, -1);
      assert.deepEqual(await buffer(stream), blob);
      assert.equal(stream.bytesReceived, blob.length);
      assert.equal((await proxy.fetchManifest(image)).manifest.schemaVersion, 2, 'the proxy is still in step');
      await proxy.close();
    }));

  it('a size complaint that names another byte count than received is a BlobVerificationError', () =>
    faultTest('miscounted complaint', async () => {
      const proxy = await spawnFake('blob-miscounted-complaint', '0.2.3');
      const image = await proxy.openImage('fake:one');
      await assert.rejects(buffer(await proxy.getBlob(image, digest)), (error: unknown) => {
        assert.ok(error instanceof BlobVerificationError, String(error));
        assert.match(error.detail, new RegExp(`expected 0 bytes in blob, got ${blob.length - 1}`));
        return true;
      });
      assert.deepEqual(await buffer(await proxy.getBlob(image, digest)), blob, 'the next fetch works');
      await proxy.close();
    }));

  it('other bytes with only a size complaint: the client-side hash refuses them', () =>
    faultTest('other bytes', async () => {
      const proxy = await spawnFake('blob-other-bytes', '0.2.3');
      const image = await proxy.openImage('fake:one');
      await assert.rejects(buffer(await proxy.getBlob(image, digest)), (error: unknown) => {
        assert.ok(error instanceof BlobVerificationError, String(error));
        assert.match(error.detail, /^digest mismatch: the bytes hash to sha256:/);
        return true;
      });
      await proxy.close();
    }));

  it("the server's digest complaint wins over the size complaint: BlobVerificationError", () =>
    faultTest('corrupted', async () => {
      const proxy = await spawnFake('normal', '0.2.3');
      const image = await proxy.openImage('fake:one');
      const other = `sha256:${'e'.repeat(64)}`;
      await assert.rejects(buffer(await proxy.getBlob(image, other)), (error: unknown) => {
        assert.ok(error instanceof BlobVerificationError, String(error));
        assert.match(error.detail, /corrupted blob, expecting sha256:e{64}/);
        return true;
      });
      await proxy.close();
    }));
});

describe('fake proxy: file descriptors', () => {
  it('an fd on a reply that expects none is closed and the call fails with ProtocolError', () =>
    faultTest('unexpected fd', async () => {
      const proxy = await spawnFake('unexpected-fd');
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => error instanceof ProtocolError && /expected 0 file descriptor\(s\) with the reply, got 1/.test(error.message));
      assert.equal((await proxy.openImage('fake:two')).id, 2);
      await proxy.close();
    }));

  it('more fds than the control buffer holds: all closed, ProtocolError', () =>
    faultTest('too many fds', async () => {
      const proxy = await spawnFake('too-many-fds');
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => error instanceof ProtocolError && /file descriptors/.test(error.message));
      assert.equal((await proxy.openImage('fake:two')).id, 1);
      await proxy.close();
    }));

  it('GetManifest without its fd is a ProtocolError', () =>
    faultTest('missing fd', async () => {
      const proxy = await spawnFake('missing-fd');
      const image = await proxy.openImage('fake:one');
      await assert.rejects(proxy.fetchManifest(image), (error: unknown) => error instanceof ProtocolError && /expected 1 file descriptor\(s\) with the reply, got 0/.test(error.message));
      const { digest, manifest } = await proxy.fetchManifest(image);
      assert.equal(digest, 'sha256:' + 'a'.repeat(64));
      assert.deepEqual(manifest.layers, []);
      await proxy.close();
    }));

  it('GetManifest without a pipeid is a ProtocolError, and its fd is closed', () =>
    faultTest('missing pipeid', async () => {
      const proxy = await spawnFake('missing-pipeid');
      const image = await proxy.openImage('fake:one');
      await assert.rejects(proxy.fetchManifest(image), (error: unknown) => error instanceof ProtocolError && /has a pipe but no pipeid/.test(error.message));
      assert.equal((await proxy.fetchManifest(image)).manifest.schemaVersion, 2);
      await proxy.close();
    }));
});

describe('fake proxy: the connection', () => {
  it('an exit without a reply fails the call, and every later one at once, with ProxyExitedError', () =>
    faultTest('exit without reply', async () => {
      const proxy = await spawnFake('exit-without-reply');
      const pid = proxy.pid!;
      const isExit = (error: unknown): boolean => {
        assert.ok(error instanceof ProxyExitedError, String(error));
        assert.equal(error.exitCode, 3);
        assert.equal(error.signal, null);
        assert.match(error.message, /exited with code 3/);
        return true;
      };
      await assert.rejects(proxy.openImage('fake:one'), isExit);
      const started = Date.now();
      await assert.rejects(proxy.openImage('fake:two'), isExit);
      assert.ok(Date.now() - started < 500, 'a later call fails at once, not after the 2 s wait for an exit status');
      assert.equal(proxy.running, false);
      assert.equal(processExists(pid), false, 'reaped: no zombie');
      await proxy.close();
    }));

  it('a socket closed by a child that stays alive: ProxyExitedError ("closed its socket"), then close() kills it', () =>
    faultTest('socket closed, child alive', async () => {
      const proxy = await spawnFake('close-socket-stay-alive');
      const pid = proxy.pid!;
      await assert.rejects(proxy.openImage('fake:one'), (error: unknown) => {
        assert.ok(error instanceof ProxyExitedError, String(error));
        assert.equal(error.exitCode, null);
        assert.equal(error.signal, null);
        assert.match(error.message, /closed its socket/);
        return true;
      });
      assert.ok(processAlive(pid), 'the fake is still running: the error came from the socket alone');
      const started = Date.now();
      await proxy.close({ timeoutMs: 200 });
      assert.ok(Date.now() - started < 3000, `close took ${Date.now() - started} ms`);
      assert.equal(processExists(pid), false);
    }));

  it('a reply to no request fails the connection with ProtocolError ("out of step")', () =>
    faultTest('duplicate reply', async () => {
      const proxy = await spawnFake('duplicate-reply');
      assert.equal((await proxy.openImage('fake:one')).id, 1);
      // Let the second, unsolicited reply arrive while nothing is in flight.
      await eventually(() => !proxy.running, 2000);
      assert.equal(proxy.running, false);
      await assert.rejects(proxy.openImage('fake:two'), (error: unknown) => error instanceof ProtocolError && /out of step/.test(error.message));
      await proxy.close({ timeoutMs: 500 });
    }));

  it('a Shutdown that never exits and ignores SIGTERM: close() escalates to SIGKILL and resolves', () =>
    faultTest('shutdown hangs', async () => {
      const proxy = await spawnFake('shutdown-hangs');
      const pid = proxy.pid!;
      const started = Date.now();
      await proxy.close({ timeoutMs: 500 });
      const elapsed = Date.now() - started;
      // 500 ms for Shutdown, SIGTERM (ignored), 2 s more, SIGKILL.
      assert.ok(elapsed >= 2000, `SIGTERM was ignored, so only SIGKILL ended it (${elapsed} ms)`);
      assert.ok(elapsed < 5000, `close took ${elapsed} ms`);
      assert.equal(processExists(pid), false);
      assert.equal(proxy.running, false);
    }));
});
