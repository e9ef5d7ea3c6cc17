/** Request encoding limits and reply decoding, without a proxy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError, ProtocolError } from '../../src/errors.js';
import { compareVersions, decodeReply, encodeRequest } from '../../src/protocol.js';
import { parseRawBlobError } from '../../src/blobs/raw-blob-stream.js';

describe('encodeRequest', () => {
  it('encodes method and args as one JSON packet', () => {
    assert.deepEqual(JSON.parse(encodeRequest('GetBlob', [1, 'sha256:ab', 10]).toString()), { method: 'GetBlob', args: [1, 'sha256:ab', 10] });
  });

  it('refuses numbers the server would reject', () => {
    assert.throws(() => encodeRequest('GetBlob', [2 ** 53]), InvalidArgumentError);
    assert.throws(() => encodeRequest('GetBlob', [1.5]), InvalidArgumentError);
    assert.throws(() => encodeRequest('GetBlob', [-1]), InvalidArgumentError);
    assert.doesNotThrow(() => encodeRequest('GetBlob', [2 ** 53 - 1]));
  });

  it('refuses requests over 32 KiB', () => {
    assert.throws(() => encodeRequest('OpenImage', ['x'.repeat(32 * 1024)]), /over the proxy's limit of 32768/);
  });
});

describe('decodeReply', () => {
  it('decodes success and failure', () => {
    assert.deepEqual(decodeReply(Buffer.from('{"success":true,"value":"0.2.8","pipeid":0,"error":""}')), { ok: true, value: '0.2.8', pipeId: 0 });
    assert.deepEqual(decodeReply(Buffer.from('{"success":false,"value":null,"pipeid":0,"error":"boom","error_code":"retryable"}')), {
      ok: false,
      error: 'boom',
      code: 'retryable',
    });
    assert.deepEqual(decodeReply(Buffer.from('{"success":false,"error":""}')), { ok: false, error: 'unknown error', code: undefined });
  });

  it('rejects malformed replies with ProtocolError', () => {
    for (const bad of ['', 'not json', '[]', 'null', '{"value":1}', '{"success":"yes"}', '{"success":true,"pipeid":-1}', '{"success":true,"pipeid":1.5}']) {
      assert.throws(() => decodeReply(Buffer.from(bad)), ProtocolError, bad);
    }
  });
});

describe('parseRawBlobError', () => {
  it('maps the error pipe JSON to RequestError with code', () => {
    assert.equal(parseRawBlobError(Buffer.alloc(0)), undefined);
    const error = parseRawBlobError(Buffer.from('{"code":"retryable","message":"connection reset"}'));
    assert.equal(error?.name, 'RequestError');
    assert.equal(error?.retryable, true);
    assert.match(error!.message, /connection reset/);
    assert.equal(parseRawBlobError(Buffer.from('{"code":"other","message":"x"}'))?.retryable, false);
    assert.ok(parseRawBlobError(Buffer.from('garbage')) instanceof ProtocolError);
  });
});

describe('compareVersions', () => {
  it('orders dotted versions numerically', () => {
    assert.ok(compareVersions('0.2.10', '0.2.8') > 0);
    assert.equal(compareVersions('0.2.3', '0.2.3'), 0);
    assert.ok(compareVersions('0.2.2', '0.2.3') < 0);
  });
});
