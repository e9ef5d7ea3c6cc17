import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { RequestError } from '../../src/errors.js';
import { classifyMessage, isMissingStoreBlob, isNotFound, parseSizeComplaint, type FailureKind } from '../../src/skopeo-messages.js';

interface Captured {
  skopeo: string;
  what: string;
  kind: FailureKind;
  message: string;
}

const fixture = new URL('../../../test/fixtures/skopeo-messages.json', import.meta.url);
const { messages } = JSON.parse(readFileSync(fixture, 'utf8')) as { messages: Captured[] };

describe('classifyMessage on real messages of skopeo 1.9.3, 1.18 and 1.22', () => {
  it('covers every release and every kind', () => {
    assert.deepEqual([...new Set(messages.map((m) => m.skopeo))].sort(), ['1.18.0', '1.22.0', '1.9.3']);
    assert.deepEqual([...new Set(messages.map((m) => m.kind))].sort(), ['auth', 'not-found', 'policy', 'tls', 'transient', 'verification']);
  });

  for (const { skopeo, what, kind, message } of messages) {
    it(`${skopeo} ${what}: ${kind}`, () => {
      assert.equal(classifyMessage(message), kind, message);
      const error = new RequestError('OpenImage', message);
      assert.equal(error.kind, kind);
      assert.equal(error.retryable, kind === 'transient');
      assert.equal(isNotFound(message), kind === 'not-found');
    });
  }
});

describe('classifyMessage beyond the captured set', () => {
  const cases: [string, FailureKind][] = [
    // containers-storage: (test/containers-storage.test.ts meets these)
    ['reference "[vfs@/x+/y]docker.io/library/nope:latest" does not resolve to an image ID: identifier is not an image', 'not-found'],
    ['locating item named "manifest-sha256:abc" for image with ID "def": file does not exist', 'not-found'],
    ['reading blob sha256:abc: Get "https://r/v2/x/blobs/sha256:abc": read tcp 1.2.3.4:5->6.7.8.9:443: read: connection reset by peer', 'transient'],
    ['reading manifest v1 in r/x: received unexpected HTTP status: 502 Bad Gateway', 'transient'],
    ['reading manifest v1 in r/x: toomanyrequests: Too Many Requests', 'transient'],
    ['Digest did not match, expected sha256:abc, got sha256:def', 'verification'],
    ['expected 10 bytes in blob, got 9', 'verification'],
    // paths and references may hold any word
    ['open /srv/certificates/signatures/index.json: no such file or directory', 'not-found'],
    ['reading manifest v1 in r/unauthorized-team/app: manifest unknown', 'not-found'],
    // network words, but a permanent failure
    ['reading manifest v1 in r/x: denied: unexpected EOF', 'other'],
    ['open /x/blobs/sha256/abc: no such file or directory (after unexpected EOF)', 'other'],
    ['something else entirely', 'other'],
  ];
  for (const [message, kind] of cases) {
    it(`${kind}: ${message.slice(0, 60)}`, () => assert.equal(classifyMessage(message), kind));
  }

  it('recognises a store asked for a blob it does not keep', () => {
    assert.equal(isMissingStoreBlob('locating item named "x" for image with ID "y": file does not exist'), true);
    assert.equal(isMissingStoreBlob('manifest unknown'), false);
  });

  it("parses GetBlob's size complaint and nothing else", () => {
    assert.deepEqual(parseSizeComplaint('expected 0 bytes in blob, got 1234'), { expected: 0, got: 1234 });
    assert.deepEqual(parseSizeComplaint(' Expected 5 bytes in blob, got 4 \n'), { expected: 5, got: 4 });
    assert.equal(parseSizeComplaint('expected 0 bytes in blob, got 12; corrupted blob'), undefined);
    assert.equal(parseSizeComplaint('corrupted blob, expecting sha256:abc'), undefined);
  });

  it('lets the error code "retryable" win over the words', () => {
    assert.equal(new RequestError('GetBlob', 'something else entirely', 'retryable').retryable, true);
    assert.equal(new RequestError('GetBlob', 'something else entirely', 'other').retryable, false);
  });
});

describe('classifyMessage and parseSizeComplaint, each pattern`s edges', () => {
  it('a docker-archive "no such file" only as the whole message: quoted inside another, it decides nothing', () => {
    const missing = 'opening file "/x/a.tar": open /x/a.tar: no such file or directory';
    assert.equal(classifyMessage(missing), 'not-found');
    assert.equal(classifyMessage(`unauthorized: ${missing}`), 'auth');
    assert.equal(classifyMessage(`${missing} (unauthorized)`), 'auth');
  });

  it('not-found patterns ignore case', () => {
    assert.equal(classifyMessage('reading manifest v1 in r/x: Manifest Unknown'), 'not-found');
  });

  it('"EOF" is transient only at the end of the message', () => {
    assert.equal(classifyMessage('Get "https://r/v2/": EOF'), 'transient');
    assert.equal(classifyMessage('invalid character in EOFs list'), 'other');
  });

  it('parseSizeComplaint: the whole message, numbers of any length', () => {
    assert.deepEqual(parseSizeComplaint('expected 1048576 bytes in blob, got 10'), { expected: 1048576, got: 10 });
    assert.equal(parseSizeComplaint('blob: expected 1 bytes in blob, got 2'), undefined);
  });
});
