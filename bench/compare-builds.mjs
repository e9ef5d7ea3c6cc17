// Same-run A/B of two builds of this package (e.g. main's checkout against
// this one): streams one blob through each build's `getBlob` on a fresh
// proxy and prints one JSON line: MiB/s, this process's CPU seconds (user +
// sys, reader threads included) and the event-loop delay p99/max in ms.
// Used for bench/RESULTS.md "#13: old read path against the new"; run it
// interleaved (build A, build B, A, B, ...) so both see the same load.
//
// usage: node bench/compare-builds.mjs CHECKOUT SKOPEO REFERENCE DIGEST SIZE TRANSFER
//        (CHECKOUT must have its test build: npx tsc -p tsconfig.test.json)
const [root, skopeo, reference, digest, size, transfer] = process.argv.slice(2);
const { ImageProxy } = await import(`${root}/.build/src/index.js`);
const { monitorEventLoopDelay } = await import('node:perf_hooks');
const proxy = await ImageProxy.spawn({ skopeoCommand: [skopeo] });
const image = await proxy.openImage(reference);
const h = monitorEventLoopDelay({ resolution: 1 });
const c0 = process.cpuUsage(); const t0 = performance.now(); h.enable();
const stream = await proxy.getBlob(image, digest, Number(size), { transfer });
for await (const chunk of stream) {}
h.disable();
const s = (performance.now() - t0) / 1000; const c = process.cpuUsage(c0);
console.log(JSON.stringify({ root: root.split('/').pop(), transfer, MiBps: Math.round(Number(size) / 2 ** 20 / s), cpu: +((c.user + c.system) / 1e6).toFixed(2), p99: +(h.percentile(99) / 1e6).toFixed(1), max: +(h.max / 1e6).toFixed(1) }));
await image.close(); await proxy.close();
