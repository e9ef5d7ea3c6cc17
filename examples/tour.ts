/**
 * A tour of the library on an OCI layout: manifest, config, layers, and each
 * layer streamed and verified. Usage: node tour.js LAYOUT[:TAG] | REFERENCE
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImageProxy } from '../src/index.js';

const target = process.argv[2] ?? 'examples/hello-image:latest';
const reference = /^[a-z-]+:/.test(target) && !target.startsWith('examples/') ? target : `oci:${target}`;

await using proxy = await ImageProxy.spawn(process.env.SKOPEO ? { skopeoCommand: [process.env.SKOPEO] } : {});
console.log(`skopeo image proxy, protocol ${proxy.protocolVersion}`);
await using image = await proxy.openImage(reference);
const { digest, manifest } = await proxy.fetchManifest(image);
const config = await proxy.fetchConfig(image);
console.log(`${reference}\n  manifest ${digest}\n  platform ${config.os}/${config.architecture}, ${manifest.layers.length} layers`);
for (const [index, layer] of manifest.layers.entries()) {
  const blob = await proxy.getDescriptor(image, layer);
  let bytes = 0;
  await pipeline(blob, new Writable({ write: (chunk: Buffer, _, done) => ((bytes += chunk.length), done()) }));
  console.log(`  layer ${index}: ${layer.digest} ${bytes} bytes via ${blob.transfer}, verified`);
}
