/**
 * Loads one addon file with process.dlopen and calls every function it
 * exports once, printing what it saw as JSON on stdout. Runs on any Node (it
 * imports nothing from the package), under qemu-user too: test/package/
 * prebuilds.test.ts runs it on each prebuilt file with each Node.
 *
 * Usage: node addon-smoke.js ADDON.node SCRATCH_DIR
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, existsSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

interface Channel {
  send(packet: Buffer): void;
  close(): void;
}
interface Addon {
  Channel: new (fd: number, onPacket: (error: Error | null | undefined, data: Buffer | null | undefined, fds: number[] | undefined) => void) => Channel;
  socketPair(): [number, number];
  createSecretFd(data: Buffer): number;
  mknod(path: Buffer, kind: 'fifo', mode: number, major: number, minor: number): void;
  utimes(path: Buffer, seconds: number, nanoseconds: number): void;
  BlobReader: new (fd: number, algorithm: string | null, onChunk: (error: Error | undefined, chunk: Buffer | null | undefined) => void) => BlobReader;
  blobHashAvailable: boolean;
}
interface BlobReader {
  setFlowing(flowing: boolean): void;
  digest(): string;
  close(): void;
}

const [file, scratch] = process.argv.slice(2) as [string, string];
const module = { exports: {} as Addon };
process.dlopen(module, file);
const addon = module.exports;
const result: Record<string, unknown> = { node: process.version, arch: process.arch, exports: Object.getOwnPropertyNames(addon).sort() };

// A secret fd: the bytes come back from the sealed memfd.
const secretFd = addon.createSecretFd(Buffer.from('secret bytes'));
const secret = Buffer.alloc(64);
result.secret = secret.subarray(0, readSync(secretFd, secret, 0, 64, 0)).toString();
closeSync(secretFd);

// mknod (a FIFO) and utimes to the nanosecond, through the raw syscalls.
const fifo = join(scratch, `fifo-${process.pid}`);
addon.mknod(Buffer.from(fifo), 'fifo', 0o640, 0, 0);
addon.utimes(Buffer.from(fifo), 1_500_000_000, 123_456_789);
const stat = statSync(fifo, { bigint: true });
result.fifo = { isFifo: stat.isFIFO(), mode: Number(stat.mode & 0o777n).toString(8), mtimeNs: stat.mtimeNs.toString() };

// A BlobReader on the FIFO: the bytes written, read on its thread and hashed
// there with the Node process's OpenSSL, the same digest as node:crypto's.
const blob = Buffer.alloc(60_000, 'blob bytes ');
const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
const writeFd = openSync(fifo, constants.O_WRONLY);
writeSync(writeFd, blob);
closeSync(writeFd);
const chunks: Buffer[] = [];
const reader = new addon.BlobReader(readFd, 'sha256', (error, chunk) => {
  if (error || !chunk) {
    const read = Buffer.concat(chunks);
    result.blobReader = {
      hashAvailable: addon.blobHashAvailable,
      error: error ? error.message : null,
      bytes: read.length,
      sameBytes: read.equals(blob),
      sameDigest: reader.digest() === createHash('sha256').update(blob).digest('hex'),
    };
    reader.close();
    result.blobFdLeak = existsSync(`/proc/self/fd/${readFd}`);
    channels();
    return;
  }
  chunks.push(chunk);
});
reader.setFlowing(true);

// Two channels on a SOCK_SEQPACKET pair: packets arrive whole, in order,
// however large (the receiver learns each length first), then end of stream.
function channels(): void {
  const [a, b] = addon.socketPair();
  const received: Array<number | string> = [];
  const sizes = [5, 32 * 1024, 200 * 1024];
  const receiver = new addon.Channel(b, (error, data) => {
    if (error) received.push(`error ${error.message}`);
    else if (data === null) {
      received.push('end');
      receiver.close();
      result.packets = received;
      result.fdLeak = existsSync(`/proc/self/fd/${b}`);
      process.stdout.write(JSON.stringify(result) + '\n');
    } else if (data) received.push(data.length === data.filter((byte) => byte === data.length % 251).length ? data.length : `corrupt ${data.length}`);
  });
  const sender = new addon.Channel(a, () => {});
  for (const size of sizes) sender.send(Buffer.alloc(size, size % 251));
  sender.close();
}
