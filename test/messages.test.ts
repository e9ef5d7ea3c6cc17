/**
 * skopeo's real error messages, one failure of each kind, and what
 * classifyMessage makes of them. Run with CAPTURE_SKOPEO_MESSAGES=FILE to
 * append each message (as JSON lines) to FILE: that is how
 * test/fixtures/skopeo-messages.json, which the unit tests read, was made.
 */
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it } from 'node:test';
import { ImageProxy, RequestError, type FailureKind, type ImageProxyConfig } from '../src/index.js';
import { baseConfig, skopeo, tempDir, watchdog } from './support/env.js';
import { FaultRelay } from './support/fault-relay.js';
import { buildImage, sha256, type BuiltImage } from './support/oci-layout.js';
import {
  createGpgSigner,
  signaturePath,
  startRegistry,
  stopGpgAgent,
  tamperSignature,
  writeSignedByPolicy,
  type GpgSigner,
  type TestRegistry,
} from './support/registry.js';

const scratch = tempDir();
let image: BuiltImage;
let plain: TestRegistry;
let secure: TestRegistry;
let relay: FaultRelay;
let release = '';

before(async () => {
  image = buildImage(join(scratch.path, 'layout'), 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'a', content: 'a\n' }] }]);
  release = skopeo('--version').trim().replace(/^skopeo version /, '').split(' ')[0]!;
  plain = await startRegistry();
  secure = await startRegistry({ tls: true, auth: { username: 'tester', password: 'not-a-secret-here' } });
  relay = await FaultRelay.start(plain.port);
  await Promise.all([plain.push(image.reference, 'app:v1'), secure.push(image.reference, 'app:v1')]);
});

after(async () => {
  await relay?.stop();
  await plain?.stop();
  await secure?.stop();
  scratch[Symbol.dispose]();
});

/** Opens and reads the manifest: where most failures surface. */
async function failure(config: ImageProxyConfig, reference: string): Promise<RequestError> {
  await using proxy = await ImageProxy.spawn(baseConfig(config));
  const error = await (async () => {
    await using img = await proxy.openImage(reference);
    await proxy.fetchManifest(img);
  })().then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof RequestError, `expected a RequestError, got ${String(error)}`);
  return error;
}

function check(what: string, error: RequestError, kind: FailureKind): void {
  const capture = process.env.CAPTURE_SKOPEO_MESSAGES;
  if (capture) appendFileSync(capture, JSON.stringify({ skopeo: release, what, kind, message: error.serverMessage }) + '\n');
  assert.equal(error.kind, kind, `${what}: ${error.serverMessage}`);
  assert.equal(error.retryable, kind === 'transient' || error.code === 'retryable');
}

describe("skopeo's messages, classified", () => {
  it('not-found: a missing tag, layout, directory and archives', async () => {
    check('oci: tag missing', await failure({}, `oci:${image.layout}:nope`), 'not-found');
    check('oci: layout missing', await failure({}, `oci:${scratch.path}/none:v1`), 'not-found');
    check('dir: missing', await failure({}, `dir:${scratch.path}/none`), 'not-found');
    check('oci-archive: missing', await failure({}, `oci-archive:${scratch.path}/none.tar`), 'not-found');
    check('docker-archive: missing', await failure({}, `docker-archive:${scratch.path}/none.tar`), 'not-found');
  });

  it('not-found: a missing tag and repository in a registry', async () => {
    const insecure = { insecureSkipTlsVerification: true };
    check('docker: tag missing', await failure(insecure, plain.reference('app:nope')), 'not-found');
    check('docker: repository missing', await failure(insecure, plain.reference('nothing/here:v1')), 'not-found');
  });

  it('auth: no credentials, and wrong ones', async () => {
    const trusted = { certificateDirectory: secure.certificateDirectory! };
    check('auth: none', await failure(trusted, secure.reference('app:v1')), 'auth');
    const credentials = { registry: secure.host, username: 'tester', password: 'wrong' };
    check('auth: wrong password', await failure({ ...trusted, credentials }, secure.reference('app:v1')), 'auth');
  });

  it('tls: an untrusted certificate, and a registry that speaks plain HTTP', async () => {
    check('tls: unknown authority', await failure({}, secure.reference('app:v1')), 'tls');
    check('tls: plain HTTP', await failure({}, plain.reference('app:v1')), 'tls');
  });

  it('policy: a policy that rejects everything (enforced from protocol 0.2.6)', async (t) => {
    const policy = join(scratch.path, 'reject.json');
    writeFileSync(policy, JSON.stringify({ default: [{ type: 'reject' }] }));
    await using probe = await ImageProxy.spawn(baseConfig());
    if (!probe.supports('PolicyEnforcement')) {
      t.skip(`protocol ${probe.protocolVersion} does not enforce the policy`);
      return;
    }
    check('policy: reject', await failure({ policy }, image.reference), 'policy');
  });

  it('policy: an unsigned image and a tampered signature where signatures are required (0.2.6)', async (t) => {
    await using probe = await ImageProxy.spawn(baseConfig());
    if (!probe.supports('PolicyEnforcement')) {
      t.skip(`protocol ${probe.protocolVersion} does not enforce the policy`);
      return;
    }
    let signer: GpgSigner | undefined;
    try {
      signer = await createGpgSigner(join(scratch.path, 'signing'));
      await plain.push(image.reference, 'tampered:v1', { signer });
      // The registry holds the layer compressed: its manifest digest, not the layout's, is signed.
      const pushed = sha256(await plain.rawManifest('tampered:v1'));
      tamperSignature(signaturePath(signer, 'tampered', pushed), pushed);
      const policy = writeSignedByPolicy(join(scratch.path, 'signed-by.json'), plain.host, signer);
      const config = { insecureSkipTlsVerification: true, policy, registriesDir: signer.registriesDir };
      check('policy: unsigned', await failure(config, plain.reference('app:v1')), 'policy');
      check('policy: tampered signature', await failure(config, plain.reference('tampered:v1')), 'policy');
    } finally {
      if (signer) await stopGpgAgent(signer);
    }
  });

  it('transient: a 503 from the registry', async () => {
    relay.inject(/\/manifests\/v1$/, { kind: 'status', status: 503 }, 10);
    check('transient: 503', await failure({ insecureSkipTlsVerification: true }, `docker://${relay.host}/app:v1`), 'transient');
  });

  it('verification: a corrupted blob, as GetBlob reports it', async () => {
    using dir = tempDir();
    const copy = buildImage(join(dir.path, 'layout'), 'v1', [{ compression: 'none', entries: [{ type: 'file', name: 'b', content: 'b\n' }] }]);
    const layer = copy.layers[0]!;
    const bytes = readFileSync(layer.path);
    bytes[bytes.length - 1]! ^= 1;
    truncateSync(layer.path, 0);
    appendFileSync(layer.path, bytes);
    await using proxy = await ImageProxy.spawn(baseConfig());
    await using img = await proxy.openImage(copy.reference);
    const stream = await proxy.getBlob(img, layer.digest, layer.size, { transfer: 'GetBlob' });
    const error = await watchdog(10_000, 'corrupted', buffer(stream).then(() => undefined, (e: unknown) => e));
    const cause = (error as Error | undefined)?.constructor.name === 'BlobVerificationError' ? (error as Error & { detail: string }).detail : undefined;
    assert.ok(cause !== undefined, `expected a BlobVerificationError, got ${String(error)}`);
    check('verification: corrupted blob', new RequestError('FinishPipe', cause), 'verification');
  });
});
