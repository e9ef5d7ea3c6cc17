/**
 * The library against real registries (Debian's docker-registry on
 * 127.0.0.1, see support/registry.ts), with the skopeo release chosen by
 * $SKOPEO: TLS and plain HTTP, basic auth and every way to pass credentials,
 * keeping secrets out of sight, mirrors and prefix rewrites, manifest lists,
 * signature policy, and the default auth file locations.
 *
 * Set DEBUG_ERRORS=1 to print the error messages the negative cases observe.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ImageProxy, RequestError, SpawnError, type ImageConfig, type ImageManifest, type ImageProxyConfig } from '../src/index.js';
import { baseConfig, tempDir, watchdog } from './support/env.js';
import { buildImage, sha256, type BuiltImage } from './support/oci-layout.js';
import { RELEASE, SKOPEO_RELEASE } from './support/skopeo-release.js';
import {
  buildMultiArchImage,
  createGpgSigner,
  signaturePath,
  startRegistry,
  stopGpgAgent,
  tamperSignature,
  writeSignedByPolicy,
  type GpgSigner,
  type MultiArchImage,
  type TestRegistry,
} from './support/registry.js';

const scratch = tempDir('cip-registry-test-');
/** Plain HTTP, no auth. */
let plain: TestRegistry;
/** HTTPS (test CA) with htpasswd basic auth. */
let secure: TestRegistry;
let fixture: BuiltImage;
/** Registries whose logs are attached to a failing test. */
const beds: TestRegistry[] = [];

const USERNAME = 'tester';
// Random, so finding it anywhere can only mean it leaked.
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

before(async () => {
  fixture = buildImage(join(scratch.path, 'layout'), 'v1', [
    { entries: [{ type: 'dir', name: 'etc/' }, { type: 'file', name: 'etc/hello.txt', content: 'hello from a registry\n' }] },
    // gzip only: skopeo compresses uncompressed layers when pushing to a registry, which would change the digests.
    { entries: [{ type: 'file', name: 'data.bin', content: randomBytes(100_000) }] },
  ]);
  // One at a time, each handed to after() at once, so a failed start leaks nothing.
  plain = await startRegistry();
  beds.push(plain);
  secure = await startRegistry({ tls: true, auth: { username: USERNAME, password: PASSWORD } });
  beds.push(secure);
  await Promise.all([plain.push(fixture.reference, 'app:v1'), secure.push(fixture.reference, 'private/app:v1')]);
});

after(async () => {
  await Promise.all(beds.map((bed) => bed.stop()));
  scratch[Symbol.dispose]();
});

/**
 * `it` with a watchdog, and the registries' log tails printed as diagnostics
 * when it fails.
 */
function test(name: string, body: (t: TestContext) => Promise<void>, ms = 20_000): void {
  it(name, async (t) => {
    try {
      await watchdog(ms, name, body(t));
    } catch (error) {
      for (const bed of beds) if (bed.running || bed.log) t.diagnostic(bed.logTail(1500));
      throw error;
    }
  });
}

/** Opens `reference` and fetches its manifest: where registry errors surface. */
async function openAndFetch(proxy: ImageProxy, reference: string): Promise<{ digest: string; manifest: ImageManifest; config: ImageConfig }> {
  await using image = await proxy.openImage(reference);
  const { digest, manifest } = await proxy.fetchManifest(image);
  return { digest, manifest, config: await proxy.fetchConfig(image) };
}

/** Pulls `reference` and checks manifest digest, layer digests and every blob's bytes against the fixture. */
async function assertPullsFixture(proxy: ImageProxy, reference: string): Promise<void> {
  const expected = fixture;
  await using image = await proxy.openImage(reference);
  const { digest, manifest } = await proxy.fetchManifest(image);
  assert.equal(digest, expected.manifestDigest);
  assert.deepEqual(
    manifest.layers.map((layer) => layer.digest),
    expected.layers.map((layer) => layer.digest),
  );
  assert.equal(manifest.config.digest, expected.configDigest);
  for (const layer of expected.layers) {
    const bytes = await buffer(await proxy.getBlob(image, layer.digest, layer.size));
    assert.deepEqual(bytes, readFileSync(layer.path), `layer ${layer.digest}`);
  }
}

/** Awaits `work`, which must fail with a RequestError; returns it for more assertions. */
async function requestError(what: string, work: Promise<unknown>): Promise<RequestError> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof RequestError, `${what}: expected a RequestError, got ${error === undefined ? 'success' : String(error)}`);
  if (process.env.DEBUG_ERRORS) console.log(`[${what}]${error.code ? ` (code ${error.code})` : ''} ${error.message}`);
  return error;
}

/** A containers-auth.json document for the secure registry. */
function authJson(password: string, registry = secure.host): string {
  return JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`${USERNAME}:${password}`).toString('base64') } } });
}

/** The secure registry's config: its CA trusted, plus whatever `extra` says. */
function secureConfig(extra: ImageProxyConfig = {}): ImageProxyConfig {
  return baseConfig({ certificateDirectory: secure.certificateDirectory!, ...extra });
}

describe('anonymous pull over plain HTTP', () => {
  test('pulls manifest and blobs byte for byte with insecureSkipTlsVerification', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
    await assertPullsFixture(proxy, plain.reference('app:v1'));
  });

  test('without insecureSkipTlsVerification fails: the registry does not speak HTTPS', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig());
    const error = await requestError('plain HTTP, TLS verified', openAndFetch(proxy, plain.reference('app:v1')));
    assert.equal(error.method, 'OpenImage');
    assert.match(error.message, /https:\/\/127\.0\.0\.1:\d+\/v2\/.*HTTP response to HTTPS client/);
  });
});

describe('HTTPS registry with basic auth', () => {
  test('without certificateDirectory fails: the test CA is not trusted', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ credentials: { registry: secure.host, username: USERNAME, password: PASSWORD } }));
    const error = await requestError('unknown CA', openAndFetch(proxy, secure.reference('private/app:v1')));
    assert.match(error.message, /x509: certificate signed by unknown authority/);
  });

  test('certificateDirectory with ca.crt and the right credentials pulls the image', async () => {
    await using proxy = await ImageProxy.spawn(secureConfig({ credentials: { registry: secure.host, username: USERNAME, password: PASSWORD } }));
    await assertPullsFixture(proxy, secure.reference('private/app:v1'));
  });

  test('a wrong password fails as unauthorized, without quoting the password', async () => {
    const wrong = `wrong-${randomBytes(12).toString('hex')}`;
    await using proxy = await ImageProxy.spawn(secureConfig({ credentials: { registry: secure.host, username: USERNAME, password: wrong } }));
    const error = await requestError('wrong password', openAndFetch(proxy, secure.reference('private/app:v1')));
    assert.match(error.message, /unauthorized|authentication required/i);
    assert.ok(!error.message.includes(wrong) && !error.message.includes(PASSWORD), error.message);
  });

  test('the right password via authFile (a file path)', async () => {
    const authFile = join(scratch.path, 'auth-file.json');
    writeFileSync(authFile, authJson(PASSWORD), { mode: 0o600 });
    await using proxy = await ImageProxy.spawn(secureConfig({ authFile }));
    await assertPullsFixture(proxy, secure.reference('private/app:v1'));
  });

  test('the right password via authData (the auth JSON as a string)', async () => {
    await using proxy = await ImageProxy.spawn(secureConfig({ authData: authJson(PASSWORD) }));
    await assertPullsFixture(proxy, secure.reference('private/app:v1'));
  });

  test('the right password via credentials', async () => {
    await using proxy = await ImageProxy.spawn(secureConfig({ credentials: { registry: secure.host, username: USERNAME, password: PASSWORD } }));
    await assertPullsFixture(proxy, secure.reference('private/app:v1'));
  });

  test('authAnonymous sends no credentials and is refused', async () => {
    await using proxy = await ImageProxy.spawn(secureConfig({ authAnonymous: true }));
    const error = await requestError('authAnonymous', openAndFetch(proxy, secure.reference('private/app:v1')));
    assert.match(error.message, /unauthorized|authentication required/i);
  });
});

describe('secrets never show in argv, stderr or errors', () => {
  /** Everything a secret must not appear in, for a running proxy and the error it threw. */
  function assertHidden(secret: string, proxy: ImageProxy, error?: RequestError): void {
    const forms = [secret, Buffer.from(`${USERNAME}:${secret}`).toString('base64')];
    const cmdline = readFileSync(`/proc/${proxy.pid!}/cmdline`, 'utf8').split('\0').join(' ');
    // Proves we read skopeo's own command line, not a wrapper's that exec'd away.
    assert.match(cmdline, /experimental-image-proxy .*--authfile=\/proc\/self\/fd\/3/);
    const places: Record<string, string> = {
      cmdline,
      environ: readFileSync(`/proc/${proxy.pid!}/environ`, 'utf8'),
      stderr: proxy.stderr,
      'error message': error ? `${error.message}\n${error.serverMessage}\n${error.stack ?? ''}` : '',
    };
    for (const [place, text] of Object.entries(places)) {
      for (const form of forms) assert.ok(!text.includes(form), `the secret appears in ${place}`);
    }
  }

  for (const via of ['authData', 'credentials'] as const) {
    const config = (password: string): ImageProxyConfig =>
      via === 'authData' ? { authData: authJson(password) } : { credentials: { registry: secure.host, username: USERNAME, password } };

    test(`${via}: a wrong random password stays out of sight, and so does the right one`, async () => {
      const wrong = `leak-${randomBytes(16).toString('hex')}`;
      {
        await using proxy = await ImageProxy.spawn(secureConfig(config(wrong)));
        const error = await requestError(`${via} wrong password`, openAndFetch(proxy, secure.reference('private/app:v1')));
        assertHidden(wrong, proxy, error);
      }
      await using proxy = await ImageProxy.spawn(secureConfig(config(PASSWORD)));
      await assertPullsFixture(proxy, secure.reference('private/app:v1'));
      assertHidden(PASSWORD, proxy);
      // The auth file is an anonymous memory file, not something on disk.
      assert.match(readlinkSync(`/proc/${proxy.pid!}/fd/3`), /^\/memfd:/);
    });
  }

  test('the default command (setpriv … skopeo) execs skopeo in the same pid', async (t) => {
    // Only meaningful without skopeoCommand; this uses the skopeo on PATH, whatever $SKOPEO says.
    let proxy: ImageProxy;
    try {
      proxy = await ImageProxy.spawn({ certificateDirectory: secure.certificateDirectory!, authData: authJson(PASSWORD) });
    } catch (error) {
      if (!(error instanceof SpawnError && /not found/.test(error.message))) throw error;
      t.skip(`no skopeo on PATH: ${error.message}`);
      return;
    }
    await using _ = proxy;
    assert.equal(basename(readlinkSync(`/proc/${proxy.pid!}/exe`)), 'skopeo', 'setpriv exec()s skopeo, so the pid is skopeo');
    assertHidden(PASSWORD, proxy);
    await assertPullsFixture(proxy, secure.reference('private/app:v1'));
  });
});

describe('mirrors and prefix rewrites (registriesConf)', () => {
  /** Holds the fixture under app:v1 and real/team/app:v1; nothing else does. */
  let mirror: TestRegistry;

  before(async () => {
    mirror = await startRegistry();
    beds.push(mirror);
    await Promise.all([mirror.push(fixture.reference, 'app:v1'), mirror.push(fixture.reference, 'real/team/app:v1')]);
  });

  function writeConf(name: string, toml: string): string {
    const path = join(scratch.path, name);
    writeFileSync(path, toml);
    return path;
  }

  test('pulls registry.example.invalid/app through its mirror', async () => {
    const registriesConf = writeConf(
      'mirror.conf',
      [
        'unqualified-search-registries = []',
        '[[registry]]',
        'prefix = "registry.example.invalid/app"',
        'location = "registry.example.invalid/app"',
        '[[registry.mirror]]',
        `location = "${mirror.host}/app"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    {
      await using proxy = await ImageProxy.spawn(baseConfig({ registriesConf }));
      await assertPullsFixture(proxy, 'docker://registry.example.invalid/app:v1');
    }
    // Control: without the conf, skopeo goes to the (nonexistent) primary itself.
    await using proxy = await ImageProxy.spawn(baseConfig());
    const error = await requestError('no mirror', openAndFetch(proxy, 'docker://registry.example.invalid/app:v1'));
    assert.match(error.message, /https:\/\/registry\.example\.invalid\/v2\//);
  });

  test('rewrites the prefix example.invalid/team to a location', async () => {
    const registriesConf = writeConf(
      'prefix.conf',
      [
        'unqualified-search-registries = []',
        '[[registry]]',
        'prefix = "example.invalid/team"',
        `location = "${mirror.host}/real/team"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    await using proxy = await ImageProxy.spawn(baseConfig({ registriesConf }));
    await assertPullsFixture(proxy, 'docker://example.invalid/team/app:v1');
  });
});

describe('manifest lists (OCI index with amd64 and arm64)', () => {
  let multi: MultiArchImage;

  before(async () => {
    multi = buildMultiArchImage(join(scratch.path, 'multi-layout'), 'multi');
    await plain.push(multi.reference, 'multi:v1', { all: true });
  });

  const reference = (): string => plain.reference('multi:v1');

  test('the registry serves the index byte for byte', async () => {
    assert.equal(sha256(await plain.rawManifest('multi:v1')), multi.indexDigest);
  });

  // The proxy resolves the list when it opens the image; GetManifest then
  // describes the chosen instance: its bytes AND its digest, not the index's.
  test('platform arm64 gets the arm64 image, with the arm64 manifest digest', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true, platform: { architecture: 'arm64' } }));
    await using image = await proxy.openImage(reference());
    const { digest, raw } = await proxy.fetchManifestRaw(image);
    assert.equal(sha256(raw), multi.arm64.manifestDigest);
    assert.equal(digest, multi.arm64.manifestDigest);
    assert.notEqual(digest, multi.indexDigest);
    const config = await proxy.fetchConfig(image);
    assert.equal(config.architecture, 'arm64');
    const layer = multi.arm64.layers[0]!;
    assert.deepEqual(await buffer(await proxy.getBlob(image, layer.digest, layer.size)), readFileSync(layer.path));
  });

  test('the default platform of this amd64 machine gets the amd64 image', async (t) => {
    if (process.arch !== 'x64') {
      t.skip(`this machine is ${process.arch}, not amd64`);
      return;
    }
    await using proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true }));
    const { digest, manifest, config } = await openAndFetch(proxy, reference());
    assert.equal(digest, multi.amd64.manifestDigest);
    assert.equal(manifest.config.digest, multi.amd64.configDigest);
    assert.equal(config.architecture, 'amd64');
  });

  test('platform s390x matches no image and fails', async () => {
    await using proxy = await ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true, platform: { architecture: 's390x' } }));
    const error = await requestError('s390x', openAndFetch(proxy, reference()));
    // skopeo 1.9, 1.18 and 1.22 all accept the open and fail the first GetManifest.
    assert.equal(error.method, 'GetManifest');
    assert.match(error.message, /no image found in image index for architecture "?s390x"?, variant "", OS "?linux/);
  });
});

describe('signature policy (policy + registriesDir)', () => {
  let signer: GpgSigner;
  let policy: string;

  before(async () => {
    signer = await createGpgSigner(join(scratch.path, 'signing'));
    await Promise.all([
      plain.push(fixture.reference, 'signed:v1', { signer }),
      plain.push(fixture.reference, 'tampered:v1', { signer }),
      plain.push(fixture.reference, 'unsigned:v1'),
    ]);
    tamperSignature(signaturePath(signer, 'tampered', fixture.manifestDigest), fixture.manifestDigest);
    policy = writeSignedByPolicy(join(scratch.path, 'policy.json'), plain.host, signer);
  });

  after(async () => {
    if (signer) await stopGpgAgent(signer);
  });

  const spawnWithPolicy = (): Promise<ImageProxy> =>
    ImageProxy.spawn(baseConfig({ insecureSkipTlsVerification: true, policy, registriesDir: signer.registriesDir }));

  test('a correctly signed image opens and pulls', async () => {
    assert.ok(readFileSync(signaturePath(signer, 'signed', fixture.manifestDigest)).length > 0, 'the signature is in the lookaside dir');
    await using proxy = await spawnWithPolicy();
    await assertPullsFixture(proxy, plain.reference('signed:v1'));
  });

  test('protocol >= 0.2.6 rejects an unsigned image, a tampered signature, and what the default rejects', async (t) => {
    await using proxy = await spawnWithPolicy();
    if (!RELEASE.policyEnforcement) {
      t.skip(`skopeo ${SKOPEO_RELEASE} (protocol ${RELEASE.protocol}) does not enforce policy (see the next test)`);
      return;
    }
    const unsigned = await requestError('unsigned', openAndFetch(proxy, plain.reference('unsigned:v1')));
    assert.match(unsigned.message, /signature was required, but no signature exists/i);
    const tampered = await requestError('tampered', openAndFetch(proxy, plain.reference('tampered:v1')));
    // Found, parsed, and failing the cryptographic check (GPG_ERR_BAD_SIGNATURE).
    assert.match(tampered.message, /Invalid GPG signature/);
    const elsewhere = await requestError('default reject', openAndFetch(proxy, fixture.reference));
    assert.match(elsewhere.message, /rejected/i);
    // Rejections do not poison the proxy.
    await assertPullsFixture(proxy, plain.reference('signed:v1'));
  });

  test('protocol 0.2.3 (skopeo 1.9) does NOT enforce the policy: unsigned and tampered images open', async (t) => {
    await using proxy = await spawnWithPolicy();
    if (RELEASE.policyEnforcement) {
      t.skip(`skopeo ${SKOPEO_RELEASE} (protocol ${RELEASE.protocol}) enforces policy (see the previous test)`);
      return;
    }
    await assertPullsFixture(proxy, plain.reference('unsigned:v1'));
    await assertPullsFixture(proxy, plain.reference('tampered:v1'));
  });
});

describe('auth file discovery (no auth option)', () => {
  /** The variables containers/image consults to find auth files. */
  const AUTH_ENV = ['HOME', 'XDG_RUNTIME_DIR', 'XDG_CONFIG_HOME', 'REGISTRY_AUTH_FILE', 'DOCKER_CONFIG'] as const;

  /**
   * Runs `body` with `HOME` and `XDG_RUNTIME_DIR` pointing at fresh temp dirs
   * (the other auth variables unset), restoring process.env afterwards: the
   * library spawns skopeo with process.env as it is at spawn time.
   */
  async function withAuthEnv(body: (dirs: { home: string; runtime: string }) => Promise<void>): Promise<void> {
    const saved = Object.fromEntries(AUTH_ENV.map((name) => [name, process.env[name]]));
    using home = tempDir('cip-home-');
    using runtime = tempDir('cip-xdg-runtime-');
    try {
      for (const name of AUTH_ENV) delete process.env[name];
      process.env.HOME = home.path;
      process.env.XDG_RUNTIME_DIR = runtime.path;
      await body({ home: home.path, runtime: runtime.path });
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  }

  test('with no auth file anywhere the registry refuses (control)', () =>
    withAuthEnv(async () => {
      await using proxy = await ImageProxy.spawn(secureConfig());
      const error = await requestError('no auth file', openAndFetch(proxy, secure.reference('private/app:v1')));
      assert.match(error.message, /unauthorized|authentication required/i);
    }));

  test('uses $XDG_RUNTIME_DIR/containers/auth.json', () =>
    withAuthEnv(async ({ runtime }) => {
      mkdirSync(join(runtime, 'containers'));
      writeFileSync(join(runtime, 'containers', 'auth.json'), authJson(PASSWORD), { mode: 0o600 });
      await using proxy = await ImageProxy.spawn(secureConfig());
      await assertPullsFixture(proxy, secure.reference('private/app:v1'));
    }));

  test('uses $HOME/.docker/config.json', () =>
    withAuthEnv(async ({ home }) => {
      mkdirSync(join(home, '.docker'));
      writeFileSync(join(home, '.docker', 'config.json'), authJson(PASSWORD), { mode: 0o600 });
      await using proxy = await ImageProxy.spawn(secureConfig());
      await assertPullsFixture(proxy, secure.reference('private/app:v1'));
    }));
});
