/**
 * The CLI's option parsing: parseCommand keeps each option's type (checked by
 * the compiler: this file does not build if a value loses its type), and
 * splitLeadingOptions takes the global options that come before the command.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommand, splitLeadingOptions, UsageError } from '../../src/cli/options.js';

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
