/**
 * createSpool and OrderedApplier (src/extract/ordered-apply.ts), driven
 * directly: layers arrive in an order each test sets with explicit streams,
 * and an ApplyLayer that records what it is handed stands for the root
 * filesystem writer (the unit under test is the ordering and the spool, not
 * tar extraction). No timing: a test waits for a recorded event, and "not
 * yet" is checked only where the right code waits for a gate the test holds.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { createSpool, OrderedApplier, type ApplyLayer } from '../../src/extract/ordered-apply.js';
import type { BlobStep } from '../../src/oci-layout.js';
import { openFdsOn } from '../support/env.js';

/** A real layer blob (a zstd:chunked layer skopeo 1.22 wrote; test/fixtures/README.md), named by its digest. */
const REAL_LAYER_DIGEST = '30272bc1266d000b8fc85c8a227ba83ea07ce1ec23e487cea551f138d8d676e8';
const REAL_LAYER = readFileSync(new URL(`../../../test/fixtures/hello-image-zstd-chunked/blobs/sha256/${REAL_LAYER_DIGEST}`, import.meta.url));
/** What the spool reads per chunk at most when it follows a file (SPOOL_CHUNK): memory stays bounded by it. */
const SPOOL_CHUNK = 128 * 1024;
/** Generous: every test takes milliseconds; a hang (a broken wake-up) fails here instead of stalling the run. */
const LIMIT = { timeout: 10_000 };

/** A blob the test hands over chunk by chunk, as the proxy would. */
class Arrival {
  readonly stream = new PassThrough();
  readonly #sent: Buffer[] = [];
  send(chunk: Buffer): this {
    this.#sent.push(chunk);
    this.stream.write(chunk);
    return this;
  }
  end(): this {
    this.stream.end();
    return this;
  }
  /** The download breaks (a reset connection, an abort). */
  fail(error: Error): void {
    this.stream.destroy(error);
  }
  get bytes(): Buffer {
    return Buffer.concat(this.#sent);
  }
  static whole(bytes: Buffer): Arrival {
    return new Arrival().send(bytes).end();
  }
}

interface Attempt {
  position: number;
  chunks: Buffer[];
  /** Unset while the attempt runs. */
  outcome?: 'applied' | Error;
}

/** The ApplyLayer under the applier: records every attempt, its chunks and how it ended. */
class Recorder {
  readonly attempts: Attempt[] = [];
  /** Per position: awaited before an attempt ends (after its last byte, or before it rethrows). */
  readonly holds = new Map<number, Promise<void>>();
  /** Per position: thrown after the first chunk (a layer that does not apply). */
  readonly refusals = new Map<number, Error>();
  /** The most attempts ever running at once. */
  maxRunning = 0;
  #running = 0;
  #waiting = new Set<() => void>();

  readonly apply: ApplyLayer = async (position, blob) => {
    const attempt: Attempt = { position, chunks: [] };
    this.attempts.push(attempt);
    this.maxRunning = Math.max(this.maxRunning, ++this.#running);
    this.changed();
    try {
      for await (const chunk of blob) {
        attempt.chunks.push(Buffer.from(chunk));
        this.changed();
        const refusal = this.refusals.get(position);
        if (refusal) throw refusal;
      }
      await this.holds.get(position);
      attempt.outcome = 'applied';
    } catch (error) {
      attempt.outcome = error as Error;
      this.changed();
      await this.holds.get(position);
      throw error;
    } finally {
      this.#running--;
      this.changed();
    }
  };

  of(position: number): Attempt[] {
    return this.attempts.filter((attempt) => attempt.position === position);
  }
  /** Positions applied, in the order they were. */
  get applied(): number[] {
    return this.attempts.filter((attempt) => attempt.outcome === 'applied').map((attempt) => attempt.position);
  }
  /** The bytes of the attempt that applied the layer at `position`. */
  bytes(position: number): Buffer {
    const attempt = this.of(position).find((each) => each.outcome === 'applied');
    assert.ok(attempt, `layer ${position} was applied`);
    return Buffer.concat(attempt.chunks);
  }
  received(position: number): number {
    return this.of(position).reduce((sum, attempt) => sum + attempt.chunks.reduce((n, chunk) => n + chunk.length, 0), 0);
  }
  /** Resolves once `condition` holds (checked on every recorded event). */
  until(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!condition()) return;
        this.#waiting.delete(check);
        resolve();
      };
      this.#waiting.add(check);
    });
  }
  /** Checks the waits of {@link until} (the meter calls it too). */
  changed(): void {
    for (const check of [...this.#waiting]) check();
  }
}

/** A gate: a promise the test resolves. */
function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * Whether `promise` has settled after a few turns of the event loop. Used
 * for "still pending" where the right code waits for a gate the test holds,
 * and for "settled" only where nothing but promise callbacks stand between.
 */
async function settles(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let turn = 0; turn < 5; turn++) await nextTurn();
  return settled;
}

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** A pid that no process has any more (a child that ran and was reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  assert.equal(child.status, 0);
  assert.throws(() => process.kill(child.pid, 0), { code: 'ESRCH' });
  return child.pid;
}

let work: string;
beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'cip-ordered-apply-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('createSpool', () => {
  it('makes its parent and a fresh, empty directory in it named for this process', LIMIT, async () => {
    const parent = join(work, 'not', 'yet');
    const spool = await createSpool(parent);
    assert.equal(dirname(spool), parent);
    assert.match(basename(spool), new RegExp(`^\\.cip-spool-${process.pid}-\\w{6}$`));
    assert.ok((await stat(spool)).isDirectory());
    assert.deepEqual(await readdir(spool), []);
    // Another spool of this (running) process leaves the first alone.
    const second = await createSpool(parent);
    assert.notEqual(second, spool);
    assert.deepEqual((await readdir(parent)).sort(), [basename(spool), basename(second)].sort());
  });

  it("removes the spool directories dead processes left, and nothing else: a running process's stays, other names stay", LIMIT, async () => {
    const dead = deadPid();
    const deadSpools = [`.cip-spool-${dead}-AbC123`, `.cip-spool-${dead}-x`];
    const kept = [
      `.cip-spool-${process.pid}-mine00`, // this process
      `.cip-spool-${process.ppid}-parent`, // the process that started this one
      '.cip-spool-1-init00', // pid 1, running whoever owns it
      `cip-spool-${dead}-x`, // no leading dot
      `x.cip-spool-${dead}-x`, // not at the start
      `Xcip-spool-${dead}-x`, // a dot is a dot
      `.cip-spool-${dead}`, // no dash after the pid
      '.cip-spool-abc-x', // no pid
      '.cip-spool--x',
      `${dead}-photos`, // the user's own directory next to the rootfs
    ];
    for (const name of [...deadSpools, ...kept]) {
      await mkdir(join(work, name, 'nested'), { recursive: true });
      await writeFile(join(work, name, 'nested', '0-abcd1234'), randomBytes(64));
    }
    await writeFile(join(work, `.cip-spool-${dead}-file`), 'a file by that name goes too');
    const spool = await createSpool(work);
    assert.deepEqual((await readdir(work)).sort(), [...kept, basename(spool)].sort());
    for (const name of kept) assert.equal((await readdir(join(work, name, 'nested'))).length, 1, name);
  });
});

describe('OrderedApplier', () => {
  let spoolDir: string;
  let recorder: Recorder;
  let failures: unknown[];
  /** Bytes each position's meter saw (the meter verifies and counts every blob, on either path). */
  let metered: Map<number, number>;
  beforeEach(async () => {
    spoolDir = await createSpool(work);
    recorder = new Recorder();
    failures = [];
    metered = new Map();
  });

  const applier = (start: number, end: number): OrderedApplier => new OrderedApplier(start, end, spoolDir, recorder.apply, (error) => failures.push(error));
  const meter =
    (position: number): BlobStep =>
    async function* (source) {
      for await (const chunk of source) {
        metered.set(position, (metered.get(position) ?? 0) + chunk.length);
        recorder.changed();
        yield chunk;
      }
    };
  const take = (target: OrderedApplier, position: number, arrival: Arrival): Promise<void> => target.take(position, arrival.stream, meter(position));
  const spoolFiles = (): Promise<string[]> => readdir(spoolDir);
  const assertNothingLeft = async (): Promise<void> => {
    assert.deepEqual(await spoolFiles(), [], 'no spool file left');
    assert.deepEqual(openFdsOn(spoolDir), [], 'no spool file left open'); // deleted ones included: "PATH (deleted)"
  };

  it('applies layers strictly in order whatever their arrival order; early ones wait in the spool, the one whose turn it is streams straight in', LIMIT, async () => {
    const layers = [REAL_LAYER, randomBytes(300 * 1024), randomBytes(1024), randomBytes(200 * 1024 + 7)];
    const target = applier(0, layers.length);
    assert.equal(target.next, 0);

    // 3, 1 and 2 arrive whole before 0: each is on disk when its take resolves, and nothing is applied.
    for (const position of [3, 1, 2]) await take(target, position, Arrival.whole(layers[position]!));
    assert.deepEqual(recorder.attempts, []);
    assert.equal(target.next, 0);
    const spooled = await Promise.all((await spoolFiles()).map((name) => readFile(join(spoolDir, name))));
    assert.deepEqual(
      spooled.map(sha256).sort(),
      [3, 1, 2].map((position) => sha256(layers[position]!)).sort(),
    );

    // 0 streams in without a spool file; 2 is held while applied, to look at the spool meanwhile.
    const holdZero = gate();
    const holdTwo = gate();
    recorder.holds.set(0, holdZero.promise);
    recorder.holds.set(2, holdTwo.promise);
    const zero = new Arrival();
    const takeZero = take(target, 0, zero);
    zero.send(layers[0]!.subarray(0, 1000));
    await recorder.until(() => recorder.received(0) === 1000);
    assert.equal((await spoolFiles()).length, 3, 'the layer whose turn it is is not spooled');
    zero.send(layers[0]!.subarray(1000)).end();
    await recorder.until(() => recorder.received(0) === layers[0]!.length);
    assert.equal(await settles(target.finished), false);
    holdZero.open();
    await takeZero;

    await recorder.until(() => recorder.of(2).length === 1 && recorder.received(2) === layers[2]!.length);
    assert.equal(target.next, 2);
    assert.deepEqual(recorder.applied, [0, 1]);
    assert.equal((await spoolFiles()).length, 2, "1's file is gone once it is applied; 2's (being applied) and 3's (waiting) are left");
    holdTwo.open();
    await target.finished;

    assert.deepEqual(recorder.applied, [0, 1, 2, 3]);
    assert.equal(recorder.attempts.length, 4);
    assert.equal(recorder.maxRunning, 1);
    assert.equal(sha256(recorder.bytes(0)), REAL_LAYER_DIGEST);
    for (const [position, bytes] of layers.entries()) {
      assert.ok(recorder.bytes(position).equals(bytes), `layer ${position}: the bytes that arrived`);
      assert.equal(metered.get(position), bytes.length, `layer ${position}: every byte metered`);
    }
    // Memory stays bounded by stream buffers: a spooled layer is read back in chunks of at most SPOOL_CHUNK.
    for (const position of [1, 2, 3]) {
      for (const chunk of recorder.of(position)[0]!.chunks) assert.ok(chunk.length > 0 && chunk.length <= SPOOL_CHUNK, `layer ${position}: a chunk of ${chunk.length} bytes`);
    }
    assert.equal(target.next, undefined);
    await assertNothingLeft(); // before dispose: each file went once applied
    await target.dispose();
  });

  it('applies in order when arrivals interleave with application', LIMIT, async () => {
    const layers = [randomBytes(10_000), randomBytes(150_000), randomBytes(20_000), randomBytes(5_000)];
    const target = applier(0, 4);
    await take(target, 1, Arrival.whole(layers[1]!));
    await take(target, 0, Arrival.whole(layers[0]!)); // applies 0, then 1 from the spool
    await target.applied(1, new AbortController().signal);
    await take(target, 3, Arrival.whole(layers[3]!)); // early: spooled
    assert.equal(target.next, 2);
    await take(target, 2, Arrival.whole(layers[2]!)); // its turn: straight in, then 3
    await target.finished;
    assert.deepEqual(recorder.applied, [0, 1, 2, 3]);
    for (const [position, bytes] of layers.entries()) assert.ok(recorder.bytes(position).equals(bytes));
    await assertNothingLeft();
  });

  it('a spool file someone else removed (a tmp cleaner) is still applied from its open descriptor, and removing it after is no failure', LIMIT, async () => {
    const layers = [randomBytes(10_000), randomBytes(150_000)];
    const target = applier(0, 2);
    await take(target, 1, Arrival.whole(layers[1]!));
    const spooled = await spoolFiles();
    assert.equal(spooled.length, 1);
    await rm(join(spoolDir, spooled[0]!));
    await take(target, 0, Arrival.whole(layers[0]!));
    await target.finished;
    assert.deepEqual(recorder.applied, [0, 1]);
    assert.ok(recorder.bytes(1).equals(layers[1]!));
    assert.deepEqual(failures, []);
    await assertNothingLeft();
  });

  it('starts at `start`, ends at `end`, and has nothing to do when start is not below end', LIMIT, async () => {
    for (const [start, end] of [
      [2, 2],
      [3, 2],
    ] as const) {
      const empty = applier(start, end);
      assert.equal(empty.next, undefined);
      assert.equal(await settles(empty.finished), true, `finished at once for ${start}..${end}`);
      await empty.finished;
    }
    const target = applier(1, 3);
    assert.equal(target.next, 1);
    await take(target, 1, Arrival.whole(randomBytes(100)));
    assert.equal(target.next, 2);
    assert.equal(await settles(target.finished), false, 'one layer is left');
    await take(target, 2, Arrival.whole(randomBytes(100)));
    await target.finished;
    assert.equal(target.next, undefined);
    assert.deepEqual(recorder.applied, [1, 2]);
    await assertNothingLeft();
  });

  it('applies a layer whose turn comes while it still arrives as it grows: the bytes so far, then the rest, without waiting for its end', LIMIT, async () => {
    const target = applier(0, 2);
    const first = randomBytes(200 * 1024);
    const rest = randomBytes(300 * 1024 + 11);
    const one = new Arrival();
    const takeOne = take(target, 1, one);
    one.send(first);
    await take(target, 0, Arrival.whole(randomBytes(4096)));
    // Its turn: what is on disk so far is applied while the blob still arrives.
    await recorder.until(() => recorder.received(1) === first.length);
    assert.equal(recorder.of(1)[0]!.outcome, undefined, 'still being applied');
    assert.equal(await settles(takeOne), false, 'still arriving');
    assert.equal(await settles(target.finished), false);
    one.send(rest);
    await recorder.until(() => recorder.received(1) === first.length + rest.length);
    assert.equal(recorder.of(1)[0]!.outcome, undefined, 'applied to the end of the blob, not of the file so far');
    one.end();
    await takeOne;
    await target.finished;
    assert.ok(recorder.bytes(1).equals(Buffer.concat([first, rest])));
    for (const chunk of recorder.of(1)[0]!.chunks) assert.ok(chunk.length > 0 && chunk.length <= SPOOL_CHUNK);
    assert.equal(metered.get(1), first.length + rest.length);
    await assertNothingLeft();
  });

  it('a blob that fails while it waits in the spool: take rejects with its error, the file goes, the layer is not applied, and its retry is', LIMIT, async () => {
    const target = applier(0, 2);
    const broken = new Arrival();
    const takeBroken = take(target, 1, broken);
    broken.send(randomBytes(50_000));
    await recorder.until(() => metered.get(1) === 50_000); // on its way to the spool file
    broken.fail(new Error('connection reset by peer'));
    await assert.rejects(takeBroken, /connection reset by peer/);
    await assertNothingLeft();

    await take(target, 0, Arrival.whole(randomBytes(1000)));
    assert.equal(target.next, 1);
    assert.equal(await settles(target.finished), false);
    assert.deepEqual(recorder.of(1), [], 'the failed download is not applied');

    const retry = randomBytes(70_000);
    await take(target, 1, Arrival.whole(retry));
    await target.finished;
    assert.deepEqual(recorder.applied, [0, 1]);
    assert.equal(recorder.of(1).length, 1);
    assert.ok(recorder.bytes(1).equals(retry));
    assert.deepEqual(failures, []);
    await assertNothingLeft();
  });

  it('a blob that fails while its layer is applied from the spool: the layer is applied again from the retry, never twice at once', LIMIT, async () => {
    const target = applier(0, 2);
    const broken = new Arrival();
    const takeBroken = take(target, 1, broken);
    broken.send(randomBytes(60_000));
    await take(target, 0, Arrival.whole(randomBytes(1000)));
    await recorder.until(() => recorder.received(1) === 60_000);
    // The failed attempt is held before it ends, so the retry arrives while it still runs.
    const hold = gate();
    recorder.holds.set(1, hold.promise);
    broken.fail(new Error('connection reset by peer'));
    await assert.rejects(takeBroken, /connection reset by peer/);
    await recorder.until(() => recorder.of(1)[0]!.outcome instanceof Error);

    const retry = randomBytes(90_000);
    await take(target, 1, Arrival.whole(retry));
    assert.equal(recorder.of(1).length, 1, 'the retry waits for the failed attempt to end');
    hold.open();
    await target.finished;

    const [failed, applied] = recorder.of(1);
    assert.match((failed!.outcome as Error).message, /connection reset by peer/);
    assert.equal(applied!.outcome, 'applied');
    assert.ok(recorder.bytes(1).equals(retry));
    assert.equal(recorder.maxRunning, 1);
    assert.deepEqual(failures, [], 'a failed download is not a failed layer');
    await assertNothingLeft();
  });

  it('a layer from the spool that fails to apply: finished rejects with the first failure, onFailure hears it once, no later layer is applied, dispose removes the rest', LIMIT, async () => {
    const target = applier(0, 4);
    const refusal = new Error('layer 1 does not apply');
    recorder.refusals.set(1, refusal);
    await take(target, 2, Arrival.whole(randomBytes(40_000)));
    const one = new Arrival();
    const takeOne = take(target, 1, one);
    one.send(randomBytes(30_000));
    await take(target, 0, Arrival.whole(randomBytes(1000)));
    await assert.rejects(target.finished, refusal);
    assert.deepEqual(failures, [refusal]);

    // The download goes on to its end (its fault is not the blob's); later layers still arrive.
    one.send(randomBytes(30_000)).end();
    await takeOne;
    await take(target, 3, Arrival.whole(randomBytes(1000)));
    target.stop(new Error('a later failure'));
    await assert.rejects(target.finished, refusal);
    await target.applied(3, new AbortController().signal); // applying stopped: nothing to wait for
    assert.equal(await settles(target.idle()), true);
    assert.deepEqual(recorder.applied, [0]);
    assert.deepEqual(
      recorder.attempts.map((attempt) => attempt.position),
      [0, 1],
    );
    assert.equal(target.next, 1);
    assert.equal(failures.length, 1);
    assert.equal((await spoolFiles()).length, 3, 'what waits: 1 (arrived after its failure), 2, 3');
    await target.dispose();
    await assertNothingLeft();
  });

  it('a layer on the direct path that fails to apply: take rejects with its error; after stop nothing is applied, even the layer whose turn it is', LIMIT, async () => {
    const target = applier(0, 3);
    const refusal = new Error('layer 0 does not apply');
    recorder.refusals.set(0, refusal);
    await take(target, 1, Arrival.whole(randomBytes(5000)));
    await assert.rejects(take(target, 0, Arrival.whole(randomBytes(5000))), refusal);
    assert.equal(target.next, 0);
    target.stop(refusal); // as extractImage does with a failed job
    await assert.rejects(target.finished, refusal);
    recorder.refusals.clear();
    await take(target, 0, Arrival.whole(randomBytes(5000))); // a retry after the stop: kept, not applied
    await take(target, 2, Arrival.whole(randomBytes(5000)));
    assert.equal(await settles(target.idle()), true);
    assert.deepEqual(
      recorder.attempts.map((attempt) => attempt.position),
      [0],
    );
    assert.deepEqual(failures, [], 'reported by take, not onFailure');
    await target.dispose();
    await assertNothingLeft();
  });

  it('stopped while a layer is applied from a growing file (an abort): idle waits for that apply; then nothing is left open or on disk', LIMIT, async () => {
    const target = applier(0, 3);
    const one = new Arrival();
    const takeOne = take(target, 1, one);
    one.send(randomBytes(80_000));
    await take(target, 2, Arrival.whole(randomBytes(10_000)));
    await take(target, 0, Arrival.whole(randomBytes(1000)));
    await recorder.until(() => recorder.received(1) === 80_000);

    const aborted = new Error('aborted by the caller');
    target.stop(aborted);
    await assert.rejects(target.finished, aborted);
    assert.equal(await settles(target.idle()), false, 'layer 1 is still being applied');
    one.fail(aborted); // the caller's abort ends its downloads
    await assert.rejects(takeOne, aborted);
    await target.idle();
    assert.deepEqual(recorder.applied, [0]);
    assert.deepEqual(
      recorder.attempts.map((attempt) => attempt.position),
      [0, 1],
    );
    assert.deepEqual(failures, []);
    await target.dispose();
    await assertNothingLeft();
  });

  it('idle() waits for the layer being applied', LIMIT, async () => {
    const target = applier(0, 2);
    assert.equal(await settles(target.idle()), true, 'idle before anything runs');
    const hold = gate();
    recorder.holds.set(0, hold.promise);
    const takeZero = take(target, 0, Arrival.whole(randomBytes(1000)));
    await recorder.until(() => recorder.received(0) === 1000);
    target.stop(new Error('stopped'));
    assert.equal(await settles(target.idle()), false);
    hold.open();
    await target.idle();
    await takeZero;
    await target.dispose();
    await assertNothingLeft();
  });

  it('a short write to a spool file (the file size limit reached) fails the take instead of spooling a truncated layer', LIMIT, () => {
    // In a child process under `ulimit -f 1024` (1 MiB; Node ignores SIGXFSZ): a 2 MiB chunk is written short.
    // (Not smaller: the child's other files, such as Stryker's coverage, must still fit.)
    const module = new URL('../../src/extract/ordered-apply.js', import.meta.url).href;
    const script = `
      import { readdir } from 'node:fs/promises';
      import { PassThrough } from 'node:stream';
      import { createSpool, OrderedApplier } from ${JSON.stringify(module)};
      const spool = await createSpool(process.argv[1]);
      const applier = new OrderedApplier(0, 2, spool, async () => {}, () => {});
      const blob = new PassThrough().end(Buffer.alloc(2 * 1024 * 1024, 1));
      const outcome = await applier.take(1, blob, async function* (source) { yield* source; }).then(() => 'taken', (error) => error.message);
      console.log(JSON.stringify({ spool, outcome, left: await readdir(spool) }));`;
    const child = spawnSync('bash', ['-c', 'ulimit -f 1024 && exec "$0" --input-type=module -e "$1" "$2"', process.execPath, script, work], { encoding: 'utf8', timeout: 8000 });
    assert.equal(child.status, 0, child.stderr);
    const { spool, outcome, left } = JSON.parse(child.stdout) as { spool: string; outcome: string; left: string[] };
    const prefix = 'short write to ';
    assert.ok(outcome.startsWith(prefix), outcome);
    assert.equal(dirname(outcome.slice(prefix.length)), spool);
    assert.match(basename(outcome), /^1-[0-9a-f]{8}$/);
    assert.deepEqual(left, []);
  });

  it('applied() resolves once the layer is applied, when applying stops, or when its signal aborts, and leaves no listener behind', LIMIT, async () => {
    const target = applier(0, 3);
    const signal = new AbortController().signal;
    const oneApplied = target.applied(1, signal);
    const zeroApplied = target.applied(0, signal);
    const hold = gate();
    recorder.holds.set(0, hold.promise);
    const takeZero = take(target, 0, Arrival.whole(randomBytes(1000)));
    await recorder.until(() => recorder.received(0) === 1000);
    assert.equal(await settles(zeroApplied), false, 'not while 0 is being applied');
    hold.open();
    await takeZero;
    await zeroApplied;
    assert.equal(await settles(oneApplied), false);
    assert.equal(getEventListeners(signal, 'abort').length, 1, "only 1's wait listens");
    assert.equal(await settles(target.applied(0, signal)), true, 'applied already');

    const aborting = new AbortController();
    const twoApplied = target.applied(2, aborting.signal);
    assert.equal(await settles(twoApplied), false);
    aborting.abort();
    assert.equal(await settles(twoApplied), true, 'the abort ends the wait');
    assert.equal(getEventListeners(aborting.signal, 'abort').length, 0);

    await take(target, 1, Arrival.whole(randomBytes(1000)));
    await oneApplied;
    assert.equal(getEventListeners(signal, 'abort').length, 0);
    const twoAgain = target.applied(2, signal);
    assert.equal(await settles(twoAgain), false);
    target.stop(new Error('stopped'));
    assert.equal(await settles(twoAgain), true, 'applying stopped');
    await assert.rejects(target.finished, /stopped/);
    await assertNothingLeft();
  });
});
