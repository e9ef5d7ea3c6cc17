#!/usr/bin/env node
// The CI-sized mutation check: each hand-written mutant in must-fail-mutants.mjs
// (a deliberate break of src/) must make its test fail. Run by scripts/test.sh
// after the suites, on the newest skopeo of the matrix (else $SKOPEO; a
// mutant may ask for the oldest, and for the newest Node of the matrix with
// `node: 'newest'`), in about two minutes:
//
//   node scripts/mutation/must-fail.mjs [--baseline] [--list] [--mutants FILE.mjs] [NAME-SUBSTRING...]
//
// It needs the test build (.build/, `npx tsc -p tsconfig.test.json`) and the
// native addon. It works on a copy in a temporary directory, never in the
// tree: for each mutant the one source file is changed, re-transpiled (the
// same output tsc gives, without type checks), put in place of its build in
// .build/src and dist/, and the mutant's test is run. A mutant whose test
// passes survived: the test suite lost the power to notice that break, and
// this check fails. So does a mutant that no longer applies (its source line
// changed): update its `find` to the new code, or drop it if that behaviour
// is gone. --baseline also runs each test unmutated first (use it when adding
// mutants: a test that fails anyway proves nothing). --mutants checks another
// list (an .mjs file exporting MUTANTS), e.g. survivors of `npm run mutate`
// written down to confirm that a new test kills them.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const baseline = args.includes('--baseline');
const listFile = args.includes('--mutants') ? resolve(args[args.indexOf('--mutants') + 1]) : join(dirname(fileURLToPath(import.meta.url)), 'must-fail-mutants.mjs');
const { MUTANTS } = await import(pathToFileURL(listFile).href);
const filters = args.filter((arg, i) => !arg.startsWith('--') && args[i - 1] !== '--mutants');
const chosen = MUTANTS.filter((mutant) => filters.length === 0 || filters.some((filter) => mutant.name.includes(filter)));

if (args.includes('--list')) {
  for (const mutant of chosen) console.log(`${mutant.name}  [${mutant.file} -> ${mutant.test}${mutant.only ? ` / ${mutant.only}` : ''}]`);
  process.exit(0);
}

function matrix() {
  const list = join(ROOT, '.cache', 'skopeo-matrix', 'list');
  return existsSync(list) ? readFileSync(list, 'utf8').split('\n').filter(Boolean) : [];
}
const releases = matrix();
// The newest of the matrix whatever $SKOPEO says: some mutants break paths only new proxies take.
const newest = releases.at(-1) || process.env.SKOPEO || 'skopeo';
const oldest = releases[0] || newest;
// The newest Node of .cache/node/list (scripts/node-versions.sh), for mutants of code only it runs
// (`node: 'newest'`: node:zlib's zstd, Node 22.15+); else this Node.
const nodeList = join(ROOT, '.cache', 'node', 'list');
const newestNode = existsSync(nodeList) ? resolve(ROOT, readFileSync(nodeList, 'utf8').split('\n').filter(Boolean).at(-1) ?? process.execPath) : process.execPath;

// The addon as src/native.ts finds it: a local build, else prebuilds/ (scripts/setup.sh makes those).
const addons = ['build/Release/seqpacket.node', 'prebuilds'].filter((path) => existsSync(join(ROOT, path)));
for (const [required, present] of [['.build/src/index.js', existsSync(join(ROOT, '.build/src/index.js'))], ['the native addon (prebuilds/ or build/Release/)', addons.length > 0]]) {
  if (!present) {
    console.error(`must-fail: ${required} is missing; run scripts/setup.sh and npx tsc -p tsconfig.test.json first`);
    process.exit(2);
  }
}

// The copy: the compiled tests and library, the CLI as dist/, and what the tests find by walking up.
const copy = mkdtempSync(join(tmpdir(), 'cip-must-fail-'));
const cleanup = () => rmSync(copy, { recursive: true, force: true });
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
cpSync(join(ROOT, '.build'), join(copy, '.build'), { recursive: true });
cpSync(join(ROOT, '.build', 'src'), join(copy, 'dist'), { recursive: true });
for (const addon of addons) cpSync(join(ROOT, addon), join(copy, addon), { recursive: true });
cpSync(join(ROOT, 'test', 'fake-proxy'), join(copy, 'test', 'fake-proxy'), { recursive: true });
cpSync(join(ROOT, 'test', 'fixtures'), join(copy, 'test', 'fixtures'), { recursive: true }); // real data some unit tests read (56 KB)
cpSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));

function transpile(file, text) {
  const result = ts.transpileModule(text, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, sourceMap: false },
  });
  if (result.diagnostics?.length) {
    throw new Error(result.diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('; '));
  }
  return result.outputText;
}

/** Puts `js` in place of the build of `file` (src/x.ts) in .build/src and dist; returns a function restoring both. */
function install(file, js) {
  const relative = file.replace(/^src\//, '').replace(/\.ts$/, '.js');
  const targets = [join(copy, '.build', 'src', relative), join(copy, 'dist', relative)];
  const saved = targets.map((target) => readFileSync(target));
  targets.forEach((target) => writeFileSync(target, js));
  return () => targets.forEach((target, i) => writeFileSync(target, saved[i]));
}

/** Runs one test file (optionally only the tests whose names match) and classifies the outcome. */
function runTest(mutant) {
  const file = join(copy, '.build', 'test', `${mutant.test}.test.js`);
  if (!existsSync(file)) return { outcome: 'error', detail: `no test file .build/test/${mutant.test}.test.js` };
  const skopeo = mutant.release === 'oldest' ? oldest : newest;
  const nodeArgs = ['--test-reporter=tap', ...(mutant.only ? [`--test-name-pattern=${mutant.only}`] : []), file];
  const started = Date.now();
  const result = spawnSync(mutant.node === 'newest' ? newestNode : process.execPath, nodeArgs, {
    cwd: copy,
    env: { ...process.env, SKOPEO: skopeo },
    encoding: 'utf8',
    timeout: mutant.timeoutMs ?? 120_000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const tap = result.stdout ?? '';
  const passed = (tap.match(/^\s*ok \d+ - (?!.*# SKIP)/gm) ?? []).length;
  const failed = (tap.match(/^\s*not ok \d+ - /gm) ?? []).length;
  if (result.error?.code === 'ETIMEDOUT' || result.signal === 'SIGKILL') return { outcome: 'timeout', seconds, detail: 'killed at the time limit' };
  if (result.status === 0 && failed === 0) return { outcome: passed > 0 ? 'pass' : 'error', seconds, detail: passed > 0 ? '' : 'no test ran (check `only`)' };
  if (failed > 0) {
    const first = /^\s*not ok \d+ - (.*)$/m.exec(tap)?.[1] ?? '';
    return { outcome: 'fail', seconds, detail: first };
  }
  return { outcome: 'error', seconds, detail: `exit ${result.status}: ${(result.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
}

let baselineFailures = 0;
let notKilled = 0;
const started = Date.now();
console.log(`must-fail: ${chosen.length} mutants; skopeo ${newest}${chosen.some((m) => m.release === 'oldest') ? ` (and ${oldest})` : ''}`);
if (baseline) {
  const seen = new Set();
  for (const mutant of chosen) {
    const key = `${mutant.test}\0${mutant.only ?? ''}\0${mutant.release ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const result = runTest(mutant);
    console.log(`  baseline ${mutant.test}${mutant.only ? ` / ${mutant.only}` : ''}: ${result.outcome} (${result.seconds} s) ${result.detail}`);
    if (result.outcome !== 'pass') baselineFailures++;
  }
}
for (const mutant of chosen) {
  const source = readFileSync(join(ROOT, mutant.file), 'utf8');
  const occurrences = source.split(mutant.find).length - 1;
  let result;
  if (occurrences !== 1) {
    result = { outcome: 'error', seconds: '0', detail: `\`find\` occurs ${occurrences} times in ${mutant.file} (must be once): update the mutant to the current code` };
  } else {
    let restore;
    try {
      restore = install(mutant.file, transpile(mutant.file, source.replace(mutant.find, mutant.replace)));
      result = runTest(mutant);
    } catch (error) {
      result = { outcome: 'error', seconds: '0', detail: `the mutant does not transpile: ${error.message}` };
    } finally {
      restore?.();
    }
  }
  // Killed: a test failed (or the file hung until the limit). Anything else is a finding.
  const killed = result.outcome === 'fail' || result.outcome === 'timeout';
  if (!killed) notKilled++;
  const verdict = killed ? 'killed' : result.outcome === 'pass' ? 'SURVIVED' : 'ERROR';
  console.log(`${verdict.padEnd(8)} ${String(result.seconds).padStart(5)} s  ${mutant.name}${result.detail ? `  -- ${result.detail}` : ''}`);
}
console.log(`must-fail: ${chosen.length - notKilled} of ${chosen.length} killed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
if (baselineFailures > 0) console.log(`must-fail: ${baselineFailures} test(s) failed unmutated: their kills prove nothing`);
if (notKilled > 0) {
  console.log('must-fail: a survivor means no test notices that break any more: restore the test, or fix the mutant (see scripts/mutation/must-fail-mutants.mjs).');
}
process.exitCode = notKilled + baselineFailures > 0 ? 1 : 0;
