/**
 * `serve` (createRegistryServer and the CLI command): a read-only OCI
 * registry in front of real skopeo, pulled through by real clients. The
 * independent reference is `skopeo copy` straight from each source: the
 * image pulled through the server must be the same (manifest digest, or
 * where skopeo's own conversion differs from the proxy's, the same layers
 * and diff_ids), and always exactly what pullImage writes. One server with
 * every source mapped serves the whole file.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { request, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRegistryServer, formatRequestLog, ImageProxy, pullImage, type RegistryServer, type RequestLogEntry } from '../src/index.js';
import { baseConfig, SKOPEO, tempDir } from './support/env.js';
import { buildImage, noise, sha256, type BuiltImage, type LayerSpec } from './support/oci-layout.js';
import { RELEASE, SKOPEO_RELEASE } from './support/skopeo-release.js';
import { makeCertificates, run, skopeoAsync, startRegistry, type TestRegistry } from './support/registry.js';

const scratch = tempDir('cip-serve-test-');
const dir = (name: string): string => join(scratch.path, name);

/** gzip, uncompressed, gzip (the middle one large enough to be cut mid-blob). */
const LAYERS: LayerSpec[] = [
  { entries: [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/config', content: 'v1\n', mode: 0o600 }, { type: 'file', name: 'a.bin', content: noise(60_000, 1) }] },
  { compression: 'none', entries: [{ type: 'file', name: 'big.bin', content: noise(6 * 1024 * 1024, 2) }] },
  { entries: [{ type: 'file', name: 'etc/.wh.config', content: '' }, { type: 'symlink', name: 'link', target: 'a.bin' }] },
];

let source: BuiltImage;
let registry: TestRegistry;
let proxy: ImageProxy;
let server: RegistryServer;
let port: number;
const log: RequestLogEntry[] = [];

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The connection ended before Content-Length bytes (or with an error). */
  aborted: boolean;
}

/** One raw HTTP request; the path goes out exactly as given. */
function fetchRaw(method: string, path: string, options: { port?: number; headers?: Record<string, string>; tls?: { ca: string } } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const send = options.tls ? httpsRequest : request;
    const req = send({ host: '127.0.0.1', port: options.port ?? port, method, path, headers: options.headers, agent: false, ...(options.tls && { ca: options.tls.ca }) }, (res) => {
      const chunks: Buffer[] = [];
      let aborted = false;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('aborted', () => (aborted = true));
      res.on('error', () => (aborted = true));
      res.on('close', () => {
        const body = Buffer.concat(chunks);
        const length = res.headers['content-length'];
        if (method !== 'HEAD' && length !== undefined && Number(length) !== body.length) aborted = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, aborted });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function errorCode(answer: Answer): string {
  return (JSON.parse(answer.body.toString()) as { errors: Array<{ code: string }> }).errors[0]!.code;
}

/**
 * `skopeo copy` into a new `dir:` (which keeps every blob as it comes: an
 * `oci:` destination would compress uncompressed layers); the manifest's
 * digest, the manifest and the config written.
 */
async function copyToDir(from: string, name: string, extra: string[] = []): Promise<Copied> {
  const target = dir(name);
  await skopeoAsync(['--insecure-policy', 'copy', '--quiet', '--retry-times=0', ...extra, from, `dir:${target}`]);
  return readDir(target);
}

interface Manifest {
  mediaType?: string;
  config: { digest: string; size: number };
  layers: Array<{ digest: string; size: number; mediaType: string }>;
}
interface Config {
  rootfs: { diff_ids: string[] };
}
interface Copied {
  digest: string;
  manifest: Manifest;
  config: Config;
}

function readDir(target: string): Copied {
  const raw = readFileSync(join(target, 'manifest.json'));
  const blob = (d: string): Buffer => readFileSync(join(target, d.split(':')[1]!));
  const manifest = JSON.parse(raw.toString()) as Manifest;
  // Every blob is whole: its bytes hash to its name (skopeo verified them too).
  for (const d of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) assert.equal(sha256(blob(d)), d, `${target}: blob ${d}`);
  return { digest: sha256(raw), manifest, config: JSON.parse(blob(manifest.config.digest).toString()) as Config };
}

/** The manifest the server serves. */
async function served(name: string, reference: string): Promise<{ digest: string; manifest: Manifest }> {
  const answer = await fetchRaw('GET', `/v2/${name}/manifests/${reference}`);
  assert.equal(answer.status, 200, answer.body.toString());
  return { digest: sha256(answer.body), manifest: JSON.parse(answer.body.toString()) as Manifest };
}

const through = (name: string): string => `docker://127.0.0.1:${port}/${name}`;
const PLAIN = ['--src-tls-verify=false'];

before(async () => {
  source = buildImage(dir('app'), 'v1', LAYERS);
  buildImage(dir('app'), 'v2', LAYERS.slice(0, 1));
  // A docker-archive: (plain tar layers, a v2s2 manifest the proxy converts).
  await skopeoAsync(['--insecure-policy', 'copy', '--quiet', source.reference, `docker-archive:${dir('app.tar')}:app:v1`]);
  registry = await startRegistry();
  await registry.push(source.reference, 'ns/oci:v1', { format: 'oci' });
  await registry.push(source.reference, 'ns/v2s2:v1', { format: 'v2s2' });
  proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
  server = await createRegistryServer({
    proxy,
    repositories: [
      { name: 'app', source: `oci:${dir('app')}` },
      { name: 'archive', source: `docker-archive:${dir('app.tar')}` },
      { name: 'mirror/*', source: `docker://${registry.host}/` },
      { name: 'corrupt', source: `oci:${dir('corrupt')}` },
      { name: 'corrupt-tiny', source: `oci:${dir('corrupt-tiny')}` },
    ],
    idleClose: 300,
    onRequest: (entry) => log.push(entry),
  });
  port = (await server.listen(0)).port;
});

after(async () => {
  await server?.close();
  await proxy?.close();
  await registry?.stop();
  scratch[Symbol.dispose]();
});

describe('serve: pulled through by skopeo copy, compared with skopeo copy straight from the source', () => {
  it('oci: the same manifest digest as the source, and as pullImage writes', async () => {
    const got = await copyToDir(through('app:v1'), 'got-oci', PLAIN);
    const straight = await copyToDir(source.reference, 'straight-oci');
    assert.equal(got.digest, source.manifestDigest);
    assert.equal(straight.digest, source.manifestDigest);
    const pulled = await pullImage(proxy, source.reference, null);
    assert.equal(pulled.manifestDigest, got.digest);
    assert.equal((await served('app', 'v1')).digest, got.digest);
  });

  it('a registry holding OCI: the registry manifest, byte for byte', async () => {
    const got = await copyToDir(through('mirror/ns/oci:v1'), 'got-reg-oci', PLAIN);
    const straight = await copyToDir(registry.reference('ns/oci:v1'), 'straight-reg-oci', PLAIN);
    assert.equal(got.digest, straight.digest);
    assert.equal(got.digest, sha256(await registry.rawManifest('ns/oci:v1')));
  });

  it('a registry holding v2s2: served converted to OCI; same layers and diff_ids as skopeo copy, same manifest as pullImage', async () => {
    const got = await copyToDir(through('mirror/ns/v2s2:v1'), 'got-reg-v2s2', PLAIN);
    const straight = await copyToDir(registry.reference('ns/v2s2:v1'), 'straight-reg-v2s2', PLAIN);
    assert.equal(got.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.deepEqual(got.manifest.layers.map((l) => [l.digest, l.size]), straight.manifest.layers.map((l) => [l.digest, l.size]));
    assert.deepEqual(got.config.rootfs.diff_ids, source.layers.map((l) => l.diffId));
    assert.deepEqual(straight.config.rootfs.diff_ids, got.config.rootfs.diff_ids);
    assert.equal(straight.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', 'skopeo copy keeps v2s2');
    const pulled = await pullImage(proxy, registry.reference('ns/v2s2:v1'), null);
    assert.equal(pulled.manifestDigest, got.digest);
    assert.notEqual(pulled.sourceDigest, got.digest, 'the v2s2 manifest is served converted');
  });

  it('docker-archive: plain tar layers described as such; same layers and diff_ids as skopeo copy, same manifest as pullImage', async () => {
    const got = await copyToDir(through('archive:latest'), 'got-archive', PLAIN);
    const straight = await copyToDir(`docker-archive:${dir('app.tar')}`, 'straight-archive');
    assert.deepEqual(got.manifest.layers.map((l) => [l.digest, l.size]), straight.manifest.layers.map((l) => [l.digest, l.size]));
    assert.equal(straight.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json', 'skopeo copy keeps the archive\'s v2s2');
    assert.equal(got.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json', 'served converted to OCI');
    const layerTypes = (await served('archive', 'latest')).manifest.layers.map((l) => l.mediaType);
    assert.deepEqual(layerTypes, LAYERS.map(() => 'application/vnd.oci.image.layer.v1.tar'), 'the archive\'s layers are plain tar, and described so');
    assert.deepEqual(got.config.rootfs.diff_ids, source.layers.map((l) => l.diffId));
    assert.deepEqual(straight.config.rootfs.diff_ids, got.config.rootfs.diff_ids);
    const pulled = await pullImage(proxy, `docker-archive:${dir('app.tar')}`, null);
    assert.equal(pulled.manifestDigest, got.digest);
  });
});

describe('serve: the distribution API', () => {
  it('GET /v2/ answers 200 with the API version header', async () => {
    const answer = await fetchRaw('GET', '/v2/');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('manifests by tag and by digest, GET and HEAD: Content-Type, Content-Length and Docker-Content-Digest agree with the body', async () => {
    const byTag = await fetchRaw('GET', '/v2/app/manifests/v1');
    assert.equal(byTag.status, 200);
    assert.equal(byTag.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(byTag.headers['docker-content-digest'], sha256(byTag.body));
    assert.equal(sha256(byTag.body), source.manifestDigest);
    const byDigest = await fetchRaw('GET', `/v2/app/manifests/${source.manifestDigest}`);
    assert.deepEqual(byDigest.body, byTag.body);
    const head = await fetchRaw('HEAD', '/v2/app/manifests/v1');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], String(byTag.body.length));
    assert.equal(head.headers['docker-content-digest'], source.manifestDigest);
    // A registry source opens by digest itself, without a tag first.
    const raw = await registry.rawManifest('ns/oci:v1');
    const direct = await fetchRaw('GET', `/v2/mirror/ns/oci/manifests/${sha256(raw)}`);
    assert.equal(direct.status, 200);
    assert.deepEqual(direct.body, raw);
  });

  it('blobs, GET and HEAD: the bytes of their digest; the config too', async () => {
    for (const layer of source.layers) {
      const head = await fetchRaw('HEAD', `/v2/app/blobs/${layer.digest}`);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(layer.size));
      const got = await fetchRaw('GET', `/v2/app/blobs/${layer.digest}`);
      assert.equal(got.status, 200);
      assert.equal(got.aborted, false);
      assert.equal(sha256(got.body), layer.digest);
      assert.equal(got.headers['docker-content-digest'], layer.digest);
    }
    const config = await fetchRaw('GET', `/v2/app/blobs/${source.configDigest}`);
    assert.equal(sha256(config.body), source.configDigest);
  });

  it('tags/list: an oci: layout lists its tags (n and last paginate); a single image lists latest; a registry cannot list', async () => {
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/app/tags/list')).body.toString()), { name: 'app', tags: ['v1', 'v2'] });
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/app/tags/list?n=1')).body.toString()).tags, ['v1']);
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/app/tags/list?last=v1')).body.toString()).tags, ['v2']);
    assert.deepEqual(JSON.parse((await fetchRaw('GET', '/v2/archive/tags/list')).body.toString()).tags, ['latest']);
    const mirror = await fetchRaw('GET', '/v2/mirror/ns/oci/tags/list');
    assert.equal(mirror.status, 404);
    assert.equal(errorCode(mirror), 'UNSUPPORTED');
  });

  it('unknown names, tags and digests get their error codes', async () => {
    const cases: Array<[string, number, string]> = [
      ['/v2/nope/manifests/v1', 404, 'NAME_UNKNOWN'],
      ['/v2/app/manifests/v9', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/archive/manifests/v1', 404, 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/absent/manifests/v1', 404, 'MANIFEST_UNKNOWN'],
      [`/v2/app/manifests/sha256:${'0'.repeat(64)}`, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/app/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
      // A blob of another repository's manifest is not this repository's.
      [`/v2/archive/blobs/${source.layers[0]!.digest}`, 404, 'BLOB_UNKNOWN'],
      ['/v2/app/blobs/sha256:xyz', 400, 'DIGEST_INVALID'],
      ['/v2/app/manifests/md5:00', 400, 'DIGEST_INVALID'],
    ];
    for (const [path, status, code] of cases) {
      const answer = await fetchRaw('GET', path);
      assert.equal(answer.status, status, path);
      assert.equal(errorCode(answer), code, path);
    }
  });

  it('write methods answer 405 UNSUPPORTED', async () => {
    for (const [method, path] of [['PUT', '/v2/app/manifests/v1'], ['POST', '/v2/app/blobs/uploads/'], ['DELETE', `/v2/app/blobs/${source.configDigest}`], ['PATCH', '/v2/app/blobs/uploads/x']] as const) {
      const answer = await fetchRaw(method, path);
      assert.equal(answer.status, 405, `${method} ${path}`);
      assert.equal(errorCode(answer), 'UNSUPPORTED');
      assert.equal(answer.headers.allow, 'GET, HEAD');
    }
  });

  it('traversal and injection attempts never reach a source: each is refused by the grammar', async () => {
    const before = log.length;
    // Each is answered by the grammar itself (400, or 404 "not a valid tag"), never by a source.
    const attempts: Array<[string, string]> = [
      ['/v2/../app/manifests/v1', 'NAME_INVALID'],
      ['/v2/app/../corrupt/manifests/v1', 'NAME_INVALID'],
      ['/v2/%2e%2e/app/manifests/v1', 'NAME_INVALID'],
      ['/v2/app%2f..%2fcorrupt/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/../../etc/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/ns/oci:v1/manifests/v1', 'NAME_INVALID'],
      ['/v2/App/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/ns//oci/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/' + 'a/'.repeat(130) + 'x/manifests/v1', 'NAME_INVALID'],
      ['/v2/mirror/ns/oci/manifests/..%2f..%2fv1', 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/oci/manifests/v1%00', 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/oci/manifests/-v1', 'MANIFEST_UNKNOWN'],
      ['/v2/app/manifests/' + 'a'.repeat(129), 'MANIFEST_UNKNOWN'],
      ['/v2/mirror/ns/oci/manifests/v1@sha256:' + '0'.repeat(64), 'DIGEST_INVALID'],
      ['/v2/app/blobs/sha256:' + 'A'.repeat(64), 'DIGEST_INVALID'],
      ['/v2/app/blobs/sha256:' + '0'.repeat(64) + '/../x', 'NAME_UNKNOWN'],
      ['/etc/passwd', 'NAME_UNKNOWN'],
    ];
    for (const [path, code] of attempts) {
      const answer = await fetchRaw('GET', path);
      assert.equal(errorCode(answer), code, `${path}: ${answer.body.toString()}`);
      assert.equal(answer.status, code.endsWith('_INVALID') ? 400 : 404, path);
      const message = (JSON.parse(answer.body.toString()) as { errors: Array<{ message: string }> }).errors[0]!.message;
      if (code === 'MANIFEST_UNKNOWN') assert.match(message, /not a valid tag/, path);
      if (code === 'NAME_UNKNOWN') assert.match(message, /not a registry API path/, path);
    }
    // None of them opened anything: every answer came from the grammar, fast, without the proxy.
    assert.equal(log.length - before, attempts.length);
    assert.ok(server.proxy.running);
  });

  it('logs one line per request in the documented format', async () => {
    await fetchRaw('GET', '/v2/app/manifests/v1?secret=1');
    const entry = log.at(-1)!;
    const line = formatRequestLog(entry);
    assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z 127\.0\.0\.1 GET \/v2\/app\/manifests\/v1 200 \d+ \d+ms$/);
    assert.equal(entry.bytes, Number((await fetchRaw('HEAD', '/v2/app/manifests/v1')).headers['content-length']));
  });
});

/** This process's open fds, and skopeo's. */
function fdCounts(): { self: number; skopeo: number } {
  return { self: readdirSync('/proc/self/fd').length, skopeo: readdirSync(`/proc/${proxy.pid}/fd`).length };
}

async function eventually(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('serve: faults, limits and load', () => {
  it('20 concurrent skopeo copy pulls of a 3-layer image: all whole, none deadlocked', async () => {
    const pulls = Array.from({ length: 20 }, (_, i) => copyToDir(through('app:v1'), `many-${i}`, PLAIN));
    const results = await Promise.all(pulls);
    for (const result of results) assert.equal(result.digest, source.manifestDigest);
  });

  it('a client that disconnects mid-blob leaves no fd and no open image behind; the proxy still serves', async (t) => {
    const big = source.layers[1]!;
    await fetchRaw('GET', '/v2/app/manifests/v1');
    await eventually(() => server.openImages === 0, 'the idle images to close');
    const baseline = fdCounts();
    for (let i = 0; i < 3; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: `/v2/app/blobs/${big.digest}`, agent: false }, (res) => {
          assert.equal(res.statusCode, 200);
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
        req.end();
      });
    }
    await eventually(() => server.openImages === 0, 'the images to close after idleClose');
    // skopeo 1.9 (protocol 0.2.3) never closes a GetBlob's source file, read whole or not: its count is no probe there.
    const skopeoComparable = RELEASE.policyEnforcement;
    if (!skopeoComparable) t.diagnostic(`skopeo's fd count not compared: skopeo ${SKOPEO_RELEASE} leaks one fd per GetBlob by itself`);
    await eventually(() => {
      const now = fdCounts();
      return now.self <= baseline.self && (!skopeoComparable || now.skopeo <= baseline.skopeo);
    }, `fds back to ${JSON.stringify(baseline)} (now ${JSON.stringify(fdCounts())})`);
    const whole = await fetchRaw('GET', `/v2/app/blobs/${big.digest}`);
    assert.equal(sha256(whole.body), big.digest);
    assert.ok(log.some((entry) => entry.outcome === 'client-gone'), 'the log says the client went away');
  });

  it('a client that stops reading is cut off after clientIdleTimeout, and holds no one else up meanwhile', async () => {
    // Larger than what loopback socket buffers absorb.
    const big = buildImage(dir('big'), 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'big.bin', content: noise(32 * 1024 * 1024, 3) }] }]).layers[0]!;
    const entries: RequestLogEntry[] = [];
    await using impatient = await createRegistryServer({ proxy, repositories: [{ name: 'app', source: `oci:${dir('big')}` }], clientIdleTimeout: 1000, onRequest: (entry) => entries.push(entry) });
    const impatientPort = (await impatient.listen(0)).port;
    await fetchRaw('GET', '/v2/app/manifests/v1', { port: impatientPort });
    let received = 0;
    let complete = true;
    let resume!: () => void;
    const stalledDone = new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: impatientPort, path: `/v2/app/blobs/${big.digest}`, agent: false }, (res) => {
        res.pause(); // reads nothing: the socket's buffers fill, then the server waits for drain
        resume = () => res.resume();
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        req.once('close', () => {
          complete = res.complete;
          resolve();
        });
      });
      req.on('error', () => {});
      req.end();
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const other = await fetchRaw('GET', `/v2/app/blobs/${big.digest}`, { port: impatientPort });
    assert.equal(sha256(other.body), big.digest, 'another client is served while one stalls');
    await eventually(() => entries.some((entry) => entry.outcome === 'client-idle'), 'the log line of the cut client');
    // Reading again, the client gets what was in flight and then the end of a cut connection, short of Content-Length.
    resume();
    await stalledDone;
    assert.equal(complete, false);
    assert.ok(received < big.size, `${received} of ${big.size} bytes`);
  });

  it('a blob corrupt at the source: never a whole 200; skopeo copy fails', async () => {
    // Its config names the tag: another manifest than app:v1's. A large layer, and a small one the socket takes whole at once.
    const small: LayerSpec = { compression: 'none', entries: [{ type: 'file', name: 'small.bin', content: noise(300_000, 9) }] };
    const corrupt = buildImage(dir('corrupt'), 'bad', [...LAYERS, small]);
    await fetchRaw('GET', '/v2/corrupt/manifests/bad');
    for (const layer of [corrupt.layers[1]!, corrupt.layers[3]!]) {
      const bytes = readFileSync(layer.path);
      const middle = bytes.length >> 1;
      bytes[middle] = bytes[middle]! ^ 0xff; // same size, one byte flipped mid-blob
      writeFileSync(layer.path, bytes);
      const answer = await fetchRaw('GET', `/v2/corrupt/blobs/${layer.digest}`);
      assert.ok(answer.status === 500 || answer.aborted, `status ${answer.status}, ${answer.body.length} of ${layer.size} bytes`);
      assert.ok(answer.body.length < layer.size, `${answer.body.length} of ${layer.size} bytes: the last bytes wait for verification`);
    }
    await assert.rejects(copyToDir(through('corrupt:bad'), 'got-corrupt', PLAIN));
    const good = await fetchRaw('GET', `/v2/corrupt/blobs/${corrupt.layers[0]!.digest}`);
    assert.equal(sha256(good.body), corrupt.layers[0]!.digest, 'the proxy still serves');
  });

  it('a corrupt blob that fails before a byte went out (one chunk) is a proper 500 with an error body', async () => {
    const tiny: LayerSpec = { compression: 'none', entries: [{ type: 'file', name: 'tiny.txt', content: 'a blob skopeo writes at once\n' }] };
    const corrupt = buildImage(dir('corrupt-tiny'), 'bad', [tiny]);
    await fetchRaw('GET', '/v2/corrupt-tiny/manifests/bad');
    const layer = corrupt.layers[0]!;
    const bytes = readFileSync(layer.path);
    bytes[520] = bytes[520]! ^ 0xff; // in the file's content (after its 512-byte tar header): same size, another digest
    writeFileSync(layer.path, bytes);
    const answer = await fetchRaw('GET', `/v2/corrupt-tiny/blobs/${layer.digest}`);
    assert.equal(answer.status, 500, `status ${answer.status}, aborted ${answer.aborted}`);
    assert.equal(errorCode(answer), 'UNKNOWN');
    assert.match(answer.body.toString(), /failed verification/);
  });
});

describe('serve: endpoint auth and TLS', () => {
  it('basic auth over TLS: a client with the CA and the credentials pulls; without credentials 401, with wrong ones 401', async () => {
    const tlsDir = dir('tls');
    mkdirSync(tlsDir);
    const certs = await makeCertificates(tlsDir);
    const password = 'pw-' + createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16);
    await using secured = await createRegistryServer({
      proxy,
      repositories: [{ name: 'app', source: `oci:${dir('app')}` }],
      auth: { username: 'puller', password },
      tls: { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) },
    });
    const securedPort = (await secured.listen(0)).port;
    const ca = readFileSync(certs.caCert, 'utf8');
    const anonymous = await fetchRaw('GET', '/v2/', { port: securedPort, tls: { ca } });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="containers-image-proxy"');
    const wrong = await fetchRaw('GET', '/v2/app/manifests/v1', { port: securedPort, tls: { ca }, headers: { authorization: `Basic ${Buffer.from('puller:nope').toString('base64')}` } });
    assert.equal(wrong.status, 401);
    assert.ok(!wrong.body.toString().includes(password));
    // skopeo with an auth file (not --src-creds: no secret on a command line) and the CA.
    const authFile = join(tlsDir, 'auth.json');
    writeFileSync(authFile, JSON.stringify({ auths: { [`127.0.0.1:${securedPort}`]: { auth: Buffer.from(`puller:${password}`).toString('base64') } } }), { mode: 0o600 });
    const got = await copyToDir(`docker://127.0.0.1:${securedPort}/app:v1`, 'got-tls', [`--src-authfile=${authFile}`, `--src-cert-dir=${certs.clientCertDir}`]);
    assert.equal(got.digest, source.manifestDigest);
    await assert.rejects(copyToDir(`docker://127.0.0.1:${securedPort}/app:v1`, 'got-tls-anon', [`--src-cert-dir=${certs.clientCertDir}`, '--src-no-creds']));
  });
});

describe('serve: podman pull (rootful, a private store)', { skip: process.getuid?.() !== 0 ? 'podman pull into a private store needs root' : false }, () => {
  // podman refuses a run root longer than 50 characters: under TMPDIR (where
  // the mutation hook's cleanup finds it) when that is short enough, else /tmp.
  const runroot = mkdtempSync(join(tmpdir().length + '/run-XXXXXX'.length <= 50 ? tmpdir() : '/tmp', 'run-'));
  after(() => rmSync(runroot, { recursive: true, force: true }));

  /** podman with its own store and a registries.conf that marks this server insecure (plain HTTP). */
  function podman(store: string, ...args: string[]): Promise<string> {
    const conf = join(store, 'registries.conf');
    writeFileSync(conf, `[[registry]]\nlocation = "127.0.0.1:${port}"\ninsecure = true\n`);
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf };
    const global = ['--root', join(store, 'root'), '--runroot', runroot, '--storage-driver', 'vfs', '--events-backend', 'none', '--cgroup-manager', 'cgroupfs'];
    return run('podman', [...global, ...args], { env, timeoutMs: 120_000 }).then((result) => result.stdout.trim());
  }

  it('podman pulls from oci:, docker-archive: and a registry (v2s2) through the server: the repository digest it records is the one served', async () => {
    const store = dir('podman');
    mkdirSync(store);
    for (const [name, tag] of [['app', 'v1'], ['archive', 'latest'], ['mirror/ns/v2s2', 'v1']] as const) {
      const image = `127.0.0.1:${port}/${name}:${tag}`;
      await podman(store, 'pull', '--quiet', image);
      // RepoDigests, not .Digest: podman keys images by config, and app:v1 and archive:latest share theirs.
      const digests = JSON.parse(await podman(store, 'image', 'inspect', '--format', '{{json .RepoDigests}}', image)) as string[];
      assert.ok(digests.includes(`127.0.0.1:${port}/${name}@${(await served(name, tag)).digest}`), `${image}: ${digests.join(' ')}`);
    }
  });

  it("podman's local store, served: pulled back through the server, the layers are the stored ones (uncompressed, with their diff_ids)", async () => {
    const store = dir('podman');
    const storage = `containers-storage:[vfs@${join(store, 'root')}+${runroot}]`;
    await using local = await createRegistryServer({ proxy, repositories: [{ name: 'stored', source: `${storage}127.0.0.1:${port}/app` }] });
    const localPort = (await local.listen(0)).port;
    const got = await copyToDir(`docker://127.0.0.1:${localPort}/stored:v1`, 'got-storage', PLAIN);
    assert.deepEqual(got.config.rootfs.diff_ids, source.layers.map((l) => l.diffId));
    assert.deepEqual(got.manifest.layers.map((l) => l.digest), source.layers.map((l) => l.diffId), 'the store serves its layers uncompressed');
  });
});

describe('serve: the command line', () => {
  const BIN = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

  /** Starts `containers-image-proxy serve ARGS` and waits for its "serving on" line; its port, stderr so far, and the child. */
  async function startCli(args: string[]): Promise<{ port: number; child: ReturnType<typeof spawn>; stderr: () => string; exited: Promise<number | null> }> {
    const child = spawn(process.execPath, [BIN, 'serve', '--listen', '127.0.0.1:0', '--skopeo', SKOPEO, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await eventually(() => /serving on http:\/\/127\.0\.0\.1:\d+\/v2\//.test(stderr) || child.exitCode !== null, 'the serving line', 20_000);
    const match = /serving on http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr);
    assert.ok(match, stderr);
    return { port: Number(match[1]), child, stderr: () => stderr, exited };
  }

  it('usage errors exit 2 and say what to do; --help shows the mappings and examples', () => {
    const help = spawnSync(process.execPath, [BIN, 'serve', '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--map NAME=SOURCE/);
    assert.match(help.stdout, /podman pull --tls-verify=false 127\.0\.0\.1:5000\/app:1\.0/);
    for (const [args, message] of [
      [[], /at least one --map/],
      [['--map', 'app'], /NAME=SOURCE/],
      [['--map', 'App=oci:/x'], /not a repository name/],
      [['--map', 'app=http://x'], /not a source this server can serve/],
      [['--map', 'app=oci:/x:v1'], /already names a tag/],
      [['--map', 'app=oci:/x', '--listen', 'nowhere'], /--listen takes HOST:PORT/],
    ] as const) {
      const result = spawnSync(process.execPath, [BIN, 'serve', ...args], { encoding: 'utf8' });
      assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  it('--auth-file, --max-connections, the log line on stderr, and a graceful SIGTERM that stops skopeo', async () => {
    const authFile = dir('cli-auth');
    const password = 'cli-' + createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 12);
    writeFileSync(authFile, `puller:${password}\n`, { mode: 0o600 });
    const cli = await startCli(['--map', `app=oci:${dir('app')}`, '--auth-file', authFile, '--max-connections', '1', '--shutdown-timeout', '1']);
    const authorization = `Basic ${Buffer.from(`puller:${password}`).toString('base64')}`;
    assert.equal((await fetchRaw('GET', '/v2/app/manifests/v1', { port: cli.port })).status, 401);
    const ok = await fetchRaw('GET', '/v2/app/manifests/v1', { port: cli.port, headers: { authorization } });
    assert.equal(sha256(ok.body), source.manifestDigest);
    await eventually(() => / GET \/v2\/app\/manifests\/v1 200 \d+ \d+ms\n/.test(cli.stderr()), 'the log line');
    assert.match(cli.stderr(), /^\S+Z 127\.0\.0\.1 GET \/v2\/app\/manifests\/v1 401 \d+ \d+ms$/m);
    // One connection at a time: a second is closed while the first is open.
    const held = connect(cli.port, '127.0.0.1');
    await new Promise((resolve) => held.once('connect', resolve));
    await assert.rejects(fetchRaw('GET', '/v2/', { port: cli.port, headers: { authorization } }), /socket hang up|ECONNRESET/);
    held.destroy();
    // Once the server saw it close, connections are served again.
    for (let attempt = 0; ; attempt++) {
      const answer = await fetchRaw('GET', '/v2/', { port: cli.port, headers: { authorization } }).catch(() => undefined);
      if (answer?.status === 200) break;
      assert.ok(attempt < 100, 'the server serves again once the held connection is closed');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // A transfer under way at SIGTERM: cut after --shutdown-timeout; skopeo stopped; exit 0.
    const skopeoPids = (): number[] =>
      readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
        try {
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === cli.child.pid;
        } catch {
          return false;
        }
      }).map(Number);
    await eventually(() => skopeoPids().length > 0, 'the skopeo child');
    const children = skopeoPids();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: cli.port, path: `/v2/app/blobs/${source.layers[1]!.digest}`, headers: { authorization }, agent: false }, (res) => {
        res.pause(); // a transfer that will not finish by itself
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    cli.child.kill('SIGTERM');
    const started = Date.now();
    assert.equal(await cli.exited, 0, cli.stderr());
    assert.ok(Date.now() - started < 10_000);
    await eventually(() => children.every((pid) => !existsSync(`/proc/${pid}`)), 'skopeo to exit');
    assert.ok(!cli.stderr().includes(password), 'the password is never logged');
  });
});
