/**
 * The throttled link of the network scenario, in its own process (so its
 * JavaScript never competes with the client being measured): a FaultRelay in
 * front of the registry at argv[2], pacing every response at argv[3] bytes/s
 * per connection after argv[4] ms. Prints its port; exits when stdin closes.
 */
import { FaultRelay } from '../test/support/fault-relay.js';

const [upstream, rate, latency] = process.argv.slice(2).map(Number) as [number, number, number];
const relay = await FaultRelay.start(upstream);
relay.inject(/./, { kind: 'throttle', bytesPerSecond: rate, latencyMs: latency }, Infinity);
process.stdout.write(`${relay.port}\n`);
process.stdin.resume();
process.stdin.once('end', () => void relay.stop().then(() => process.exit(0)));
