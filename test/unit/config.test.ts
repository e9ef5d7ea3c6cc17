/** ImageProxyConfig -> skopeo argv: every option, every conflict. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { needsFeatureProbe, planSpawn, type SkopeoFeatures } from '../../src/config.js';
import { ConfigurationError, type ImageProxyConfig } from '../../src/index.js';

const all: SkopeoFeatures = { userAgentPrefix: true, decryptionKey: true };
const plan = (config: ImageProxyConfig, env: NodeJS.ProcessEnv = {}, features: SkopeoFeatures = all) =>
  planSpawn(config, { env, setpriv: null, features });
const argv = (config: ImageProxyConfig) => plan(config).argv;

describe('planSpawn', () => {
  it('runs plain skopeo with no options', () => {
    assert.deepEqual(argv({}), ['skopeo', 'experimental-image-proxy']);
  });

  it('wraps a plain executable in setpriv --pdeathsig when available, but not a wrapper command', () => {
    const env = { env: {}, setpriv: '/usr/bin/setpriv' };
    assert.deepEqual(planSpawn({}, env).argv, ['/usr/bin/setpriv', '--pdeathsig', 'SIGTERM', '--', 'skopeo', 'experimental-image-proxy']);
    assert.deepEqual(planSpawn({ skopeoCommand: ['/opt/skopeo'] }, env).argv, ['/usr/bin/setpriv', '--pdeathsig', 'SIGTERM', '--', '/opt/skopeo', 'experimental-image-proxy']);
    assert.deepEqual(planSpawn({ skopeoCommand: ['systemd-run', '-Pq', '--', 'skopeo'] }, env).argv, [
      'systemd-run',
      '-Pq',
      '--',
      'skopeo',
      'experimental-image-proxy',
    ]);
  });

  it('maps each image option after the subcommand', () => {
    const cases: Array<[ImageProxyConfig, string[]]> = [
      [{ authFile: '/run/auth.json' }, ['--authfile=/run/auth.json']],
      [{ authAnonymous: true }, ['--no-creds']],
      [{ certificateDirectory: '/etc/certs' }, ['--cert-dir=/etc/certs']],
      [{ insecureSkipTlsVerification: true }, ['--tls-verify=false']],
      [{ insecureSkipTlsVerification: false }, []],
      [{ decryptionKeys: ['/k1.pem', '/k2.pem:pass'] }, ['--decryption-key=/k1.pem', '--decryption-key=/k2.pem:pass']],
    ];
    for (const [config, flags] of cases) {
      assert.deepEqual(argv(config), ['skopeo', 'experimental-image-proxy', ...flags], JSON.stringify(config));
    }
  });

  it('maps each global option before the subcommand', () => {
    const cases: Array<[ImageProxyConfig, string[]]> = [
      [{ debug: true }, ['--debug']],
      [{ policy: '/p.json' }, ['--policy=/p.json']],
      [{ insecurePolicy: true }, ['--insecure-policy']],
      [{ registriesDir: '/r.d' }, ['--registries.d=/r.d']],
      [{ registriesConf: '/r.conf' }, ['--registries-conf=/r.conf']],
      [{ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }, ['--override-os=linux', '--override-arch=arm64', '--override-variant=v8']],
      [{ tmpDir: '/var/tmp' }, ['--tmpdir=/var/tmp']],
      [{ userAgentPrefix: 'bootc/1.0' }, ['--user-agent-prefix=bootc/1.0']],
    ];
    for (const [config, flags] of cases) {
      assert.deepEqual(argv(config), ['skopeo', ...flags, 'experimental-image-proxy'], JSON.stringify(config));
    }
  });

  it('sends authData through an inherited fd, never argv', () => {
    const secret = '{"auths":{"r.example":{"auth":"dXNlcjpodW50ZXIy"}}}';
    const result = plan({ authData: secret });
    assert.deepEqual(result.argv, ['skopeo', 'experimental-image-proxy', '--authfile=/proc/self/fd/3']);
    assert.deepEqual(result.secretFiles, [Buffer.from(secret)]);
    assert.ok(!result.argv.join(' ').includes('dXNlcjpodW50ZXIy'));
    assert.deepEqual(plan({ authData: Buffer.from(secret) }).secretFiles, [Buffer.from(secret)]);
  });

  it('sends credentials as a private auth file, never argv', () => {
    const result = plan({ credentials: { registry: 'localhost:5000', username: 'alice', password: 'hunter2' } });
    assert.deepEqual(result.argv, ['skopeo', 'experimental-image-proxy', '--authfile=/proc/self/fd/3']);
    assert.deepEqual(JSON.parse(result.secretFiles[0]!.toString()), {
      auths: { 'localhost:5000': { auth: Buffer.from('alice:hunter2').toString('base64') } },
    });
    assert.ok(!result.argv.join(' ').includes('hunter2'));
    const badRegistry = /^credentials\.registry must be a registry host such as "quay\.io" or "localhost:5000"$/;
    const badUser = /^credentials need a non-empty username without ":" and a password string$/;
    const refused = (message: RegExp) => (e: unknown) => e instanceof ConfigurationError && message.test(e.message) && !e.message.includes('hunter2');
    assert.throws(() => plan({ credentials: { registry: 'bad host', username: 'a', password: 'hunter2' } }), refused(badRegistry));
    assert.throws(() => plan({ credentials: { registry: 'r.io', username: 'a:b', password: 'hunter2' } }), refused(badUser));
    assert.throws(() => plan({ credentials: { registry: 'r.io', username: '', password: 'hunter2' } }), refused(badUser));
  });

  it('turns debug on from CONTAINERS_IMAGE_PROXY_DEBUG', () => {
    assert.equal(plan({}, { CONTAINERS_IMAGE_PROXY_DEBUG: '1' }).debug, true);
    assert.deepEqual(plan({}, { CONTAINERS_IMAGE_PROXY_DEBUG: '1' }).argv, ['skopeo', '--debug', 'experimental-image-proxy']);
    assert.equal(plan({}, { CONTAINERS_IMAGE_PROXY_DEBUG: '' }).debug, false);
    assert.equal(plan({}).debug, false);
  });

  it('refuses conflicting options before anything is spawned, naming them', () => {
    const conflicts: Array<[ImageProxyConfig, RegExp]> = [
      [{ authFile: '/a', authData: '{}' }, /^conflicting authentication options authFile and authData: choose one$/],
      [{ authFile: '/a', authAnonymous: true }, /^conflicting authentication options authFile and authAnonymous: choose one$/],
      [{ authData: '{}', authAnonymous: true }, /^conflicting authentication options authData and authAnonymous: choose one$/],
      [{ authFile: '/a', credentials: { registry: 'r.io', username: 'u', password: 'p' } }, /^conflicting authentication options authFile and credentials: choose one$/],
      [{ policy: '/p', insecurePolicy: true }, /^conflicting options policy and insecurePolicy: choose one$/],
    ];
    for (const [config, message] of conflicts) {
      assert.throws(() => plan(config), (e: unknown) => e instanceof ConfigurationError && message.test(e.message), JSON.stringify(config));
    }
  });

  it('refuses options this skopeo lacks, and malformed values', () => {
    const none = { userAgentPrefix: false, decryptionKey: false };
    assert.throws(() => plan({ userAgentPrefix: 'x' }, {}, none), /userAgentPrefix needs skopeo 1.14/);
    assert.throws(() => plan({ decryptionKeys: ['/k'] }, {}, none), /no --decryption-key/);
    assert.throws(() => plan({ skopeoCommand: [] }), ConfigurationError);
    assert.throws(() => plan({ skopeoCommand: [''] }), ConfigurationError);
    assert.throws(() => plan({ platform: { architecture: 'arm64 --debug' } }), ConfigurationError);
    assert.throws(() => plan({ authFile: '' }), ConfigurationError);
  });

  it('names the option at fault in each refusal', () => {
    const refusals: Array<[ImageProxyConfig, RegExp]> = [
      [{ skopeoCommand: ['skopeo', ''] }, /^skopeoCommand must be a non-empty list of non-empty strings/],
      [{ authFile: '' }, /^authFile must be a non-empty path$/],
      [{ certificateDirectory: '' }, /^certificateDirectory must be a non-empty path$/],
      [{ policy: '' }, /^policy must be a non-empty path$/],
      [{ registriesDir: '' }, /^registriesDir must be a non-empty path$/],
      [{ registriesConf: '' }, /^registriesConf must be a non-empty path$/],
      [{ tmpDir: '' }, /^tmpDir must be a non-empty path$/],
      [{ platform: { os: 'linux os' } }, /^platform\.os must be a plain word such as "arm64", got "linux os"$/],
      [{ platform: { architecture: '-arm' } }, /^platform\.architecture must be a plain word/],
      [{ platform: { variant: 'v8/x' } }, /^platform\.variant must be a plain word/],
      [{ authFile: 'a\0b' }, /^authFile contains a NUL byte$/],
      [{ platform: { os: 'li\0nux' } }, /^platform\.os contains a NUL byte$/],
      [{ decryptionKeys: ['/k', 'x\0'] }, /^decryptionKeys\[1\] contains a NUL byte$/],
    ];
    for (const [config, message] of refusals) {
      assert.throws(() => plan(config), (e: unknown) => e instanceof ConfigurationError && message.test(e.message), JSON.stringify(config));
    }
  });

  it('refuses values of the wrong type from an untyped caller, naming the option, before anything is spawned', () => {
    // JavaScript callers get no compile-time check: a number where a string belongs must not reach argv.
    const loose = (config: Record<string, unknown>) => config as ImageProxyConfig;
    const badUser = /^credentials need a non-empty username without ":" and a password string$/;
    const refusals: Array<[ImageProxyConfig, RegExp]> = [
      [loose({ skopeoCommand: ['skopeo', 5] }), /^skopeoCommand must be a non-empty list of non-empty strings/],
      [loose({ policy: 5 }), /^policy must be a non-empty path$/],
      [loose({ authFile: 0 }), /^authFile must be a non-empty path$/],
      [loose({ platform: { os: 5 } }), /^platform\.os must be a plain word such as "arm64", got 5$/],
      [loose({ credentials: { registry: 5000, username: 'alice', password: 'hunter2' } }), /^credentials\.registry must be a registry host/],
      [loose({ credentials: { registry: 'r.io', username: 42, password: 'hunter2' } }), badUser],
      [loose({ credentials: { registry: 'r.io', username: 'alice' } }), badUser],
      [loose({ credentials: { registry: 'r.io', username: 'alice', password: 1234 } }), badUser],
    ];
    for (const [config, message] of refusals) {
      assert.throws(() => plan(config), (e: unknown) => e instanceof ConfigurationError && message.test(e.message), JSON.stringify(config));
    }
  });

  it('takes authAnonymous: false as no choice, beside another authentication option', () => {
    assert.deepEqual(argv({ authFile: '/a', authAnonymous: false }), ['skopeo', 'experimental-image-proxy', '--authfile=/a']);
  });

  it('keys credentials by a registry with a namespace path, as containers-auth.json allows', () => {
    for (const registry of ['localhost:5000/team', 'quay.io/org/repo', 'r.io/a']) {
      const file = JSON.parse(plan({ credentials: { registry, username: 'alice', password: 'hunter2' } }).secretFiles[0]!.toString());
      assert.deepEqual(Object.keys(file.auths), [registry]);
    }
    assert.throws(() => plan({ credentials: { registry: 'r.io/a b', username: 'alice', password: 'hunter2' } }), ConfigurationError, 'a space in the path');
  });

  it('keeps a value that looks like a flag inside its own option', () => {
    assert.deepEqual(argv({ authFile: '--insecure-policy' }), ['skopeo', 'experimental-image-proxy', '--authfile=--insecure-policy']);
  });
});

describe('needsFeatureProbe', () => {
  it('asks for `skopeo --help` only when userAgentPrefix or a decryption key is set', () => {
    assert.equal(needsFeatureProbe({}), false);
    assert.equal(needsFeatureProbe({ decryptionKeys: [] }), false);
    assert.equal(needsFeatureProbe({ userAgentPrefix: 'ci' }), true);
    assert.equal(needsFeatureProbe({ userAgentPrefix: '' }), true, 'set, though empty: skopeo must have the flag');
    assert.equal(needsFeatureProbe({ decryptionKeys: ['/k'] }), true);
    assert.equal(needsFeatureProbe({ userAgentPrefix: 'ci', decryptionKeys: ['/k'] }), true);
  });
});
