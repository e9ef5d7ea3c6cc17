/** Request encoding limits and reply decoding, without a proxy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError, ProtocolError } from '../../src/errors.js';
import { compareVersions, decodeReply, encodeRequest, expectSize, expectString, expectUint, isVersion, MAX_REQUEST_BYTES } from '../../src/protocol.js';
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

describe('request limits, exactly', () => {
  it('takes a request of exactly 32 KiB and refuses one byte more, naming the sizes', () => {
    const overhead = encodeRequest('OpenImage', ['']).length;
    assert.equal(encodeRequest('OpenImage', ['x'.repeat(MAX_REQUEST_BYTES - overhead)]).length, MAX_REQUEST_BYTES);
    assert.throws(
      () => encodeRequest('OpenImage', ['x'.repeat(MAX_REQUEST_BYTES - overhead + 1)]),
      (e: unknown) => e instanceof InvalidArgumentError && e.message === `OpenImage: the request is ${MAX_REQUEST_BYTES + 1} bytes, over the proxy's limit of ${MAX_REQUEST_BYTES}; shorten the image reference or digest`,
    );
  });

  it('takes 0 and refuses other numbers naming the method and the number', () => {
    assert.doesNotThrow(() => encodeRequest('GetBlob', [0, 'x', true, null]));
    assert.throws(() => encodeRequest('GetBlob', [-1]), { message: 'GetBlob: -1 is not an integer between 0 and 2^53-1, the only numbers the proxy accepts' });
    assert.throws(() => encodeRequest('FinishPipe', [Number.NaN]), { message: /^FinishPipe: NaN is not an integer/ });
  });
});

describe('reply errors say what was wrong, with a preview', () => {
  const message = (text: string): string => {
    try {
      decodeReply(Buffer.from(text));
    } catch (error) {
      assert.ok(error instanceof ProtocolError);
      return error.message;
    }
    assert.fail(`decoded: ${text}`);
  };

  it('names each kind of malformed reply', () => {
    assert.equal(message('nope'), 'the proxy sent a reply that is not JSON: "nope"');
    assert.equal(message('[1]'), 'the proxy sent a reply that is not a JSON object: "[1]"');
    assert.equal(message('null'), 'the proxy sent a reply that is not a JSON object: "null"');
    assert.equal(message('7'), 'the proxy sent a reply that is not a JSON object: "7"');
    assert.equal(message('{"success":1}'), 'the proxy sent a reply without a boolean "success": "{\\"success\\":1}"');
    assert.equal(message('{"success":true,"pipeid":"1"}'), 'the proxy sent a reply with an invalid "pipeid": "{\\"success\\":true,\\"pipeid\\":\\"1\\"}"');
  });

  it('previews 200 bytes of a long reply and marks the cut', () => {
    const long = 'x'.repeat(300);
    assert.equal(message(long), `the proxy sent a reply that is not JSON: "${'x'.repeat(200)}…"`);
    assert.equal(message('y'.repeat(200)), `the proxy sent a reply that is not JSON: "${'y'.repeat(200)}"`);
  });

  it('takes pipe ids from 0 to 2^32-1, and a missing one as 0', () => {
    assert.deepEqual(decodeReply(Buffer.from('{"success":true,"value":1}')), { ok: true, value: 1, pipeId: 0 });
    assert.equal((decodeReply(Buffer.from('{"success":true,"pipeid":4294967295}')) as { pipeId: number }).pipeId, 0xffffffff);
    assert.throws(() => decodeReply(Buffer.from('{"success":true,"pipeid":4294967296}')), ProtocolError);
    assert.equal((decodeReply(Buffer.from('{"success":false,"pipeid":7,"error":"x"}')) as { ok: boolean }).ok, false);
  });

  it('keeps a failure code only when it is a non-empty string', () => {
    assert.deepEqual(decodeReply(Buffer.from('{"success":false,"error":"e","error_code":""}')), { ok: false, error: 'e', code: undefined });
    assert.deepEqual(decodeReply(Buffer.from('{"success":false,"error":"e","error_code":5}')), { ok: false, error: 'e', code: undefined });
    assert.deepEqual(decodeReply(Buffer.from('{"success":false,"error":7}')), { ok: false, error: 'unknown error', code: undefined });
  });
});

describe('typed reply values', () => {
  it('accepts the right type and names the method, the type and the value otherwise', () => {
    assert.equal(expectString('GetManifest', 'sha256:x'), 'sha256:x');
    assert.equal(expectString('GetManifest', ''), '');
    assert.throws(() => expectString('GetManifest', 5), { message: 'GetManifest: expected a string in the reply, got 5' });
    assert.equal(expectUint('OpenImage', 0), 0);
    assert.equal(expectUint('OpenImage', 2 ** 53 - 1), 2 ** 53 - 1);
    assert.throws(() => expectUint('OpenImage', -1), { message: 'OpenImage: expected a non-negative integer in the reply, got -1' });
    assert.throws(() => expectUint('OpenImage', 1.5), ProtocolError);
    assert.throws(() => expectUint('OpenImage', '3'), { message: 'OpenImage: expected a non-negative integer in the reply, got "3"' });
    assert.throws(() => expectUint('OpenImage', 2 ** 53), ProtocolError);
    assert.equal(expectSize('GetBlob', -1), -1, 'unknown');
    assert.equal(expectSize('GetBlob', 0), 0);
    assert.throws(() => expectSize('GetBlob', -2), { message: 'GetBlob: expected a blob size in the reply, got -2' });
    assert.throws(() => expectSize('GetBlob', 0.5), ProtocolError);
    assert.throws(() => expectSize('GetBlob', null), { message: 'GetBlob: expected a blob size in the reply, got null' });
    assert.throws(() => expectSize('GetBlob', undefined), { message: 'GetBlob: expected a blob size in the reply, got undefined' });
  });

  it('shows at most 100 characters of a wrong value', () => {
    assert.throws(() => expectUint('OpenImage', 'z'.repeat(500)), { message: `OpenImage: expected a non-negative integer in the reply, got "${'z'.repeat(99)}` });
  });
});

describe('versions', () => {
  it('knows a version when it sees one', () => {
    for (const good of ['0.2.3', '10.20.30']) assert.equal(isVersion(good), true, good);
    for (const bad of ['0.2', '0.2.3.4', 'v0.2.3', '0.2.3 ', ' 0.2.3', '0.2.x', 3, null]) assert.equal(isVersion(bad), false, String(bad));
  });

  it('compares each component numerically, a missing one as 0', () => {
    assert.ok(compareVersions('1.0.0', '0.9.9') > 0);
    assert.ok(compareVersions('0.10.0', '0.9.0') > 0);
    assert.ok(compareVersions('0.2.3', '0.2.10') < 0);
    assert.equal(compareVersions('0.2', '0.2.0'), 0);
    assert.ok(compareVersions('0.2.0.1', '0.2') > 0);
    assert.ok(compareVersions('0.2', '0.2.0.1') < 0);
  });
});
