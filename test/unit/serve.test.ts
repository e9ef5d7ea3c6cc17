/** The registry server's pure parts: mappings and the references they build, routes, the log line, credentials. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/errors.js';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BasicAuth, parseCredentials, type BasicCredentials } from '../../src/serve/auth.js';
import { classify, errorBody, RegistryError, sendError } from '../../src/serve/registry-errors.js';
import { isDigest, isRepositoryName, parseMapping, RepositoryMap, type RepositoryMapping } from '../../src/serve/repositories.js';
import { formatRequestLog } from '../../src/serve/request-log.js';
import { parseRoute } from '../../src/serve/routes.js';
import { BlobVerificationError, ImageNotFoundError, RequestError, SpawnError } from '../../src/errors.js';
import { createRegistryServer } from '../../src/serve/server.js';

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

describe('the distribution spec grammars', () => {
  // distribution-spec: <name> is [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
  it('accepts every repository name the spec allows, in every component', () => {
    for (const component of ['a', 'a--b', 'a---b', 'a.b', 'a_b', 'a__b', 'ab.cd', 'ab-cd', 'a1.b2-c3', 'x9']) {
      for (const name of [component, `ns/${component}`, `${component}/x`]) assert.equal(isRepositoryName(name), true, name);
    }
  });

  it('refuses names the spec does not allow', () => {
    for (const name of ['', 'A', 'a-', '-a', 'a.', '.a', 'a..b', 'a___b', 'a_-b', 'a/', '/a', 'a//b', 'ns/a-', 'ns/.a', 'ns/a..b', 'a b', 'a:b', 'a@b', 'é']) {
      assert.equal(isRepositoryName(name), false, JSON.stringify(name));
    }
  });

  it('takes names up to 255 characters', () => {
    const name = (length: number) => `${'a/'.repeat((length - 1) / 2)}a`.slice(0, length);
    assert.equal(name(255).length, 255);
    assert.equal(isRepositoryName(name(255)), true);
    assert.equal(isRepositoryName(`${name(255)}b`), false);
  });

  it('accepts sha256, sha384 and sha512 digests of their exact length only', () => {
    for (const [algorithm, length] of [['sha256', 64], ['sha384', 96], ['sha512', 128]] as const) {
      assert.equal(isDigest(`${algorithm}:${'0a'.repeat(length / 2)}`), true, algorithm);
      for (const hex of ['', 'a', '0a'.repeat(length / 2 - 1), `${'0a'.repeat(length / 2)}0`, 'g'.repeat(length), '-'.repeat(length)]) {
        assert.equal(isDigest(`${algorithm}:${hex}`), false, `${algorithm}:${hex}`);
      }
    }
    for (const digest of [`x${DIGEST}`, `/${DIGEST}`, `sha512:${'0a'.repeat(64)}sha256:${'ab'.repeat(32)}`, ` ${DIGEST}`, `${DIGEST}\n`]) {
      assert.equal(isDigest(digest), false, JSON.stringify(digest));
    }
  });
});

describe('RepositoryMap lookups', () => {
  it('serves a name exactly and as a wildcard prefix side by side', () => {
    const map = new RepositoryMap([
      { name: 'app', source: 'oci:/srv/app' },
      { name: 'app/*', source: 'oci:/srv/apps/' },
    ]);
    assert.equal(map.has('app'), true);
    assert.equal(map.has('app/x'), true);
    assert.equal(map.reference('app', { tag: 'v1' }), 'oci:/srv/app:v1');
    assert.equal(map.reference('app/x', { tag: 'v1' }), 'oci:/srv/apps/x:v1');
  });

  it('has() is true for a served name and false for an invalid or unmapped one', () => {
    const map = new RepositoryMap([{ name: 'app', source: 'oci:/srv/app' }, { name: 'mirror/*', source: 'docker://r.test/' }]);
    assert.equal(map.has('app'), true);
    assert.equal(map.has('mirror/ns/x'), true);
    assert.equal(map.has('apps'), false);
    assert.equal(map.has('mirror'), false);
    assert.equal(map.has('mirror/X'), false);
  });

  it('takes the longest wildcard prefix, whatever the order of the mappings', () => {
    const mappings = [
      { name: 'a/*', source: 'docker://short.test/' },
      { name: 'a/b/*', source: 'docker://long.test/' },
      { name: 'a/b/c/*', source: 'docker://longest.test/' },
    ];
    for (const order of [mappings, [...mappings].reverse(), [mappings[1]!, mappings[0]!, mappings[2]!]]) {
      const map = new RepositoryMap(order);
      assert.equal(map.reference('a/b/c/d', { tag: 'v1' }), 'docker://longest.test/d:v1');
      assert.equal(map.reference('a/b/x', { tag: 'v1' }), 'docker://long.test/x:v1');
      assert.equal(map.reference('a/x/y', { tag: 'v1' }), 'docker://short.test/x/y:v1');
    }
  });

  it("lists no tags for an oci: layout whose index.json is missing or unreadable", async () => {
    const root = mkdtempSync(join(tmpdir(), 'cip-serve-unit-'));
    try {
      writeFileSync(join(root, 'index.json'), '{ not json');
      const map = new RepositoryMap([{ name: 'missing', source: `oci:${join(root, 'nope')}` }, { name: 'broken', source: `oci:${root}` }]);
      assert.deepEqual(await map.tags('missing'), []);
      assert.deepEqual(await map.tags('broken'), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('RepositoryMap refusals', () => {
  const refuses = (mappings: unknown[], message: RegExp) =>
    assert.throws(() => new RepositoryMap(mappings as RepositoryMapping[]), (error: Error) => error instanceof InvalidArgumentError && message.test(error.message), JSON.stringify(mappings));

  it('refuses a mapping that is not { name, source } of strings', () => {
    const shape = /each mapping is \{ name, source \}, both strings/;
    for (const mapping of [null, 'app=oci:/x', 42, Object.assign(function app() {}, { source: 'oci:/x' }), { name: 'app' }, { source: 'oci:/x' }, { name: 1, source: 'oci:/x' }, { name: 'app', source: ['oci:/x'] }, { name: 'app', source: null }]) {
      refuses([mapping], shape);
    }
  });

  it('refuses a source without a transport, naming the transports it can serve', () => {
    const list = /use one of oci:, oci-archive:, docker:, containers-storage:, docker-archive:, dir:$/;
    for (const source of ['ocia', 'dirx', 'dockerx', '/srv/app', ':oci', '']) refuses([{ name: 'app', source }], list);
  });

  it('refuses a wildcard whose registry or store source does not end where a name can be appended', () => {
    // docker://registry.test with mirror/* would serve mirror/x.other.test/app from docker://registry.testx.other.test/app: the client would pick the host.
    for (const source of ['docker://registry.test', 'docker://registry.test:5000/ns', 'docker:', 'oci:', 'oci:/srv/[x]', 'oci-archive:/srv/x', 'containers-storage:localhost']) {
      refuses([{ name: 'mirror/*', source }], /end it with \//);
    }
    const map = new RepositoryMap([
      { name: 'a/*', source: 'docker://registry.test/' },
      { name: 'b/*', source: 'docker://' },
      { name: 'c/*', source: 'containers-storage:' },
      { name: 'd/*', source: 'containers-storage:localhost/' },
      { name: 'e/*', source: 'containers-storage:[overlay@/var/lib/containers/storage]' },
    ]);
    assert.equal(map.reference('a/ns/x', { tag: 'v1' }), 'docker://registry.test/ns/x:v1');
    assert.equal(map.reference('b/x', { tag: 'v1' }), 'docker://x:v1');
    assert.equal(map.reference('c/x', { tag: 'v1' }), 'containers-storage:x:v1');
    assert.equal(map.reference('d/x', { tag: 'v1' }), 'containers-storage:localhost/x:v1');
    assert.equal(map.reference('e/x', { tag: 'v1' }), 'containers-storage:[overlay@/var/lib/containers/storage]x:v1');
  });

  it('refuses a registry source whose only component names a tag (docker://alpine:3 is docker.io/library/alpine, tag 3)', () => {
    for (const source of ['docker://alpine:3', 'docker://localhost:5000', `docker://alpine@${DIGEST}`]) refuses([{ name: 'app', source }], /already names a tag or digest/);
    const map = new RepositoryMap([{ name: 'app', source: 'docker://alpine' }, { name: 'port', source: 'docker://r.test:5000/app' }]);
    assert.equal(map.reference('app', { tag: '3' }), 'docker://alpine:3');
    assert.equal(map.reference('port', { tag: '3' }), 'docker://r.test:5000/app:3');
  });

  it("refuses an object's inherited property names as transports", () => {
    for (const transport of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) {
      refuses([{ name: 'app', source: `${transport}:/srv/app` }], /not a source this server can serve/);
    }
  });

  it('lets a path with @ through where the source is not a registry', () => {
    const map = new RepositoryMap([
      { name: 'one', source: 'docker-archive:/srv/app@2.tar' },
      { name: 'two', source: 'dir:/srv/app@2' },
      { name: 'three', source: 'oci-archive:/srv/app@2.tar' },
    ]);
    assert.equal(map.reference('one', { tag: 'latest' }), 'docker-archive:/srv/app@2.tar');
    assert.equal(map.reference('two', { tag: 'latest' }), 'dir:/srv/app@2');
    assert.equal(map.reference('three', { tag: 'v1' }), 'oci-archive:/srv/app@2.tar:v1');
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
      ['/v2/a/tags/listing', 'NAME_UNKNOWN'],
      ['/v2/a/tags/list/x', 'NAME_UNKNOWN'],
    ];
    for (const [path, code] of cases) {
      const route = parseRoute(path);
      assert.equal(route?.kind, 'invalid', path);
      assert.equal(route.kind === 'invalid' && route.code, code, path);
    }
  });
});

describe('parseRoute messages', () => {
  it('says what is wrong, for the error body a person reads', () => {
    const name = 'not a valid repository name (lower-case letters, digits and . _ - between them, components joined by /)';
    const digest = 'not a digest this server accepts (sha256, sha384 or sha512, lower-case hex)';
    assert.deepEqual(parseRoute('/v2/a/uploads/x'), { kind: 'invalid', status: 404, code: 'NAME_UNKNOWN', why: 'not a registry API path' });
    assert.deepEqual(parseRoute('/v2/A/manifests/v1'), { kind: 'invalid', status: 400, code: 'NAME_INVALID', why: name });
    assert.deepEqual(parseRoute('/v2/A/tags/list'), { kind: 'invalid', status: 400, code: 'NAME_INVALID', why: name });
    assert.deepEqual(parseRoute('/v2/a/blobs/sha256:zz'), { kind: 'invalid', status: 400, code: 'DIGEST_INVALID', why: digest });
    assert.deepEqual(parseRoute('/v2/a/manifests/sha1:ab'), { kind: 'invalid', status: 400, code: 'DIGEST_INVALID', why: digest });
    assert.deepEqual(parseRoute('/v2/a/manifests/-v1'), { kind: 'invalid', status: 404, code: 'MANIFEST_UNKNOWN', why: 'not a valid tag' });
  });
});

describe('BasicAuth', () => {
  const user: BasicCredentials = { username: 'puller', password: 's3cret:pw' };
  const auth = new BasicAuth(user);
  const request = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;
  const basic = (text: string) => Buffer.from(text).toString('base64');

  it('refuses to be built without a usable user and password; the message never quotes them', () => {
    for (const credentials of [{ username: '', password: 'pw' }, { username: 'a:b', password: 'pw' }, { username: 'user', password: '' }, { username: 'user' }, { password: 'pw' }, { username: 7, password: 'pw' }, { username: 'user', password: 7 }, undefined]) {
      assert.throws(
        () => new BasicAuth(credentials as unknown as BasicCredentials),
        (error: Error) => error instanceof InvalidArgumentError && error.message === 'auth: give a non-empty username without a colon and a non-empty password',
        JSON.stringify(credentials),
      );
    }
    assert.doesNotThrow(() => new BasicAuth({ username: 'u', password: 'p' }));
  });

  it("allows the user's credentials, the scheme in any case and with any spaces (RFC 7617, RFC 7235)", () => {
    for (const header of [`Basic ${basic('puller:s3cret:pw')}`, `basic ${basic('puller:s3cret:pw')}`, `BASIC   ${basic('puller:s3cret:pw')}`, `Basic ${basic('puller:s3cret:pw')}  `]) {
      assert.equal(auth.allows(request(header)), true, header);
    }
  });

  it('refuses anything else', () => {
    const good = basic('puller:s3cret:pw');
    for (const header of [
      undefined,
      '',
      'Basic',
      `Basic${good}`,
      `Bearer ${good}`,
      `xBasic ${good}`,
      `Basic ${good}, Bearer x`,
      `Basic ${good} x`,
      `Basic ${good.slice(0, -1)}!`,
      `Basic ${basic('puller:s3cret')}`,
      `Basic ${basic('puller:s3cret:pwx')}`,
      `Basic ${basic('Puller:s3cret:pw')}`,
      `Basic ${basic(':')}`,
      `Basic ${basic('')}=`,
    ]) {
      assert.equal(auth.allows(request(header)), false, String(header));
    }
  });
});

describe('registry error bodies', () => {
  it("is the distribution spec's error body", () => {
    assert.deepEqual(JSON.parse(errorBody('NAME_UNKNOWN', 'no repository x')), { errors: [{ code: 'NAME_UNKNOWN', message: 'no repository x', detail: null }] });
    const error = new RegistryError(404, 'BLOB_UNKNOWN', 'gone');
    assert.deepEqual([error.name, error.status, error.code, error.message, error instanceof Error], ['RegistryError', 404, 'BLOB_UNKNOWN', 'gone', true]);
  });

  it('sendError answers with the status, a JSON body and its length; HEAD without the body', async () => {
    const server = createServer((req, res) => {
      const error = req.url === '/registry' ? new RegistryError(404, 'MANIFEST_UNKNOWN', 'no such tag') : new ImageNotFoundError('oci:/x:v1', 'OpenImage', 'no such image', undefined);
      sendError(res, error, 'blob', req.method === 'HEAD');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const got = await fetch(`${base}/registry`, { signal: AbortSignal.timeout(10_000) });
      const body = await got.text();
      assert.equal(got.status, 404);
      assert.equal(got.headers.get('content-type'), 'application/json');
      assert.equal(got.headers.get('content-length'), String(Buffer.byteLength(body)));
      assert.deepEqual(JSON.parse(body), { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'no such tag', detail: null }] });
      const classified = await fetch(`${base}/other`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(classified.status, 404);
      assert.equal((JSON.parse(await classified.text()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'BLOB_UNKNOWN');
      const head = await fetch(`${base}/registry`, { method: 'HEAD', signal: AbortSignal.timeout(10_000) });
      assert.equal(head.status, 404);
      assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(body)));
      assert.equal(await head.text(), '');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
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

  it("a proxy request that failed with the source's not-found message is a 404 too", () => {
    const missing = new RequestError('GetBlob', 'reading blob sha256:ab: blob unknown to registry');
    assert.deepEqual(classify(missing, 'blob'), { status: 404, code: 'BLOB_UNKNOWN', message: missing.message });
    assert.equal(classify(missing, 'manifest').code, 'MANIFEST_UNKNOWN');
  });

  it('answers the first line of a message only; a blob that failed verification says so', () => {
    assert.deepEqual(classify(new Error('first line\nsecond line'), 'manifest'), { status: 500, code: 'UNKNOWN', message: 'first line' });
    const broken = new BlobVerificationError(DIGEST, 3, 3, 'digest mismatch');
    assert.deepEqual(classify(broken, 'blob'), { status: 500, code: 'UNKNOWN', message: `the source's blob failed verification: ${broken.message}` });
    assert.deepEqual(classify('text', 'blob'), { status: 500, code: 'UNKNOWN', message: 'text' });
  });
});

describe('createRegistryServer option checks', () => {
  const repositories = [{ name: 'app', source: 'oci:/srv/app' }];
  /** A proxy config that cannot start: an option that passes the checks fails on the spawn instead. */
  const proxy = { skopeoCommand: ['/nonexistent/skopeo'] };
  const refused = (message: string) => (error: Error) => error instanceof InvalidArgumentError && error.message === message;

  it('refuses missing options and unusable limits with a message naming the option, before anything is spawned', async () => {
    for (const options of [undefined, null, 'app=oci:/srv/app']) {
      await assert.rejects(createRegistryServer(options as never), refused('createRegistryServer: options are required ({ proxy, repositories })'), String(options));
    }
    for (const [option, value, min] of [
      ['maxConnections', 0, 1],
      ['maxConnections', 1.5, 1],
      ['maxConnections', Number.NaN, 1],
      ['clientIdleTimeout', 0, 1],
      ['clientIdleTimeout', 2 ** 53, 1],
      ['idleClose', -1, 0],
      ['tagTtl', -1, 0],
      ['tagTtl', '5' as unknown as number, 0],
    ] as const) {
      await assert.rejects(
        createRegistryServer({ proxy, repositories, [option]: value }),
        refused(`${option} must be a whole number, ${min} or more, got ${String(value)}`),
        `${option} ${String(value)}`,
      );
    }
    for (const tls of [{ cert: 'PEM' }, { key: 'PEM' }, { cert: '', key: 'PEM' }]) {
      await assert.rejects(createRegistryServer({ proxy, repositories, tls: tls as never }), refused('tls needs both cert and key (PEM)'), JSON.stringify(tls));
    }
  });

  it('accepts the smallest limits and both TLS parts: the proxy spawn is what fails', async () => {
    for (const limits of [{ maxConnections: 1, clientIdleTimeout: 1, idleClose: 0, tagTtl: 0 }, { tls: { cert: 'PEM', key: 'PEM' } }, {}]) {
      await assert.rejects(createRegistryServer({ proxy, repositories, ...limits }), SpawnError, JSON.stringify(limits));
    }
  });
});
