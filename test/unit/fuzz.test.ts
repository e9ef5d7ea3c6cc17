/**
 * Property tests (fast-check) of the pure edges of the library: reply
 * decoding, request encoding, and config -> argv.
 *
 * The seed is fixed (every run, CI included, checks the same cases, so a
 * failure replays as is); explore others with FUZZ_SEED. A failure names its
 * seed (in the test name and in fast-check's message, which also gives the
 * shrunk counterexample and its path); replay it with:
 *   FUZZ_SEED=<seed> node --test .build/test/unit/fuzz.test.js
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { planSpawn, type ImageProxyConfig, type SkopeoFeatures } from '../../src/config.js';
import { ConfigurationError, InvalidArgumentError, ProtocolError } from '../../src/errors.js';
import { decodeReply, encodeRequest, MAX_REQUEST_BYTES, type RequestArg } from '../../src/protocol.js';

const DEFAULT_SEED = 20_251_124;
const seed = process.env.FUZZ_SEED ? Number.parseInt(process.env.FUZZ_SEED, 10) : DEFAULT_SEED;
const NUM_RUNS = Number.parseInt(process.env.FUZZ_RUNS ?? '2000', 10);
const params = { seed, numRuns: NUM_RUNS };

// ---------------------------------------------------------------------------
// (a) decodeReply

/** What a reply must look like to decode; anything else is a ProtocolError. */
function expectedDecode(parsed: unknown): 'protocol-error' | { ok: boolean; pipeId: number } {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'protocol-error';
  const reply = parsed as Record<string, unknown>;
  if (typeof reply.success !== 'boolean') return 'protocol-error';
  const pipeId = reply.pipeid ?? 0;
  if (typeof pipeId !== 'number' || !Number.isInteger(pipeId) || pipeId < 0 || pipeId > 0xffffffff) return 'protocol-error';
  return { ok: reply.success, pipeId };
}

/** Decodes and checks the outcome against the spec above; only ProtocolError may be thrown. */
function checkDecode(packet: Buffer): void {
  let result: ReturnType<typeof decodeReply>;
  try {
    result = decodeReply(packet);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `decodeReply threw ${String(error)}, not a ProtocolError`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(packet.toString('utf8'));
    } catch {
      return; // not JSON: a ProtocolError is right
    }
    assert.equal(expectedDecode(parsed), 'protocol-error', `a well-formed reply was refused: ${error.message}`);
    return;
  }
  const parsed: unknown = JSON.parse(packet.toString('utf8'));
  const expected = expectedDecode(parsed);
  assert.notEqual(expected, 'protocol-error', `a malformed reply was accepted: ${packet.toString('utf8').slice(0, 200)}`);
  if (expected === 'protocol-error') return;
  const reply = parsed as Record<string, unknown>;
  assert.equal(result.ok, expected.ok);
  if (result.ok) {
    assert.equal(result.pipeId, expected.pipeId);
    assert.deepEqual(result.value, reply.value);
  } else {
    assert.equal(typeof result.error, 'string');
    assert.ok(result.error.length > 0, 'a failure always has a message');
    assert.ok(result.code === undefined || (typeof result.code === 'string' && result.code !== ''));
    if (typeof reply.error === 'string' && reply.error !== '') assert.equal(result.error, reply.error);
    if (typeof reply.error_code === 'string' && reply.error_code !== '') assert.equal(result.code, reply.error_code);
  }
}

/** Values that stress the `pipeid` check: every JSON number shape and non-numbers. */
const pipeIdLike = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom(0xffffffff, 0x100000000, 2 ** 53, -0, 1.5, 1e300),
  fc.double(),
  fc.jsonValue(),
);

/** Objects shaped like replies, each key optional and of any JSON type. */
const replyLike = fc.record(
  {
    success: fc.oneof(fc.boolean(), fc.jsonValue()),
    value: fc.jsonValue(),
    pipeid: pipeIdLike,
    error: fc.oneof(fc.string({ unit: 'binary' }), fc.jsonValue()),
    error_code: fc.oneof(fc.constantFrom('EPIPE', 'retryable', 'other', ''), fc.string(), fc.jsonValue()),
  },
  { requiredKeys: [] },
);

describe(`fuzz: decodeReply (seed ${seed})`, () => {
  it('throws nothing but ProtocolError on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => checkDecode(Buffer.from(bytes))),
      params,
    );
  });

  it('throws nothing but ProtocolError on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => checkDecode(Buffer.from(JSON.stringify(value) ?? 'null'))),
      params,
    );
  });

  it('decodes reply-shaped objects exactly as the protocol says, and refuses the rest', () => {
    fc.assert(
      fc.property(replyLike, (reply) => checkDecode(Buffer.from(JSON.stringify(reply)))),
      params,
    );
  });
});

// ---------------------------------------------------------------------------
// (b) planSpawn

/** skopeo flags we ever pass, and whether they take a value. */
const GLOBAL_FLAGS = {
  boolean: new Set(['--debug', '--insecure-policy']),
  valued: new Set(['--policy', '--registries.d', '--registries-conf', '--override-os', '--override-arch', '--override-variant', '--tmpdir', '--user-agent-prefix']),
};
const IMAGE_FLAGS = {
  boolean: new Set(['--no-creds']),
  valued: new Set(['--authfile', '--cert-dir', '--tls-verify', '--decryption-key']),
};

/** Strings a hostile or careless config might hold: flags, `=`, whitespace, NUL, anything. */
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.string({ maxLength: 16 }).map((s) => `-${s}`),
  fc.string({ maxLength: 16 }).map((s) => `--${s}`),
  fc.constantFrom('--debug', '--insecure-policy', '-h', '--', '--authfile=/etc/shadow', 'experimental-image-proxy', ' --debug', '\n--debug', 'a=b', '', 'a\0b', '/tmp/x\0--debug'),
);

/** Absent twice as often as present, so that many configs pass validation. */
function maybe<T>(arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary, weight: 1 });
}
/** Mostly values the option accepts, sometimes anything. */
function mostly<T>(valid: fc.Arbitrary<T>, anything: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: valid, weight: 3 }, { arbitrary: anything, weight: 1 });
}

const word = mostly(fc.constantFrom('linux', 'arm64', 'amd64', 'v8', 'ppc64le', 's390x'), text);
const credentials = fc.record({
  registry: mostly(fc.constantFrom('quay.io', 'localhost:5000', 'r.example/ns'), text),
  username: mostly(fc.constantFrom('alice', 'bob'), text),
  password: text,
});
const authData = fc.oneof(text, fc.uint8Array({ maxLength: 32 }));

/** One auth option (or none), and now and then two that conflict. */
const authArb: fc.Arbitrary<ImageProxyConfig> = fc.oneof(
  fc.constant({}),
  text.map((authFile) => ({ authFile })),
  authData.map((data) => ({ authData: data })),
  credentials.map((c) => ({ credentials: c })),
  fc.constant({ authAnonymous: true }),
  fc.record({ authFile: text, authData, credentials, authAnonymous: fc.boolean() }, { requiredKeys: [] }),
);
const policyArb: fc.Arbitrary<ImageProxyConfig> = fc.oneof(
  fc.constant({}),
  text.map((policy) => ({ policy })),
  fc.constant({ insecurePolicy: true }),
  fc.record({ policy: text, insecurePolicy: fc.boolean() }),
);
const restArb: fc.Arbitrary<ImageProxyConfig> = fc.record({
  certificateDirectory: maybe(text),
  decryptionKeys: maybe(fc.array(text, { maxLength: 2 })),
  insecureSkipTlsVerification: maybe(fc.boolean()),
  registriesConf: maybe(text),
  registriesDir: maybe(text),
  platform: maybe(fc.record({ os: maybe(word), architecture: maybe(word), variant: maybe(word) })),
  tmpDir: maybe(text),
  userAgentPrefix: maybe(text),
  debug: maybe(fc.boolean()),
  skopeoCommand: maybe(fc.array(mostly(fc.constantFrom('skopeo', '/usr/bin/skopeo', 'systemd-run', '-Pq', '--'), text), { minLength: 1, maxLength: 3 })),
});
const configArb: fc.Arbitrary<ImageProxyConfig> = fc.tuple(authArb, policyArb, restArb).map(([auth, policy, rest]) => ({ ...rest, ...auth, ...policy }));

interface Environment {
  env: NodeJS.ProcessEnv;
  setpriv: string | null;
  features?: SkopeoFeatures;
}
const environmentArb: fc.Arbitrary<Environment> = fc.record(
  {
    env: fc.record({ CONTAINERS_IMAGE_PROXY_DEBUG: fc.constantFrom('', '0', '1', 'yes') }, { requiredKeys: [] }),
    // A real path from findSetpriv(), or none.
    setpriv: fc.constantFrom(null, '/usr/bin/setpriv'),
    features: fc.record({ userAgentPrefix: fc.boolean(), decryptionKey: fc.boolean() }),
  },
  { requiredKeys: ['env', 'setpriv'] },
);

/** Calls planSpawn; only ConfigurationError may be thrown (returned as null). */
function planOrNull(config: ImageProxyConfig, environment: Environment): string[] | null {
  try {
    return planSpawn(config, environment).argv;
  } catch (error) {
    assert.ok(error instanceof ConfigurationError, `planSpawn threw ${String(error)}, not a ConfigurationError`);
    return null;
  }
}

/** The (flag, value) pairs the config must turn into, in skopeo's two argv sections. */
function expectedFlags(config: ImageProxyConfig, environment: Environment): { global: string[]; image: string[] } {
  const debugEnv = environment.env.CONTAINERS_IMAGE_PROXY_DEBUG;
  const global: string[] = [];
  if (config.debug === true || (debugEnv !== undefined && debugEnv !== '' && debugEnv !== '0')) global.push('--debug');
  if (config.policy !== undefined) global.push(`--policy=${config.policy}`);
  if (config.insecurePolicy) global.push('--insecure-policy');
  if (config.registriesDir !== undefined) global.push(`--registries.d=${config.registriesDir}`);
  if (config.registriesConf !== undefined) global.push(`--registries-conf=${config.registriesConf}`);
  if (config.platform?.os !== undefined) global.push(`--override-os=${config.platform.os}`);
  if (config.platform?.architecture !== undefined) global.push(`--override-arch=${config.platform.architecture}`);
  if (config.platform?.variant !== undefined) global.push(`--override-variant=${config.platform.variant}`);
  if (config.tmpDir !== undefined) global.push(`--tmpdir=${config.tmpDir}`);
  if (config.userAgentPrefix !== undefined) global.push(`--user-agent-prefix=${config.userAgentPrefix}`);
  const image: string[] = [];
  if (config.authFile !== undefined) image.push(`--authfile=${config.authFile}`);
  if (config.authData !== undefined || config.credentials !== undefined) image.push('--authfile=/proc/self/fd/3');
  if (config.authAnonymous) image.push('--no-creds');
  if (config.certificateDirectory !== undefined) image.push(`--cert-dir=${config.certificateDirectory}`);
  if (config.insecureSkipTlsVerification) image.push('--tls-verify=false');
  for (const key of config.decryptionKeys ?? []) image.push(`--decryption-key=${key}`);
  return { global, image };
}

/** Every element is ONE known flag: a boolean flag exactly, or `--name=value` with a known name. */
function assertOnlyKnownFlags(section: string[], flags: { boolean: Set<string>; valued: Set<string> }, where: string): void {
  for (const element of section) {
    if (flags.boolean.has(element)) continue;
    const eq = element.indexOf('=');
    assert.ok(eq > 0 && flags.valued.has(element.slice(0, eq)), `${where}: ${JSON.stringify(element)} is not a known flag in --name=value form`);
  }
}

/** A config with every secret replaced by `secret`. */
function withSecrets(config: ImageProxyConfig, secret: string): ImageProxyConfig {
  const copy = { ...config };
  if (copy.authData !== undefined) copy.authData = secret;
  if (copy.credentials !== undefined) copy.credentials = { ...copy.credentials, password: secret };
  return copy;
}

/** Every config value that ends up on the command line, for the NUL check. */
function argvBoundValues(config: ImageProxyConfig): string[] {
  return [
    ...(config.skopeoCommand ?? []),
    config.authFile,
    config.certificateDirectory,
    ...(config.decryptionKeys ?? []),
    config.registriesConf,
    config.registriesDir,
    config.policy,
    config.platform?.os,
    config.platform?.architecture,
    config.platform?.variant,
    config.tmpDir,
    config.userAgentPrefix,
  ].filter((value): value is string => typeof value === 'string');
}

describe(`fuzz: planSpawn (seed ${seed})`, () => {
  it('throws only ConfigurationError, or returns an argv whose values can never become flags', (t) => {
    let planned = 0;
    fc.assert(
      fc.property(configArb, environmentArb, (config, environment) => {
        const argv = planOrNull(config, environment);
        if (argv === null) return;
        planned++;
        const prefix = config.skopeoCommand ?? ['skopeo'];
        const wrapper = prefix.length === 1 && environment.setpriv ? [environment.setpriv, '--pdeathsig', 'SIGTERM', '--'] : [];
        const prefixEnd = wrapper.length + prefix.length;
        assert.deepEqual(argv.slice(0, prefixEnd), [...wrapper, ...prefix], 'the command prefix is kept as given');
        // Global flags all start with "--", so the first subcommand word after the prefix is the real one.
        const sub = argv.indexOf('experimental-image-proxy', prefixEnd);
        assert.ok(sub >= prefixEnd, 'the subcommand is present');
        const globals = argv.slice(prefixEnd, sub);
        const images = argv.slice(sub + 1);
        assertOnlyKnownFlags(globals, GLOBAL_FLAGS, 'before the subcommand');
        assertOnlyKnownFlags(images, IMAGE_FLAGS, 'after the subcommand');
        // Each value sits verbatim in its own --name=value element, nowhere else.
        const expected = expectedFlags(config, environment);
        assert.deepEqual(globals, expected.global);
        assert.deepEqual(images, expected.image);
      }),
      params,
    );
    t.diagnostic(`${planned} of ${NUM_RUNS} generated configs were valid`);
    assert.ok(planned > NUM_RUNS / 10, `only ${planned} of ${NUM_RUNS} configs were valid: the generator needs tuning`);
  });

  it('never lets a secret (authData, credentials.password) reach argv', () => {
    fc.assert(
      fc.property(configArb, environmentArb, text, (config, environment, other) => {
        fc.pre(config.authData !== undefined || config.credentials !== undefined);
        const marker = `S3CRET-${seed}-${other.length}-never-on-argv`;
        let plan: ReturnType<typeof planSpawn>;
        try {
          plan = planSpawn(withSecrets(config, marker), environment);
        } catch (error) {
          assert.ok(error instanceof ConfigurationError, String(error));
          return;
        }
        assert.ok(!plan.argv.some((element) => element.includes(marker)), 'the secret is on argv');
        // ...but in the files the child inherits.
        if (config.authData !== undefined) assert.ok(plan.secretFiles.some((file) => file.equals(Buffer.from(marker))), 'authData is a secret file');
        if (config.credentials !== undefined) {
          const { registry, username } = config.credentials;
          const auths = plan.secretFiles.map((file) => (JSON.parse(file.toString()) as { auths?: Record<string, { auth?: string }> }).auths?.[registry]?.auth);
          assert.ok(
            auths.some((auth) => auth !== undefined && Buffer.from(auth, 'base64').toString() === `${username}:${marker}`),
            'the password is in the auth file',
          );
        }
        // Non-interference: a different secret gives the very same argv (or
        // is refused as configuration, e.g. for a NUL byte).
        const otherArgv = planOrNull(withSecrets(config, other), environment);
        if (otherArgv !== null) assert.deepEqual(otherArgv, plan.argv);
      }),
      params,
    );
  });

  it('refuses with ConfigurationError a value no command line can carry (a NUL byte)', () => {
    // execve() cannot pass a NUL inside an argument: Node's spawn() throws, and
    // the caller would get a SpawnError that blames skopeo instead of the option.
    fc.assert(
      fc.property(configArb, environmentArb, (config, environment) => {
        const argv = planOrNull(config, environment);
        if (argv === null) return;
        const bad = argvBoundValues(config).find((value) => value.includes('\0'));
        assert.equal(bad, undefined, `planSpawn accepted ${JSON.stringify(bad)}, which contains a NUL byte; argv: ${JSON.stringify(argv)}`);
        assert.ok(!argv.some((element) => element.includes('\0')));
      }),
      params,
    );
  });
});

// ---------------------------------------------------------------------------
// (c) encodeRequest

/** Strings near and over the 32 KiB limit, with characters JSON or UTF-8 makes longer. */
const longString = fc
  .tuple(fc.constantFrom('a', 'é', '€', '😀', '"', '\\', '\u0001', '\ud800'), fc.integer({ min: 0, max: 34_000 }))
  .map(([unit, count]) => unit.repeat(Math.floor(count / unit.length)));
const loneSurrogates = fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code)), maxLength: 8 });
const requestArg: fc.Arbitrary<RequestArg> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  loneSurrogates,
  longString,
  fc.integer(),
  fc.maxSafeNat(),
  fc.constantFrom(2 ** 53 - 1, 2 ** 53, -1, -0, 0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_VALUE),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);

describe(`fuzz: encodeRequest (seed ${seed})`, () => {
  it('throws only InvalidArgumentError; any packet is <= 32 KiB of JSON that round-trips the args', () => {
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom('OpenImage', 'GetBlob', 'FinishPipe'), fc.string({ unit: 'binary', maxLength: 32 })), fc.array(requestArg, { maxLength: 4 }), (method, args) => {
        const numbersOk = args.every((arg) => typeof arg !== 'number' || (Number.isSafeInteger(arg) && arg >= 0));
        const fits = numbersOk && Buffer.byteLength(JSON.stringify({ method, args })) <= MAX_REQUEST_BYTES;
        let packet: Buffer;
        try {
          packet = encodeRequest(method, args);
        } catch (error) {
          assert.ok(error instanceof InvalidArgumentError, `encodeRequest threw ${String(error)}, not an InvalidArgumentError`);
          assert.equal(fits, false, `a valid request was refused: ${error.message}`);
          return;
        }
        assert.ok(fits, 'an invalid request was encoded');
        assert.ok(packet.length <= MAX_REQUEST_BYTES, `packet of ${packet.length} bytes`);
        // JSON has no -0: the server receives 0, which is the same request.
        const normalized = args.map((arg) => (Object.is(arg, -0) ? 0 : arg));
        assert.deepEqual(JSON.parse(packet.toString('utf8')), { method, args: normalized });
      }),
      params,
    );
  });
});
