/** The registry server's pure parts: mappings and the references they build, routes, the log line, credentials. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { parseCredentials } from '../../src/serve/auth.js';
import { classify } from '../../src/serve/registry-errors.js';
import { parseMapping, RepositoryMap } from '../../src/serve/repositories.js';
import { formatRequestLog } from '../../src/serve/request-log.js';
import { parseRoute } from '../../src/serve/routes.js';
import { ImageNotFoundError, RequestError } from '../../src/errors.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('RepositoryMap', () => {
  const map = new RepositoryMap([
    { name: 'app', source: 'oci:/srv/app' },
    { name: 'one', source: 'docker-archive:/srv/one.tar' },
    { name: 'mirror/*', source: 'docker://registry.test:5000/' },
    { name: 'mirror/pinned', source: 'docker://other.test/pinned' },
    { name: 'local/*', source: 'containers-storage:localhost/' },
    { name: 'layouts/*', source: 'oci:/srv/layouts/' },
  ]);

  it('builds references only from valid names, tags and digests', () => {
    assert.equal(map.reference('app', { tag: 'v1.2' }), 'oci:/srv/app:v1.2');
    assert.equal(map.reference('app', { digest: DIGEST }), undefined, 'a layout opens by tag only');
    assert.equal(map.reference('one', { tag: 'latest' }), 'docker-archive:/srv/one.tar');
    assert.equal(map.reference('one', { tag: 'v1' }), undefined);
    assert.equal(map.reference('mirror/ns/x', { tag: 'v1' }), 'docker://registry.test:5000/ns/x:v1');
    assert.equal(map.reference('mirror/ns/x', { digest: DIGEST }), `docker://registry.test:5000/ns/x@${DIGEST}`);
    assert.equal(map.reference('mirror/pinned', { tag: 'v1' }), 'docker://other.test/pinned:v1', 'an exact name goes before a wildcard');
    assert.equal(map.reference('local/app', { tag: 'v1' }), 'containers-storage:localhost/app:v1');
    assert.equal(map.reference('layouts/a/b', { tag: 'v1' }), 'oci:/srv/layouts/a/b:v1');
    for (const name of ['mirror', 'mirror/', 'mirror/../x', 'mirror/a//b', 'Mirror/x', 'mirror/x:1', 'mirror/x@y', 'other', 'layouts/..', 'layouts/.x']) {
      assert.equal(map.reference(name, { tag: 'v1' }), undefined, name);
      assert.equal(map.has(name), false, name);
    }
    for (const tag of ['', '-v', '.v', 'a:b', 'a/b', 'a@b', 'x'.repeat(129), 'v1\n']) assert.equal(map.reference('app', { tag }), undefined, JSON.stringify(tag));
    for (const digest of ['sha256:ab', `sha256:${'AB'.repeat(32)}`, `md5:${'ab'.repeat(16)}`, `${DIGEST}/x`]) assert.equal(map.reference('mirror/x', { digest }), undefined, digest);
  });

  it('re-opens a registry image by digest, anything else by the same reference', () => {
    assert.equal(map.reopenReference('mirror/x', 'docker://registry.test:5000/x:v1', DIGEST), `docker://registry.test:5000/x@${DIGEST}`);
    assert.equal(map.reopenReference('app', 'oci:/srv/app:v1', DIGEST), 'oci:/srv/app:v1');
  });

  it('refuses mappings that cannot be served, naming them', () => {
    const refused: Array<[Array<{ name: string; source: string }>, RegExp]> = [
      [[], /at least one mapping/],
      [[{ name: 'App', source: 'oci:/x' }], /"App" is not a repository name/],
      [[{ name: 'a/../b', source: 'oci:/x' }], /not a repository name/],
      [[{ name: 'app', source: 'http://x' }], /not a source this server can serve/],
      [[{ name: 'app', source: '/srv/app' }], /not a source this server can serve/],
      [[{ name: 'app', source: 'oci:/srv/app:v1' }], /already names a tag/],
      [[{ name: 'app', source: 'docker://r.test/app:v1' }], /already names a tag or digest/],
      [[{ name: 'app', source: `docker://r.test/app@${DIGEST}` }], /already names a tag or digest/],
      [[{ name: 'app/*', source: 'docker-archive:/x.tar' }], /holds one image/],
      [[{ name: 'app/*', source: 'oci:/srv' }], /end it with \//],
      [[{ name: 'app', source: 'oci:/srv/a b' }], /white space/],
      [[{ name: 'app', source: 'oci:/x' }, { name: 'app', source: 'oci:/y' }], /app is mapped twice/],
    ];
    for (const [mappings, message] of refused) {
      assert.throws(() => new RepositoryMap(mappings), (error: Error) => error instanceof InvalidArgumentError && message.test(error.message), JSON.stringify(mappings));
    }
    assert.doesNotThrow(() => new RepositoryMap([{ name: 'app', source: 'docker://r.test:5000/ns/app' }]), 'a port is not a tag');
  });

  it("lists an oci: layout's tags from its index.json, sorted, valid ones only; a single image as latest; a registry not at all", async () => {
    const layout = mkdtempSync(join(tmpdir(), 'cip-serve-unit-'));
    try {
      const entry = (tag: string) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, size: 1, annotations: { 'org.opencontainers.image.ref.name': tag } });
      writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [entry('v2'), entry('v1'), entry('v1'), entry('bad tag'), { digest: DIGEST }] }));
      const tags = new RepositoryMap([{ name: 'app', source: `oci:${layout}` }, { name: 'one', source: 'dir:/x' }, { name: 'r/*', source: 'docker://r.test/' }]);
      assert.deepEqual(await tags.tags('app'), ['v1', 'v2']);
      assert.deepEqual(await tags.tags('one'), ['latest']);
      assert.equal(await tags.tags('r/x'), undefined);
      assert.equal(await tags.tags('nope'), undefined);
    } finally {
      rmSync(layout, { recursive: true, force: true });
    }
  });

  it('parseMapping splits at the first =', () => {
    assert.deepEqual(parseMapping('app=oci:/srv/a=b'), { name: 'app', source: 'oci:/srv/a=b' });
    assert.throws(() => parseMapping('app'), /NAME=SOURCE/);
    assert.throws(() => parseMapping('=oci:/x'), /NAME=SOURCE/);
  });
});

describe('parseRoute', () => {
  it('parses the read API', () => {
    assert.deepEqual(parseRoute('/v2/'), { kind: 'base' });
    assert.deepEqual(parseRoute('/v2'), { kind: 'base' });
    assert.deepEqual(parseRoute('/v2/a/b/manifests/v1?x=1'), { kind: 'manifest', name: 'a/b', reference: { tag: 'v1' } });
    assert.deepEqual(parseRoute(`/v2/a/manifests/${DIGEST}`), { kind: 'manifest', name: 'a', reference: { digest: DIGEST } });
    assert.deepEqual(parseRoute(`/v2/a/blobs/${DIGEST}`), { kind: 'blob', name: 'a', digest: DIGEST });
    assert.deepEqual(parseRoute('/v2/a/b/tags/list?n=2'), { kind: 'tags', name: 'a/b' });
    assert.equal(parseRoute('/v1/x'), undefined);
    assert.equal(parseRoute('/'), undefined);
  });

  it('refuses what the grammars do not allow, with the code to answer', () => {
    const cases: Array<[string, string]> = [
      ['/v2/../a/manifests/v1', 'NAME_INVALID'],
      ['/v2/%2e%2e/manifests/v1', 'NAME_INVALID'],
      ['/v2/A/manifests/v1', 'NAME_INVALID'],
      ['/v2/a/blobs/sha256:zz', 'DIGEST_INVALID'],
      ['/v2/a/manifests/sha1:ab', 'DIGEST_INVALID'],
      ['/v2/a/manifests/-v1', 'MANIFEST_UNKNOWN'],
      ['/v2/a/manifests/v1/x', 'NAME_UNKNOWN'],
      ['/v2/a/uploads/x', 'NAME_UNKNOWN'],
      ['/v2/../x/tags/list', 'NAME_INVALID'],
    ];
    for (const [path, code] of cases) {
      const route = parseRoute(path);
      assert.equal(route?.kind, 'invalid', path);
      assert.equal(route.kind === 'invalid' && route.code, code, path);
    }
  });
});

describe('the request log line', () => {
  it('has the documented fields; a path cannot break the line', () => {
    const entry = { time: new Date('2026-12-05T03:00:00.000Z'), remoteAddress: '127.0.0.1', method: 'GET', path: '/v2/app/manifests/v1', status: 200, bytes: 1093, ms: 4.4 };
    assert.equal(formatRequestLog(entry), '2026-12-05T03:00:00.000Z 127.0.0.1 GET /v2/app/manifests/v1 200 1093 4ms');
    assert.equal(formatRequestLog({ ...entry, path: '/v2/a b\nX', outcome: 'client-gone' }), '2026-12-05T03:00:00.000Z 127.0.0.1 GET /v2/a%20b%0AX 200 1093 4ms client-gone');
  });
});

describe('credentials and error classification', () => {
  it('parseCredentials takes USER:PASSWORD from the first line; the message never quotes the file', () => {
    assert.deepEqual(parseCredentials('user:pa:ss\nignored', 'f'), { username: 'user', password: 'pa:ss' });
    for (const text of ['', 'secretonly', ':pw', 'user:']) {
      assert.throws(() => parseCredentials(text, 'f'), (error: Error) => /USER:PASSWORD/.test(error.message) && (text === '' || !error.message.includes(text)));
    }
  });

  it('not-found failures are 404 with the code of what was asked; others 500', () => {
    const notFound = new ImageNotFoundError('oci:/x:v1', 'OpenImage', 'no such image', undefined);
    assert.deepEqual([classify(notFound, 'manifest').status, classify(notFound, 'manifest').code], [404, 'MANIFEST_UNKNOWN']);
    assert.equal(classify(notFound, 'blob').code, 'BLOB_UNKNOWN');
    assert.deepEqual([classify(new RequestError('GetBlob', 'connection refused'), 'blob').status, classify(new Error('x'), 'blob').code], [500, 'UNKNOWN']);
  });
});
