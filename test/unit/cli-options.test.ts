/**
 * The CLI's option parsing: parseCommand keeps each option's type (checked by
 * the compiler: this file does not build if a value loses its type), and
 * splitLeadingOptions takes the global options that come before the command.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GLOBAL_HELP, GLOBAL_OPTIONS, integer, parseCommand, proxyConfig, retryPolicy, splitLeadingOptions, UsageError } from '../../src/cli/options.js';

describe('parseCommand', () => {
  it('gives each option its type: string, string[] with multiple, boolean; globals too', () => {
    const { values, positionals } = parseCommand(['IMAGE', '--size', '12', '--layer', '1', '--layer', '3', '--all', '-q', '--authfile=a.json'], {
      size: { type: 'string' },
      layer: { type: 'string', multiple: true },
      all: { type: 'boolean' },
    });
    const size: string | undefined = values.size;
    const layers: string[] | undefined = values.layer;
    const all: boolean | undefined = values.all;
    const quiet: boolean | undefined = values.quiet;
    const authfile: string | undefined = values.authfile;
    assert.deepEqual({ size, layers, all, quiet, authfile, positionals }, { size: '12', layers: ['1', '3'], all: true, quiet: true, authfile: 'a.json', positionals: ['IMAGE'] });
    // @ts-expect-error a string option is not a number
    const wrong: number | undefined = values.size;
    // @ts-expect-error an option the command did not declare
    assert.equal(values.undeclared, undefined);
    assert.equal(wrong, '12');
  });

  it('turns parseArgs errors into usage errors', () => {
    assert.throws(() => parseCommand(['--nope'], {}), UsageError);
    assert.throws(() => parseCommand(['--size'], { size: { type: 'string' } }), UsageError);
  });
});

describe('splitLeadingOptions', () => {
  it('takes global options before the command, with their values, inline or next', () => {
    assert.deepEqual(splitLeadingOptions(['--tls-verify=false', '--authfile', 'a.json', '-q', 'inspect', 'IMAGE', '--raw']), {
      leading: ['--tls-verify=false', '--authfile', 'a.json', '-q'],
      command: 'inspect',
      rest: ['IMAGE', '--raw'],
      help: false,
      version: false,
    });
    assert.deepEqual(splitLeadingOptions(['inspect', '--tls-verify=false']), { leading: [], command: 'inspect', rest: ['--tls-verify=false'], help: false, version: false });
  });

  it('notes --help, -h and --version before the command', () => {
    assert.deepEqual(splitLeadingOptions(['--debug', '--help']), { leading: ['--debug'], command: undefined, rest: [], help: true, version: false });
    assert.equal(splitLeadingOptions(['-qh', 'pull']).help, true);
    assert.equal(splitLeadingOptions(['--version']).version, true);
  });

  it('refuses what is not a global option, and a value that is missing', () => {
    assert.throws(() => splitLeadingOptions(['--raw', 'inspect']), /unknown global option --raw/);
    assert.throws(() => splitLeadingOptions(['-x', 'inspect']), /unknown global option -x/);
    assert.throws(() => splitLeadingOptions(['--retry']), /--retry needs a value/);
  });
});

describe('splitLeadingOptions stops', () => {
  it('at --, at - (standard input) and at the first argument that is not an option', () => {
    assert.deepEqual(splitLeadingOptions(['-q', '--', '--debug']), { leading: ['-q'], command: undefined, rest: ['--debug'], help: false, version: false });
    assert.deepEqual(splitLeadingOptions(['-q', '-', 'x']), { leading: ['-q'], command: '-', rest: ['x'], help: false, version: false });
    assert.deepEqual(splitLeadingOptions(['--', 'inspect']), { leading: [], command: undefined, rest: ['inspect'], help: false, version: false });
  });

  it('leaves -h out of the leading options, like --help, and keeps the others of a group', () => {
    assert.deepEqual(splitLeadingOptions(['-h', '--debug', 'pull']), { leading: ['--debug'], command: 'pull', rest: [], help: true, version: false });
    assert.deepEqual(splitLeadingOptions(['-qh', 'pull']).leading, ['-qh']);
  });
});

describe('proxyConfig', () => {
  const withoutSkopeoEnv = <T>(run: () => T): T => {
    const saved = process.env.SKOPEO;
    delete process.env.SKOPEO;
    try {
      return run();
    } finally {
      if (saved !== undefined) process.env.SKOPEO = saved;
    }
  };

  it('maps each global option onto ImageProxyConfig', () => {
    const config = withoutSkopeoEnv(() =>
      proxyConfig({
        authfile: 'a.json',
        'no-creds': true,
        'cert-dir': '/certs',
        'tls-verify': 'false',
        'registries-conf': 'r.conf',
        policy: 'p.json',
        'override-arch': 'arm64',
        'override-variant': 'v8',
        skopeo: '/opt/skopeo',
        tmpdir: '/scratch',
        debug: true,
        'stall-timeout': '5',
      }),
    );
    assert.deepEqual(config, {
      authFile: 'a.json',
      authAnonymous: true,
      certificateDirectory: '/certs',
      insecureSkipTlsVerification: true,
      registriesConf: 'r.conf',
      policy: 'p.json',
      platform: { architecture: 'arm64', variant: 'v8' },
      skopeoCommand: ['/opt/skopeo'],
      tmpDir: '/scratch',
      debug: true,
      stallTimeout: 5000,
    });
  });

  it('sets nothing for options not given, or given as false', () => {
    assert.deepEqual(withoutSkopeoEnv(() => proxyConfig({})), {});
    assert.deepEqual(withoutSkopeoEnv(() => proxyConfig({ 'no-creds': false, debug: false })), {});
  });

  it('--tls-verify takes true or false only', () => {
    assert.deepEqual(withoutSkopeoEnv(() => proxyConfig({ 'tls-verify': 'true' })), { insecureSkipTlsVerification: false });
    for (const value of ['', 'yes', 'False', '0']) {
      assert.throws(() => proxyConfig({ 'tls-verify': value }), (error: Error) => error instanceof UsageError && error.message === '--tls-verify takes true or false', value);
    }
  });

  it('a platform of one field; --skopeo before $SKOPEO, $SKOPEO alone', () => {
    assert.deepEqual(withoutSkopeoEnv(() => proxyConfig({ 'override-os': 'linux' })), { platform: { os: 'linux' } });
    const saved = process.env.SKOPEO;
    process.env.SKOPEO = '/env/skopeo';
    try {
      assert.deepEqual(proxyConfig({}), { skopeoCommand: ['/env/skopeo'] });
      assert.deepEqual(proxyConfig({ skopeo: '/opt/skopeo' }), { skopeoCommand: ['/opt/skopeo'] });
    } finally {
      if (saved === undefined) delete process.env.SKOPEO;
      else process.env.SKOPEO = saved;
    }
  });

  it('--stall-timeout is whole seconds, a non-negative integer, named in the message', () => {
    assert.equal(withoutSkopeoEnv(() => proxyConfig({ 'stall-timeout': '0' })).stallTimeout, 0);
    assert.throws(() => proxyConfig({ 'stall-timeout': '1.5' }), (error: Error) => error instanceof UsageError && error.message === '--stall-timeout takes a non-negative integer, got "1.5"');
  });
});

describe('retryPolicy and integer', () => {
  it('--retry N is N retries after the first attempt', () => {
    assert.deepEqual(retryPolicy({}), { attempts: 1, backoff: 1000 });
    assert.deepEqual(retryPolicy({ retry: '3' }), { attempts: 4, backoff: 1000 });
    assert.throws(() => retryPolicy({ retry: '-1' }), (error: Error) => error instanceof UsageError && error.message === '--retry takes a non-negative integer, got "-1"');
  });

  it('integer takes digits only, of any length', () => {
    assert.equal(integer('--n', undefined, 7), 7);
    assert.equal(integer('--n', '0', 7), 0);
    assert.equal(integer('--n', '120', 7), 120);
    for (const value of ['', '-1', '1.5', 'x1', '1x', ' 1', '1 ', '1e3', '0x10', 'ten']) {
      assert.throws(() => integer('--n', value, 7), (error: Error) => error instanceof UsageError && error.message === `--n takes a non-negative integer, got ${JSON.stringify(value)}`, value);
    }
  });
});

describe('UsageError and the help', () => {
  it('is a UsageError by name (the CLI exits 2 for it)', () => {
    assert.equal(new UsageError('x').name, 'UsageError');
  });

  it('the global help names every global option', () => {
    for (const [name, option] of Object.entries(GLOBAL_OPTIONS)) {
      assert.match(GLOBAL_HELP, new RegExp(`--${name}\\b`), name);
      if ('short' in option) assert.match(GLOBAL_HELP, new RegExp(`-${option.short}, --${name}`), name);
    }
  });
});
