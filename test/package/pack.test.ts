/**
 * The npm package as a user gets it: `npm pack` (which builds the prebuilt
 * addons, prepack), then `npm install TARBALL --ignore-scripts` into a fresh
 * project whose PATH holds node, npm, skopeo and setpriv and nothing else (no
 * compiler, make or python3). The project imports the package and runs the
 * bundled example image end to end (open, manifest, a verified blob) and the
 * CLI's extract, on every Node of the matrix. Then: with npm's default script
 * policy there is nothing to approve; and where no prebuilt addon fits, the
 * error names what to install and the command to run, and that command works.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { extraNodes, SKOPEO, tempDir } from '../support/env.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NODES = [process.execPath, ...extraNodes(ROOT)];
const TOOLCHAIN = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python3', 'python', 'node-gyp'];

const scratch = tempDir('cip-pack-');
const project = join(scratch.path, 'project');
let tarball: string;
let files: string[];

/** Finds an executable on the machine's PATH. */
function which(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const path = join(dir, name);
    if (existsSync(path)) return path;
  }
  throw new Error(`${name} is not on PATH`);
}

/**
 * The whole PATH of the project: node (the given one), npm, skopeo, setpriv
 * (the library's default parent-death wrapper) and dirname (the skopeo
 * matrix's releases are sh wrappers that call it).
 */
function binDir(node: string): string {
  const dir = join(scratch.path, `bin-${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()}`);
  if (existsSync(dir)) return dir;
  mkdirSync(dir);
  symlinkSync(node, join(dir, 'node'));
  symlinkSync(which('npm'), join(dir, 'npm'));
  symlinkSync(which('setpriv'), join(dir, 'setpriv'));
  symlinkSync(which('dirname'), join(dir, 'dirname'));
  const skopeo = SKOPEO.includes('/') ? SKOPEO : which(SKOPEO);
  // A wrapper script finds its release from its own path: call it by that path.
  if (readFileSync(skopeo).subarray(0, 2).toString() === '#!') writeFileSync(join(dir, 'skopeo'), `#!/bin/sh\nexec '${skopeo}' "$@"\n`, { mode: 0o755 });
  else symlinkSync(skopeo, join(dir, 'skopeo'));
  return dir;
}

/** Runs a command in the project with only binDir(node) on PATH. */
function run(node: string, command: string, args: string[], cwd = project): SpawnSyncReturns<string> {
  const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, PATH: binDir(node), LANG: 'C.UTF-8' };
  return spawnSync(join(binDir(node), command), args, { cwd, env, encoding: 'utf8', timeout: 300_000 });
}

function ok(result: SpawnSyncReturns<string>): string {
  assert.equal(result.status, 0, `exit ${result.status}\n${result.stderr}`);
  return result.stdout;
}

/** The consumer: the library's own API on the example image, and which addon file the process mapped. */
const CONSUMER = `
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ImageProxy } from 'containers-image-proxy';
const proxy = await ImageProxy.spawn();
const image = await proxy.openImage('oci:hello-image:latest');
const { digest, manifest } = await proxy.fetchManifest(image);
const layer = manifest.layers[0];
const hash = createHash('sha256');
let bytes = 0;
for await (const chunk of await proxy.getBlob(image, layer.digest, layer.size)) { hash.update(chunk); bytes += chunk.length; }
await proxy.closeImage(image);
await proxy.close();
const addons = [...new Set(readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((p) => p && p.endsWith('.node')))];
console.log(JSON.stringify({ node: process.version, digest, layers: manifest.layers.length, layer: layer.digest, bytes, size: layer.size, sha256: 'sha256:' + hash.digest('hex'), addons }));
`;

before(() => {
  // npm pack runs prepack (scripts/prebuild.sh) and prepare (the TypeScript build).
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', scratch.path], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
  const [packed] = JSON.parse(out.slice(out.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(scratch.path, packed!.filename);
  files = packed!.files.map((f) => f.path);

  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(join(project, 'consumer.mjs'), CONSUMER);
  cpSync(join(ROOT, 'examples', 'hello-image'), join(project, 'hello-image'), { recursive: true });
  ok(run(process.execPath, 'npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball]));
});

after(() => scratch[Symbol.dispose]());

describe('the npm package', () => {
  it('ships both prebuilt addons and their BUILDINFO.json, the addon sources, and no local build', () => {
    for (const file of ['prebuilds/linux-x64/node.napi.glibc.node', 'prebuilds/linux-arm64/node.napi.glibc.node', 'prebuilds/BUILDINFO.json', 'binding.gyp', 'native/seqpacket.c', 'dist/index.js', 'dist/cli/main.js']) {
      assert.ok(files.includes(file), `${file} is in the package`);
    }
    assert.deepEqual(files.filter((f) => f.startsWith('build/') || f.startsWith('test/') || f.startsWith('.cache')), []);
  });

  it('has no install script, and npm does not add node-gyp rebuild for it (gypfile: false)', () => {
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'containers-image-proxy', 'package.json'), 'utf8')) as { scripts: Record<string, string>; gypfile?: boolean };
    for (const script of ['preinstall', 'install', 'postinstall']) assert.equal(manifest.scripts[script], undefined, script);
    assert.equal(manifest.gypfile, false);
    // npm's default policy blocks dependency install scripts and lists them: nothing to list.
    using other = tempDir('cip-pack-default-');
    writeFileSync(join(other.path, 'package.json'), JSON.stringify({ name: 'consumer-default', private: true }));
    const install = run(process.execPath, 'npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], other.path);
    ok(install);
    assert.doesNotMatch(install.stdout + install.stderr, /install-scripts|allowScripts/);
    assert.ok(!existsSync(join(other.path, 'node_modules', 'containers-image-proxy', 'build')), 'nothing was built');
  });

  it('the project PATH has no compiler, make or python', () => {
    const dir = binDir(process.execPath);
    assert.deepEqual(readdirSync(dir).sort(), ['dirname', 'node', 'npm', 'setpriv', 'skopeo']);
    for (const tool of TOOLCHAIN) assert.ok(!existsSync(join(dir, tool)), tool);
    const probe = run(process.execPath, 'node', ['-e', `const {execSync}=require('child_process');for(const t of ${JSON.stringify(TOOLCHAIN)}){try{execSync('command -v '+t,{shell:'/bin/sh',stdio:'ignore'});console.log(t)}catch{}}`]);
    assert.equal(ok(probe).trim(), '');
    assert.ok(!existsSync(join(project, 'node_modules', 'containers-image-proxy', 'build')), 'no local build');
  });

  for (const node of NODES) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    it(`on Node ${version}: import, open, manifest and a verified blob of the example image, with the prebuilt addon`, () => {
      const report = JSON.parse(ok(run(node, 'node', ['consumer.mjs']))) as { node: string; layers: number; layer: string; bytes: number; size: number; sha256: string; addons: string[] };
      assert.equal(report.node, version);
      assert.equal(report.layers, 2);
      assert.equal(report.bytes, report.size);
      assert.equal(report.sha256, report.layer);
      assert.deepEqual(report.addons, [join(project, 'node_modules', 'containers-image-proxy', 'prebuilds', 'linux-x64', 'node.napi.glibc.node')]);
    });

    it(`on Node ${version}: the CLI extracts the example image`, () => {
      const rootfs = join(scratch.path, `rootfs-${version}`);
      ok(run(node, 'node', [join('node_modules', '.bin', 'containers-image-proxy'), 'extract', 'oci:hello-image:latest', rootfs, '--quiet']));
      assert.equal(readFileSync(join(rootfs, 'usr/share/hello/greeting.txt'), 'utf8'), 'Hello from a container layer!\n');
      assert.ok(existsSync(join(rootfs, 'usr/share/hello/packages.txt')));
      assert.ok(!existsSync(join(rootfs, 'usr/share/hello/obsolete.txt')), 'the whiteout of layer 2 applied');
    });
  }

  it('without a fitting prebuilt addon: the error says what to install and what to run, and that builds it', () => {
    const copy = join(scratch.path, 'project-no-prebuild');
    cpSync(project, copy, { recursive: true, verbatimSymlinks: true });
    const pkg = join(copy, 'node_modules', 'containers-image-proxy');
    rmSync(join(pkg, 'prebuilds'), { recursive: true });
    const failed = run(process.execPath, 'node', ['consumer.mjs'], copy);
    assert.notEqual(failed.status, 0);
    assert.match(failed.stderr, /no native addon for linux-x64: the package ships prebuilt ones for linux-x64 and linux-arm64 \(glibc 2\.28 or newer\)/);
    assert.match(failed.stderr, /install python3, make and a C compiler \(Debian\/Ubuntu: apt-get install python3 make gcc;/);
    const command = /then run: (cd .+ && npm run build:addon)/.exec(failed.stderr)?.[1];
    assert.equal(command, `cd ${JSON.stringify(pkg)} && npm run build:addon`);
    // The command, with the machine's PATH (compiler included). node-gyp would
    // download Node's headers; this machine reaches no such site, so it is
    // pointed at the running Node's own.
    const nodedir = dirname(dirname(process.execPath));
    execFileSync('bash', ['-c', command!], { env: { ...process.env, npm_config_nodedir: nodedir }, stdio: ['ignore', 'pipe', 'pipe'] });
    const report = JSON.parse(ok(run(process.execPath, 'node', ['consumer.mjs'], copy))) as { sha256: string; layer: string; addons: string[] };
    assert.equal(report.sha256, report.layer);
    assert.deepEqual(report.addons, [join(pkg, 'build', 'Release', 'seqpacket.node')]);
  });
});
