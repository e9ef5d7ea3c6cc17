// The public error classes: each one's name, message, retryable flag and
// cause are what a caller reads and acts on, so each is pinned here exactly.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  BlobVerificationError,
  ConfigurationError,
  ImageClosedError,
  ImageNotFoundError,
  ImageProxyError,
  InvalidArgumentError,
  isTransientMessage,
  ProtocolError,
  ProxyClosedError,
  ProxyExitedError,
  ProxyRestartedError,
  ProxyTooOldError,
  RequestError,
  RequestStallError,
  SpawnError,
  StallError,
  UnsupportedOperationError,
} from '../../src/errors.js';
import type { FailureKind } from '../../src/skopeo-messages.js';

const fixture = new URL('../../../test/fixtures/skopeo-messages.json', import.meta.url);
const { messages } = JSON.parse(readFileSync(fixture, 'utf8')) as { messages: { kind: FailureKind; message: string }[] };

describe('error classes', () => {
  const cases: [ImageProxyError, string, boolean][] = [
    [new ImageProxyError('x'), 'ImageProxyError', false],
    [new SpawnError('x', ['skopeo']), 'SpawnError', false],
    [new ProxyTooOldError('0.2.3', '0.2.0'), 'ProxyTooOldError', false],
    [new ConfigurationError('x'), 'ConfigurationError', false],
    [new InvalidArgumentError('x'), 'InvalidArgumentError', false],
    [new RequestError('OpenImage', 'x'), 'RequestError', false],
    [new ImageNotFoundError('docker://r/x', 'OpenImage', 'manifest unknown'), 'ImageNotFoundError', false],
    [new StallError('sha256:ab', 1, 2), 'StallError', true],
    [new RequestStallError('OpenImage', 5), 'RequestStallError', true],
    [new ProxyRestartedError(new Error('why'), true), 'ProxyRestartedError', true],
    [new ProxyExitedError(1, null, ''), 'ProxyExitedError', false],
    [new ProtocolError('x'), 'ProtocolError', false],
    [new BlobVerificationError('sha256:ab', 1, 2, 'size mismatch'), 'BlobVerificationError', false],
    [new UnsupportedOperationError('getRawBlob', '0.2.8', '0.2.3'), 'UnsupportedOperationError', false],
    [new ProxyClosedError(), 'ProxyClosedError', false],
    [new ImageClosedError('docker://r/x'), 'ImageClosedError', false],
  ];
  for (const [error, name, retryable] of cases) {
    it(`${name}: its name, its retryable flag, an ImageProxyError`, () => {
      assert.equal(error.name, name);
      assert.equal(error.retryable, retryable);
      assert.ok(error instanceof ImageProxyError);
      assert.ok(error instanceof Error);
      assert.ok(String(error).startsWith(`${name}: `), String(error));
    });
  }

  it('ProxyTooOldError says both versions and what to do', () => {
    const error = new ProxyTooOldError('0.2.3', '0.2.1');
    assert.equal(
      error.message,
      "skopeo's image proxy speaks protocol 0.2.1, but at least 0.2.3 is required: install skopeo 1.9 or newer, or point skopeoCommand at a newer skopeo",
    );
    assert.equal(error.requiredVersion, '0.2.3');
    assert.equal(error.actualVersion, '0.2.1');
  });

  it('RequestError: the message is the method and the proxy words, a hint only when given', () => {
    assert.equal(new RequestError('GetBlob', 'blob unknown').message, 'GetBlob failed: blob unknown');
    assert.equal(new RequestError('GetBlob', 'blob unknown', undefined, { hint: '' }).message, 'GetBlob failed: blob unknown');
    assert.equal(new RequestError('GetBlob', 'blob unknown', 'other', { hint: 'check the digest' }).message, 'GetBlob failed: blob unknown; check the digest');
    const cause = new Error('root');
    assert.equal(new RequestError('GetBlob', 'x', undefined, { cause }).cause, cause);
  });

  it('StallError and RequestStallError: the message names the blob or method, the time and the bytes', () => {
    const stall = new StallError('sha256:abc', 1234, 500);
    assert.equal(stall.message, 'blob sha256:abc stalled: no data for 500 ms after 1234 bytes; the registry or network stopped sending');
    assert.deepEqual([stall.digest, stall.bytesReceived, stall.stallTimeoutMs], ['sha256:abc', 1234, 500]);
    const request = new RequestStallError('OpenImage', 750);
    assert.equal(request.message, 'OpenImage got no answer for 750 ms; the registry or network stopped answering');
  });

  it('ProxyRestartedError: the reason in the message and as the cause', () => {
    const reason = new RequestStallError('OpenImage', 750);
    const error = new ProxyRestartedError(reason, false);
    assert.equal(error.message, `the image proxy was restarted (${reason.message}); repeat the operation`);
    assert.equal(error.cause, reason);
    assert.equal(error.reason, reason);
    assert.equal(error.sent, false);
  });

  describe('ProxyExitedError', () => {
    it('says how skopeo went: a signal first, else the exit code, else the socket', () => {
      assert.equal(new ProxyExitedError(null, 'SIGKILL', '').message, 'skopeo image proxy was killed by SIGKILL');
      assert.equal(new ProxyExitedError(2, 'SIGTERM', '').message, 'skopeo image proxy was killed by SIGTERM');
      assert.equal(new ProxyExitedError(0, null, '').message, 'skopeo image proxy exited with code 0');
      assert.equal(new ProxyExitedError(null, null, '').message, 'skopeo image proxy closed its socket');
    });

    it('adds the end of stderr, trimmed, and nothing for a blank stderr', () => {
      assert.equal(new ProxyExitedError(1, null, ' \n\t\n').message, 'skopeo image proxy exited with code 1');
      const error = new ProxyExitedError(1, null, '  time="x" level=fatal msg="boom"\n\n');
      assert.equal(error.message, 'skopeo image proxy exited with code 1; its stderr ends with:\n  time="x" level=fatal msg="boom"');
      assert.equal(error.stderr, '  time="x" level=fatal msg="boom"\n\n');
    });

    it('keeps the last 2000 characters of a long stderr, marked with …', () => {
      const exact = 'a'.repeat(1999) + 'b';
      assert.equal(new ProxyExitedError(1, null, exact).message, `skopeo image proxy exited with code 1; its stderr ends with:\n${exact}`);
      const long = 'x' + exact + '\n';
      // 2002 characters: the last 2000 are `exact` and the newline, trimmed at the end.
      assert.equal(
        new ProxyExitedError(1, null, long).message,
        `skopeo image proxy exited with code 1; its stderr ends with:\n…${exact.slice(1)}`,
      );
      const lead = ' ' + 'c'.repeat(2000);
      assert.equal(new ProxyExitedError(1, null, lead).message, `skopeo image proxy exited with code 1; its stderr ends with:\n…${'c'.repeat(2000)}`);
      const spaced = '   ' + 'd'.repeat(1000) + '\n';
      assert.equal(new ProxyExitedError(1, null, spaced).message, `skopeo image proxy exited with code 1; its stderr ends with:\n   ${'d'.repeat(1000)}`);
    });
  });

  it('BlobVerificationError, UnsupportedOperationError, ProxyClosedError, ImageClosedError: their messages', () => {
    assert.equal(
      new BlobVerificationError('sha256:ab', 10, 9, 'size mismatch').message,
      'blob sha256:ab failed verification: size mismatch (expected 10 bytes, received 9)',
    );
    const cause = new Error('old');
    const unsupported = new UnsupportedOperationError('getRawBlob', '0.2.8', '0.2.3', { cause });
    assert.equal(
      unsupported.message,
      'getRawBlob needs image proxy protocol 0.2.8 or newer, but this skopeo speaks 0.2.3: use a newer skopeo (skopeoCommand)',
    );
    assert.equal(unsupported.cause, cause);
    assert.equal(new ProxyClosedError().message, 'the image proxy is closed; create a new one with ImageProxy.spawn()');
    assert.equal(new ImageClosedError('docker://r/x:1').message, 'image docker://r/x:1 is closed; open it again with proxy.openImage()');
  });

  it('SpawnError keeps the command and the cause', () => {
    const cause = Object.assign(new Error('spawn nope ENOENT'), { code: 'ENOENT' });
    const error = new SpawnError('skopeo could not be started', ['nope', 'experimental-image-proxy'], { cause });
    assert.deepEqual(error.command, ['nope', 'experimental-image-proxy']);
    assert.equal(error.cause, cause);
  });

  it('isTransientMessage: true for the real transient messages of skopeo, false for every other kind', () => {
    const kinds = new Set(messages.map((m) => m.kind));
    assert.ok(kinds.has('transient') && kinds.size > 1);
    for (const { kind, message } of messages) assert.equal(isTransientMessage(message), kind === 'transient', message);
  });
});
