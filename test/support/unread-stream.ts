/**
 * Run by test/deadlines.test.ts as its own process: opens a blob stream,
 * never reads it, never closes anything, and should still exit.
 * argv: SKOPEO REFERENCE DIGEST SIZE TRANSFER
 */
import { ImageProxy, type BlobTransfer } from '../../src/index.js';

const [skopeo, reference, digest, size, transfer] = process.argv.slice(2) as [string, string, string, string, BlobTransfer];
const proxy = await ImageProxy.spawn({ skopeoCommand: [skopeo] });
const image = await proxy.openImage(reference);
await proxy.getBlob(image, digest, Number(size), { transfer });
console.log(`opened ${transfer}`);
