/** The containers-image-proxy command, end to end through the built bin against real skopeo. */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { SKOPEO, skopeo, tempDir } from './support/env.js';
import { buildImage, noise, type BuiltImage } from './support/oci-layout.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');
const scratch = tempDir();
let image: BuiltImage;
let threeLayers: BuiltImage;

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function cli(...args: string[]): Run {
  const result = spawnSync(process.execPath, [BIN, ...args, '--skopeo', SKOPEO], { timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
}

function ok(run: Run): Run {
  assert.equal(run.status, 0, `exit ${run.status}: ${run.stderr}`);
  return run;
}

/** Everything under a directory with its kind and content, for file-by-file comparison. */
function snapshot(dir: string, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const rel = prefix + entry.name;
    if (entry.isSymbolicLink()) out[rel] = `symlink ${readlinkSync(path)}`;
    else if (entry.isDirectory()) {
      out[rel + '/'] = `dir ${(statSync(path).mode & 0o7777).toString(8)}`;
      Object.assign(out, snapshot(path, rel + '/'));
    } else out[rel] = `file ${(statSync(path).mode & 0o7777).toString(8)} ${readFileSync(path, 'utf8')}`;
  }
  return out;
}

before(() => {
  const layout = join(scratch.path, 'layout');
  image = buildImage(layout, 'v1', [
    { entries: [{ type: 'file', name: 'hello.txt', content: 'hello\n' }] },
    { compression: 'none', entries: [{ type: 'file', name: 'data.bin', content: noise(200_000, 3) }] },
  ]);
  threeLayers = buildImage(layout, 'three', [
    {
      entries: [
        { type: 'dir', name: 'etc/', mode: 0o755 },
        { type: 'file', name: 'etc/config', content: 'v1\n', mode: 0o600 },
        { type: 'file', name: 'etc/obsolete', content: 'gone\n' },
        { type: 'dir', name: 'opt/' },
        { type: 'file', name: 'opt/old-a', content: 'a\n' },
        { type: 'file', name: 'opt/old-b', content: 'b\n' },
        { type: 'file', name: 'bin/tool', content: '#!/bin/sh\necho tool\n', mode: 0o755 },
      ],
    },
    {
      compression: 'none',
      entries: [
        { type: 'file', name: 'etc/.wh.obsolete', content: '' },
        { type: 'file', name: 'opt/.wh..wh..opq', content: '' },
        { type: 'file', name: 'opt/fresh', content: 'fresh\n' },
        { type: 'symlink', name: 'bin/alias', target: 'tool' },
      ],
    },
    {
      entries: [
        { type: 'file', name: 'etc/config', content: 'v3\n', mode: 0o644 },
        { type: 'hardlink', name: 'bin/tool-link', target: 'bin/tool' },
      ],
    },
  ]);
});

after(() => scratch[Symbol.dispose]());

describe('cli: basics', () => {
  it('prints its version and help for every command', () => {
    const version = JSON.parse(readFileSync(join(dirname(BIN), '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.equal(ok(cli('--version')).stdout.toString().trim(), `containers-image-proxy ${version.version}`);
    assert.match(ok(cli('--help')).stdout.toString(), /Commands:[\s\S]*extract IMAGE DIR/);
    for (const command of ['inspect', 'layers', 'blob', 'pull', 'extract']) {
      const help = ok(cli(command, '--help')).stdout.toString();
      assert.match(help, new RegExp(`Usage: containers-image-proxy ${command}`));
      assert.match(help, /Examples?:/);
      assert.match(help, /--tls-verify=false/, 'global options are listed');
    }
  });

  it('exits 2 on usage errors, with a one-line reason', () => {
    for (const args of [['frobnicate'], ['inspect'], ['inspect', 'a', 'b'], ['pull', 'oci:x'], ['pull', 'oci:x', 'd', '--jobs', 'many'], ['inspect', 'oci:x', '--tls-verify=maybe'], ['inspect', 'oci:x', '--bogus']]) {
      const run = cli(...args);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr.split('\n')[0]!, /^containers-image-proxy: /);
      assert.equal(run.stdout.length, 0);
    }
  });

  it('exits 1 with one actionable line when the image does not exist', () => {
    const run = cli('inspect', `oci:${image.layout}:missing`);
    assert.equal(run.status, 1);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^containers-image-proxy: error: OpenImage failed: .*missing/);
  });
});

describe('cli: global options before the command', () => {
  /** The command line exactly as given (cli() appends --skopeo). */
  const exactly = (...args: string[]): Run => {
    const result = spawnSync(process.execPath, [BIN, ...args], { timeout: 60_000 });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr.toString() };
  };

  it('are accepted before the command, as skopeo and podman take them', () => {
    const expected = ok(cli('inspect', image.reference)).stdout.toString();
    assert.equal(ok(exactly('--skopeo', SKOPEO, '--tls-verify=false', 'inspect', image.reference)).stdout.toString(), expected);
    assert.equal(ok(exactly(`--skopeo=${SKOPEO}`, '--tls-verify', 'false', '--no-creds', 'inspect', image.reference)).stdout.toString(), expected);
    assert.equal(ok(exactly('-q', '--skopeo', SKOPEO, 'layers', image.reference)).stdout.toString(), ok(cli('layers', image.reference)).stdout.toString());
    using dir = tempDir();
    ok(exactly('--skopeo', SKOPEO, '--quiet', '--retry', '1', 'extract', image.reference, join(dir.path, 'rootfs')));
    assert.equal(readFileSync(join(dir.path, 'rootfs', 'hello.txt'), 'utf8'), 'hello\n');
  });

  it('are checked as they are after it, and an unknown one before the command is a usage error', () => {
    for (const [args, message] of [
      [['--tls-verify=maybe', 'inspect', 'oci:x'], /--tls-verify takes true or false/],
      [['--bogus', 'inspect', 'oci:x'], /unknown global option --bogus/],
      [['--config', 'inspect', 'oci:x'], /unknown global option --config \(a command's own options go after it\)/],
      [['--authfile'], /--authfile needs a value/],
      [['--no-creds'], /no command/],
      [['--no-creds', 'frobnicate'], /unknown command "frobnicate"/],
    ] as Array<[string[], RegExp]>) {
      const run = exactly(...args);
      assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr.split('\n')[0]!, message);
    }
  });

  it('--help says so; with global options before it, --help still shows the help asked for', () => {
    const usage = ok(exactly('--help')).stdout.toString();
    assert.match(usage, /Usage: containers-image-proxy \[GLOBAL OPTIONS\] COMMAND \[OPTIONS\]/);
    assert.match(usage, /Global options go before or after the command:[\s\S]*containers-image-proxy --tls-verify=false inspect docker:\/\//);
    assert.equal(ok(exactly('--debug', '--help')).stdout.toString(), usage);
    assert.match(ok(exactly('--quiet', 'inspect', '--help')).stdout.toString(), /Usage: containers-image-proxy inspect/);
    assert.match(ok(exactly('--no-creds', '--version')).stdout.toString(), /^containers-image-proxy \d/);
  });
});

describe('cli: inspect, layers, blob', () => {
  it('inspect prints the digest and manifest, --config adds the config, --raw the exact bytes', () => {
    const out = JSON.parse(ok(cli('inspect', image.reference, '--config')).stdout.toString()) as {
      digest: string;
      manifest: { layers: Array<{ digest: string }> };
      config: { rootfs: { diff_ids: string[] } };
    };
    assert.equal(out.digest, image.manifestDigest);
    assert.deepEqual(out.manifest.layers.map((l) => l.digest), image.layers.map((l) => l.digest));
    assert.deepEqual(out.config.rootfs.diff_ids, image.layers.map((l) => l.diffId));
    assert.deepEqual(ok(cli('inspect', image.reference, '--raw')).stdout, readFileSync(image.manifestPath));
  });

  it('layers lists index, digest, size, media type and diff ID', () => {
    const out = JSON.parse(ok(cli('layers', image.reference)).stdout.toString()) as unknown;
    assert.deepEqual(
      out,
      image.layers.map(({ digest, size, mediaType, diffId }, index) => ({ index, digest, size, mediaType, diffId })),
    );
  });

  it('blob writes the exact bytes to stdout or a file, looking the size up', () => {
    for (const layer of image.layers) {
      assert.deepEqual(ok(cli('blob', image.reference, layer.digest)).stdout, readFileSync(layer.path));
      const file = join(scratch.path, `blob-${layer.digest.slice(7, 15)}`);
      ok(cli('blob', image.reference, layer.digest, '-o', file, '--size', String(layer.size)));
      assert.deepEqual(readFileSync(file), readFileSync(layer.path));
    }
    assert.deepEqual(ok(cli('blob', image.reference, image.configDigest)).stdout.length, image.configSize);
  });

  it('blob fails on a digest mismatch and leaves no file behind', () => {
    using dir = tempDir();
    cpSync(image.layout, dir.path, { recursive: true });
    const layer = image.layers[1]!;
    const path = join(dir.path, 'blobs', 'sha256', layer.digest.slice(7));
    const bytes = readFileSync(path);
    bytes[100] = bytes[100]! ^ 1;
    writeFileSync(path, bytes);
    const file = join(dir.path, 'out.bin');
    const run = cli('blob', `oci:${dir.path}:v1`, layer.digest, '-o', file);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /failed verification/);
    assert.deepEqual(readdirSync(dir.path).filter((name) => name.startsWith('out.bin')), []);
  });
});

/** Runs the CLI without blocking this process (a FIFO needs a reader meanwhile). */
function cliAsync(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args, '--skopeo', SKOPEO], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(stdout), stderr });
    });
  });
}

/** Reads a FIFO to its end with cat(1); resolves with what came through, or null if nobody wrote within `ms`. */
function readFifo(path: string, ms = 30_000): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const cat = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      cat.kill('SIGKILL');
    }, ms);
    cat.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    cat.once('error', reject);
    cat.once('close', () => {
      clearTimeout(timer);
      resolve(timedOut ? null : Buffer.concat(chunks));
    });
  });
}

/** mknod needs root: say so as a skip rather than pass. */
function requireRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  t.skip('mknod needs root');
  return false;
}

/** The names in `dir` other than `keep`: temporary files a write left behind. */
function leftovers(dir: string, ...keep: string[]): string[] {
  return readdirSync(dir).filter((name) => !keep.includes(name));
}

describe('cli: blob -o onto what already exists', () => {
  const layer = () => image.layers[1]!; // 200 KB: more than a pipe holds, so a FIFO must be streamed

  it('writes into an existing FIFO, which stays a FIFO', async () => {
    using dir = tempDir();
    const fifo = join(dir.path, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const [run, received] = await Promise.all([cliAsync('blob', image.reference, layer().digest, '-o', fifo), readFifo(fifo)]);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(received, 'nothing was written into the FIFO');
    assert.deepEqual(received, readFileSync(layer().path));
    assert.ok(lstatSync(fifo).isFIFO(), 'still a FIFO');
    assert.deepEqual(leftovers(dir.path, 'fifo'), []);
  });

  it('writes into an existing character device, which stays that device', async (t) => {
    if (!requireRoot(t)) return;
    using dir = tempDir();
    const device = join(dir.path, 'null');
    execFileSync('mknod', ['-m', '666', device, 'c', '1', '3']); // a copy of /dev/null; the real one is never touched
    const before = lstatSync(device);
    ok(await cliAsync('blob', image.reference, layer().digest, '-o', device));
    const after = lstatSync(device);
    assert.ok(after.isCharacterDevice(), 'still a character device');
    assert.equal(after.rdev, before.rdev);
    assert.equal(after.ino, before.ino, 'the same node, not a replacement');
    assert.deepEqual(leftovers(dir.path, 'null'), []);
  });

  it('refuses a directory, a block device and a socket with a usage error naming them', async (t) => {
    using dir = tempDir();
    const directory = join(dir.path, 'a-directory');
    mkdirSync(directory);
    const socketPath = join(dir.path, 'a-socket');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      const cases: Array<[string, RegExp]> = [
        [directory, /is a directory/],
        [socketPath, /is a socket/],
      ];
      if (process.getuid?.() === 0) {
        execFileSync('mknod', [join(dir.path, 'a-block-device'), 'b', '7', '0']);
        cases.push([join(dir.path, 'a-block-device'), /is a block device/]);
      } else t.diagnostic('block device case not run: mknod needs root');
      for (const [path, what] of cases) {
        const before = lstatSync(path);
        const run = await cliAsync('blob', image.reference, layer().digest, '-o', path);
        assert.equal(run.status, 2, `${path}: ${run.stderr}`);
        const first = run.stderr.split('\n')[0]!;
        assert.ok(first.includes(path), `names the path: ${first}`);
        assert.match(first, what);
        const after = lstatSync(path);
        assert.equal(after.ino, before.ino, `${path} is untouched`);
        assert.equal(after.mode, before.mode);
      }
      assert.deepEqual(readdirSync(directory), []);
      assert.deepEqual(leftovers(dir.path, 'a-directory', 'a-socket', 'a-block-device'), []);
    } finally {
      server.close();
    }
  });

  it('replaces a regular file atomically, keeping its mode', () => {
    using dir = tempDir();
    const file = join(dir.path, 'existing');
    writeFileSync(file, 'old contents');
    chmodSync(file, 0o640);
    ok(cli('blob', image.reference, layer().digest, '-o', file));
    assert.deepEqual(readFileSync(file), readFileSync(layer().path));
    assert.equal(lstatSync(file).mode & 0o7777, 0o640);
    assert.deepEqual(leftovers(dir.path, 'existing'), []);
  });

  it('follows a symlink and applies the same rules to its target; refuses a dangling one', async () => {
    using dir = tempDir();
    const file = join(dir.path, 'file');
    writeFileSync(file, 'old');
    symlinkSync('file', join(dir.path, 'to-file'));
    ok(cli('blob', image.reference, layer().digest, '-o', join(dir.path, 'to-file')));
    assert.equal(readlinkSync(join(dir.path, 'to-file')), 'file', 'the link stays a link');
    assert.deepEqual(readFileSync(file), readFileSync(layer().path));

    const fifo = join(dir.path, 'fifo');
    execFileSync('mkfifo', [fifo]);
    symlinkSync(fifo, join(dir.path, 'to-fifo'));
    const [run, received] = await Promise.all([cliAsync('blob', image.reference, layer().digest, '-o', join(dir.path, 'to-fifo')), readFifo(fifo)]);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(received, readFileSync(layer().path));
    assert.ok(lstatSync(fifo).isFIFO());

    mkdirSync(join(dir.path, 'sub'));
    symlinkSync('sub', join(dir.path, 'to-dir'));
    symlinkSync('missing', join(dir.path, 'dangling'));
    for (const [name, what] of [['to-dir', /is a symlink to .*sub, which is a directory/], ['dangling', /is a symlink to .*missing, which does not exist/]] as const) {
      const refused = cli('blob', image.reference, layer().digest, '-o', join(dir.path, name));
      assert.equal(refused.status, 2, refused.stderr);
      assert.match(refused.stderr.split('\n')[0]!, what);
    }
    assert.ok(!existsSync(join(dir.path, 'missing')));
    assert.deepEqual(leftovers(dir.path, 'file', 'to-file', 'fifo', 'to-fifo', 'sub', 'to-dir', 'dangling'), []);
  });
});

describe('cli: pull', () => {
  it('writes an OCI layout that skopeo inspects and copies', () => {
    using dir = tempDir();
    const out = join(dir.path, 'pulled');
    ok(cli('pull', image.reference, out, '--jobs', '4'));
    const inspected = JSON.parse(skopeo('inspect', `oci:${out}:v1`)) as { Digest: string; Layers: string[] };
    assert.deepEqual(inspected.Layers, image.layers.map((l) => l.digest));
    const copy = join(dir.path, 'copy');
    skopeo('copy', '--quiet', `oci:${out}:v1`, `dir:${copy}`);
    for (const layer of image.layers) assert.deepEqual(readFileSync(join(copy, layer.digest.slice(7))), readFileSync(layer.path));
    ok(cli('pull', threeLayers.reference, out, '--tag', 'second'));
    assert.ok(JSON.parse(skopeo('inspect', `oci:${out}:second`)));
    assert.ok(JSON.parse(skopeo('inspect', `oci:${out}:v1`)), 'the first tag is kept');
  });

  it('--to-devnull fetches and verifies every layer, writing nothing', () => {
    const run = ok(cli('pull', threeLayers.reference, '--to-devnull', '--jobs', '2', '--json'));
    assert.equal(run.stdout.length, 0);
    // Every layer went through whole: its progress ends with all its bytes counted.
    const events = run.stderr.trim().split('\n').map((line) => JSON.parse(line) as { event: string; digest: string; bytes: number });
    const done = new Map(events.filter((e) => e.event === 'blob-done').map((e) => [e.digest, e.bytes]));
    for (const [i, layer] of threeLayers.layers.entries()) assert.equal(done.get(layer.digest), layer.size, `layer ${i}: bytes through the pull`);
    assert.deepEqual(events.filter((e) => e.event === 'manifest'), [], 'no manifest is written, so none is reported');
  });
});

describe('cli: extract', () => {
  it('extracts a 3-layer image with whiteouts and an opaque dir, file by file', () => {
    using dir = tempDir();
    const root = join(dir.path, 'rootfs');
    ok(cli('extract', threeLayers.reference, root));
    assert.deepEqual(snapshot(root), {
      'bin/': 'dir 755',
      'bin/alias': 'symlink tool',
      'bin/tool': 'file 755 #!/bin/sh\necho tool\n',
      'bin/tool-link': 'file 755 #!/bin/sh\necho tool\n',
      'etc/': 'dir 755',
      'etc/config': 'file 644 v3\n',
      'opt/': 'dir 755',
      'opt/fresh': 'file 644 fresh\n',
    });
    assert.equal(statSync(join(root, 'bin/tool')).ino, statSync(join(root, 'bin/tool-link')).ino);
  });

  it('extracts only the chosen layers, by index or digest', () => {
    using dir = tempDir();
    const root = join(dir.path, 'rootfs');
    ok(cli('extract', threeLayers.reference, root, '--layer', '1'));
    // etc/.wh.obsolete has nothing to delete and creates no etc/.
    assert.deepEqual(Object.keys(snapshot(root)).sort(), ['bin/', 'bin/alias', 'opt/', 'opt/fresh']);
    const byDigest = join(dir.path, 'by-digest');
    ok(cli('extract', threeLayers.reference, byDigest, '--layer', threeLayers.layers[0]!.digest, '--layer', '0'));
    assert.deepEqual(Object.keys(snapshot(byDigest)).sort(), ['bin/', 'bin/tool', 'etc/', 'etc/config', 'etc/obsolete', 'opt/', 'opt/old-a', 'opt/old-b']);
    const missingLink = cli('extract', threeLayers.reference, join(dir.path, 'partial'), '--layer', '2');
    assert.equal(missingLink.status, 1, 'layer 2 alone hardlinks to a file only layer 0 has');
    assert.match(missingLink.stderr, /hardlink target "bin\/tool" does not exist/);
    const bad = cli('extract', threeLayers.reference, root, '--layer', '7');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /has 3 layers/);
  });

  it('refuses a non-empty DIR unless --allow-non-empty, and stops at --max-uncompressed', () => {
    using dir = tempDir();
    const root = join(dir.path, 'rootfs');
    mkdirSync(root);
    writeFileSync(join(root, 'mine'), 'keep');
    const refused = cli('extract', image.reference, root);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /is not empty.*--allow-non-empty/);
    assert.deepEqual(readdirSync(root), ['mine']);
    ok(cli('extract', image.reference, root, '--allow-non-empty'));
    assert.ok(readdirSync(root).length > 1);
    assert.equal(readFileSync(join(root, 'mine'), 'utf8'), 'keep');
    const limited = cli('extract', image.reference, join(dir.path, 'limited'), '--max-uncompressed', '100');
    assert.equal(limited.status, 1);
    assert.match(limited.stderr, /passes the limit of 100 bytes/);
    assert.equal(cli('extract', image.reference, join(dir.path, 'bad'), '--max-uncompressed', 'lots').status, 2);
  });

  it('extracts a zstd layer', () => {
    using dir = tempDir();
    const zstd = buildImage(join(dir.path, 'layout'), 'z', [{ compression: 'zstd', entries: [{ type: 'file', name: 'pkg/hello.rpm', content: 'not really an rpm\n' }] }]);
    assert.equal(zstd.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    const root = join(dir.path, 'rootfs');
    ok(cli('extract', zstd.reference, root));
    assert.equal(readFileSync(join(root, 'pkg/hello.rpm'), 'utf8'), 'not really an rpm\n');
  });

  it('follows a symlink that climbs out inside DIR, as runtimes do, and writes nothing outside', () => {
    using dir = tempDir();
    const climbing = buildImage(join(dir.path, 'layout'), 'climb', [{ entries: [{ type: 'symlink', name: 'up', target: '../..' }, { type: 'file', name: 'up/evil', content: 'x' }] }]);
    ok(cli('extract', climbing.reference, join(dir.path, 'root')));
    assert.ok(!existsSync(join(dir.path, 'evil')));
    assert.equal(readFileSync(join(dir.path, 'root', 'evil'), 'utf8'), 'x');
  });

  it('refuses hostile layers with exit 1 and writes nothing outside DIR', () => {
    for (const [what, entries] of [
      ['dot-dot', [{ type: 'file' as const, name: '../evil', content: 'x' }]],
      ['hardlink', [{ type: 'hardlink' as const, name: 'hl', target: '../victim' }]],
    ] as const) {
      using dir = tempDir();
      writeFileSync(join(dir.path, 'victim'), 'precious');
      const hostile = buildImage(join(dir.path, 'layout'), 'bad', [{ entries: [...entries] }]);
      const run = cli('extract', hostile.reference, join(dir.path, 'root'));
      assert.equal(run.status, 1, what);
      assert.match(run.stderr, /refusing layer entry/, what);
      assert.equal(run.stderr.trim().split('\n').length, 1);
      assert.ok(!existsSync(join(dir.path, 'evil')), what);
      assert.equal(readFileSync(join(dir.path, 'victim'), 'utf8'), 'precious');
      assert.ok(lstatSync(join(dir.path, 'root')).isDirectory());
    }
  });
});

describe('cli: progress', () => {
  it('draws bars on a terminal, JSON events with --json, nothing otherwise', () => {
    using dir = tempDir();
    // `script` runs the command in a pseudo-terminal and records what it drew.
    const command = [process.execPath, BIN, 'pull', image.reference, join(dir.path, 'tty'), '--skopeo', SKOPEO].map((a) => `'${a}'`).join(' ');
    const typescript = execFileSync('script', ['-qec', `stty cols 100; ${command}`, '/dev/null'], { encoding: 'utf8' });
    assert.match(typescript, /sha256:[0-9a-f]{12}\s+\[#+\] [\d.]+ (KiB|MiB|B)\/[\d.]+ (KiB|MiB|B) [\d.]+ (B|KiB|MiB|GiB)\/s done/);

    const json = ok(cli('pull', image.reference, join(dir.path, 'json'), '--json'));
    const events = json.stderr.trim().split('\n').map((line) => JSON.parse(line) as { event: string; digest: string; bytes: number; size: number });
    for (const layer of image.layers) {
      assert.ok(events.some((e) => e.event === 'blob-start' && e.digest === layer.digest && e.size === layer.size));
      assert.ok(events.some((e) => e.event === 'blob-done' && e.digest === layer.digest && e.bytes === layer.size));
    }
    assert.equal(ok(cli('pull', image.reference, join(dir.path, 'quiet'))).stderr, '', 'not a terminal: silent');
  });
});
