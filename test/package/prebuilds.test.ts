/**
 * The prebuilt addons the npm package ships (scripts/prebuild.sh): each is
 * the file BUILDINFO.json describes, a shared object for its architecture
 * that exports the N-API init symbol and needs nothing newer than glibc 2.28;
 * the linux-x64 file loads and works on every Node of the matrix (20, 22, 24:
 * one N-API binary for all), the linux-arm64 one on an arm64 Node under
 * qemu-user; and building again from a copy of the sources elsewhere gives
 * the same bytes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { nativeAddonPath } from '../../src/native.js';
import { extraNodes, tempDir } from '../support/env.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PREBUILDS = join(ROOT, 'prebuilds');
const SMOKE = join(ROOT, '.build', 'test', 'support', 'addon-smoke.js');
const ARM64_NODE = join(ROOT, '.cache', 'node', 'arm64-20.20.2', 'bin', 'node');
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';

interface BuildInfo {
  sources_sha256: string;
  files: Record<string, { sha256: string; bytes: number }>;
}
const buildInfo = JSON.parse(readFileSync(join(PREBUILDS, 'BUILDINFO.json'), 'utf8')) as BuildInfo;
const FILES = { x64: 'linux-x64/node.napi.glibc.node', arm64: 'linux-arm64/node.napi.glibc.node' } as const;

/** The extra Nodes of the matrix (scripts/node-versions.sh), then this one. */
const NODES = [process.execPath, ...extraNodes(ROOT)];

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const readelf = (...args: string[]) => execFileSync('readelf', ['-W', ...args], { encoding: 'utf8' });

/** What addon-smoke.js reports for any working addon, whatever the Node. */
function assertWorks(report: Record<string, unknown>, arch: string): void {
  assert.equal(report.arch, arch);
  assert.deepEqual(report.exports, ['BlobReader', 'Channel', 'blobHashAvailable', 'createSecretFd', 'fsetXattr', 'futimes', 'getXattr', 'listXattrs', 'mknod', 'readAll', 'setPipeSize', 'setXattr', 'socketPair', 'utimes']);
  assert.equal(report.secret, 'secret bytes');
  assert.deepEqual(report.fifo, { isFifo: true, mode: '640', mtimeNs: '1500000000123456789' });
  assert.deepEqual(report.packets, [5, 32768, 204800, 'end']);
  assert.equal(report.fdLeak, false);
  assert.deepEqual(report.blobReader, { hashAvailable: true, error: null, bytes: 60_000, sameBytes: true, sameDigest: true });
  assert.equal(report.blobFdLeak, false);
}

describe('prebuilt addons', () => {
  it('BUILDINFO.json lists both, built from the sources in this checkout, with their sha256 and size', () => {
    const sources = createHash('sha256');
    sources.update(readFileSync(join(ROOT, 'binding.gyp')));
    for (const name of ['addon.h', 'blobreader.c', 'fsops.c', 'seqpacket.c']) sources.update(readFileSync(join(ROOT, 'native', name)));
    assert.equal(buildInfo.sources_sha256, sources.digest('hex'), 'prebuilds/ is stale: npm run prebuilds');
    assert.deepEqual(Object.keys(buildInfo.files).sort(), Object.values(FILES).sort());
    for (const [file, { sha256: expected, bytes }] of Object.entries(buildInfo.files)) {
      assert.equal(sha256(join(PREBUILDS, file)), expected, file);
      assert.equal(readFileSync(join(PREBUILDS, file)).length, bytes, file);
    }
  });

  for (const [arch, machine] of [['x64', 'Advanced Micro Devices X86-64'], ['arm64', 'AArch64']] as const) {
    it(`${arch}: an ELF shared object for ${machine}, exporting napi_register_module_v1, needing only libc and glibc <= 2.28`, () => {
      const file = join(PREBUILDS, FILES[arch]);
      const header = readelf('-h', file);
      assert.match(header, new RegExp(`Machine:\\s+${machine}`));
      assert.match(header, /Type:\s+DYN/);
      assert.match(readelf('--dyn-syms', file), /\bFUNC\s+GLOBAL\s+DEFAULT\s+\d+\s+napi_register_module_v1$/m);
      const needed = [...readelf('-d', file).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
      assert.deepEqual(needed, ['libc.so.6']);
      const glibc = [...readelf('-V', file).matchAll(/Name: GLIBC_(\d+)\.(\d+)/g)].map((m) => Number(m[1]) * 1000 + Number(m[2]));
      assert.ok(glibc.length > 0);
      assert.ok(Math.max(...glibc) <= 2028, `needs glibc ${Math.floor(Math.max(...glibc) / 1000)}.${Math.max(...glibc) % 1000}`);
    });
  }

  it('this build loads the linux-x64 prebuilt addon (no local build)', { skip: existsSync(join(ROOT, 'build', 'Release', 'seqpacket.node')) && 'build/Release/seqpacket.node exists and takes precedence' }, () => {
    assert.equal(nativeAddonPath, join(PREBUILDS, FILES.x64));
  });

  for (const node of NODES) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    it(`x64: the same file loads and works on Node ${version}`, () => {
      using scratch = tempDir();
      const report = JSON.parse(execFileSync(node, [SMOKE, join(PREBUILDS, FILES.x64), scratch.path], { encoding: 'utf8' })) as Record<string, unknown>;
      assert.equal(report.node, version);
      assertWorks(report, 'x64');
    });
  }

  it('arm64: loads and works on an arm64 Node 20 under qemu-user', () => {
    assert.ok(existsSync(ARM64_NODE) && existsSync(join(ARM64_SYSROOT, 'lib', 'libstdc++.so.6')), 'no arm64 Node or sysroot: run scripts/setup.sh');
    using scratch = tempDir();
    const out = execFileSync('qemu-aarch64', ['-L', ARM64_SYSROOT, ARM64_NODE, SMOKE, join(PREBUILDS, FILES.arm64), scratch.path], { encoding: 'utf8', timeout: 120_000 });
    const report = JSON.parse(out) as Record<string, unknown>;
    assert.equal(report.node, 'v20.20.2');
    assertWorks(report, 'arm64');
  });

  it('are reproducible: a second build from a copy of the sources in another directory has the same bytes', () => {
    using scratch = tempDir();
    const copy = join(scratch.path, 'another', 'checkout');
    for (const part of ['binding.gyp', 'native', 'scripts/prebuild.sh']) cpSync(join(ROOT, part), join(copy, part), { recursive: true });
    execFileSync('bash', [join(copy, 'scripts', 'prebuild.sh'), join(scratch.path, 'out')], { stdio: ['ignore', 'ignore', 'pipe'] });
    for (const file of Object.values(FILES)) assert.equal(sha256(join(scratch.path, 'out', file)), sha256(join(PREBUILDS, file)), file);
  });
});
