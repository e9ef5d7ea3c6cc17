/** The CLI's progress line, for sizes known and not known before a transfer. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createImageProgress, createProgress, formatBytes, renderLine } from '../../src/cli/progress.js';
import type { ImageProgressEvent } from '../../src/index.js';

describe('renderLine', () => {
  const now = 1_000_000;
  const task = { label: 'sha256:0123456789ab', bytes: 2048, started: now - 1000, finished: false, note: '' };

  it('a known total: bytes of total, rate and ETA', () => {
    const line = renderLine({ ...task, total: 4096 }, 120, now);
    assert.match(line, /2\.0 KiB\/4\.0 KiB 2\.0 KiB\/s ETA 1s$/);
  });

  it('a total not known before the transfer (-1): shown as ?, no ETA, no bar progress until done', () => {
    const line = renderLine({ ...task, total: -1 }, 120, now);
    assert.match(line, /\[-+\] 2\.0 KiB\/\? 2\.0 KiB\/s $/);
    assert.match(renderLine({ ...task, total: -1, finished: true }, 120, now), /\[#+\] 2\.0 KiB\/\? 2\.0 KiB\/s done$/);
  });
});

describe('renderLine, exactly', () => {
  const now = 1_000_000;
  const task = { label: 'sha256:0123456789abcdef', bytes: 2048, total: 4096, started: now - 2000, finished: false, note: '' };

  it('a label of 19 characters, a bar of what room is left (30 at most), the numbers', () => {
    assert.equal(renderLine(task, 80, now), 'sha256:0123456789ab [############------------] 2.0 KiB/4.0 KiB 1.0 KiB/s ETA 2s');
    assert.equal(renderLine(task, 200, now), `sha256:0123456789ab [${'#'.repeat(15)}${'-'.repeat(15)}] 2.0 KiB/4.0 KiB 1.0 KiB/s ETA 2s`);
    assert.equal(renderLine({ ...task, bytes: 4096, finished: true, note: 'retry 1: reset' }, 200, now), `sha256:0123456789ab [${'#'.repeat(30)}] 4.0 KiB/4.0 KiB 2.0 KiB/s done (retry 1: reset)`);
  });

  it('no bar below 5 columns of room; the line cut to the width', () => {
    // 61 columns leave a bar of exactly 5.
    assert.equal(renderLine(task, 61, now), 'sha256:0123456789ab [###--] 2.0 KiB/4.0 KiB 1.0 KiB/s ETA 2s');
    assert.equal(renderLine(task, 60, now), 'sha256:0123456789ab 2.0 KiB/4.0 KiB 1.0 KiB/s ETA 2s');
    assert.equal(renderLine(task, 40, now), 'sha256:0123456789ab 2.0 KiB/4.0 KiB 1.0');
    assert.equal(renderLine(task, 10, now), 'sha256:0123456789ab ');
  });

  it('nothing yet: no ETA; an empty blob: a total of 0 B, full when done', () => {
    assert.equal(renderLine({ ...task, bytes: 0 }, 80, now), `sha256:0123456789ab [${'-'.repeat(30)}] 0 B/4.0 KiB 0 B/s `);
    assert.equal(renderLine({ ...task, bytes: 0, total: 0, finished: true }, 80, now), `sha256:0123456789ab [${'#'.repeat(30)}] 0 B/0 B 0 B/s done`);
    assert.equal(renderLine({ ...task, bytes: 2048, total: 0 }, 80, now), `sha256:0123456789ab [${'-'.repeat(30)}] 2.0 KiB/0 B 1.0 KiB/s `);
  });

  it('an ETA of a minute or more in minutes and seconds', () => {
    const second = { ...task, bytes: 1024, started: now - 1000 };
    assert.match(renderLine({ ...second, total: 1024 * 60 }, 120, now), / ETA 59s$/);
    assert.match(renderLine({ ...second, total: 1024 * 61 }, 120, now), / ETA 1m00s$/);
    assert.match(renderLine({ ...second, total: 1024 * 126 }, 120, now), / ETA 2m05s$/);
  });
});

describe('formatBytes', () => {
  it('binary units, whole bytes below 1 KiB, one decimal above, TiB at most', () => {
    const cases: Array<[number, string]> = [
      [0, '0 B'],
      [1023, '1023 B'],
      [1024, '1.0 KiB'],
      [1536, '1.5 KiB'],
      [1024 ** 2, '1.0 MiB'],
      [1024 ** 3 * 2.5, '2.5 GiB'],
      [1024 ** 4, '1.0 TiB'],
      [1024 ** 5, '1024.0 TiB'],
    ];
    for (const [bytes, text] of cases) assert.equal(formatBytes(bytes), text, String(bytes));
  });
});

/** A stand-in for stderr: what was written, and whether it is a terminal. */
function sink(isTTY: boolean, columns?: number) {
  const written: string[] = [];
  const stream = { isTTY, columns, write: (text: string) => written.push(text) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, written };
}

describe('createProgress', () => {
  it('--json: one JSON line per event; total null when unknown; progress at most every 100 ms unless complete', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 }); // the clock moves only when the test says
    const { stream, written } = sink(false);
    const progress = createProgress({ json: true, stream });
    progress.start('a', 'sha256:aa', 10);
    progress.start('b', 'sha256:bb', -1);
    progress.update('a', 4); // the first progress event of a task goes out
    progress.update('a', 6); // within 100 ms: dropped
    t.mock.timers.tick(99);
    progress.update('a', 7); // 99 ms: dropped
    t.mock.timers.tick(1);
    progress.update('a', 8); // 100 ms: goes out
    progress.update('a', 10); // complete: goes out at once
    const metered = [];
    for await (const chunk of progress.meter('b')(
      (async function* () {
        yield Buffer.from('xyz');
        yield Buffer.from('w'); // within 100 ms, and a size not known is never complete: dropped
      })(),
    )) {
      metered.push(chunk.toString());
    }
    progress.retry('b', 1, 'reset');
    progress.done('a');
    progress.start('c', 'sha256:cc', 0); // an empty blob: complete from the start, never held back
    progress.update('c', 0);
    progress.update('c', 0);
    progress.update('nope', 1);
    progress.done('nope');
    progress.close();
    assert.deepEqual(metered, ['xyz', 'w']);
    assert.deepEqual(
      written.map((line) => {
        assert.ok(line.endsWith('\n'));
        return JSON.parse(line) as unknown;
      }),
      [
        { event: 'start', id: 'a', label: 'sha256:aa', bytes: 0, total: 10 },
        { event: 'start', id: 'b', label: 'sha256:bb', bytes: 0, total: null },
        { event: 'progress', id: 'a', label: 'sha256:aa', bytes: 4, total: 10 },
        { event: 'progress', id: 'a', label: 'sha256:aa', bytes: 8, total: 10 },
        { event: 'progress', id: 'a', label: 'sha256:aa', bytes: 10, total: 10 },
        { event: 'progress', id: 'b', label: 'sha256:bb', bytes: 3, total: null },
        { event: 'retry', id: 'b', label: 'sha256:bb', bytes: 0, total: null, attempt: 1, reason: 'reset' },
        { event: 'done', id: 'a', label: 'sha256:aa', bytes: 10, total: 10 },
        { event: 'start', id: 'c', label: 'sha256:cc', bytes: 0, total: 0 },
        { event: 'progress', id: 'c', label: 'sha256:cc', bytes: 0, total: 0 },
        { event: 'progress', id: 'c', label: 'sha256:cc', bytes: 0, total: 0 },
      ],
    );
  });

  it('nothing with --quiet or when stderr is not a terminal; bars on a terminal, redrawn in place', () => {
    for (const options of [{ quiet: true }, {}]) {
      const { stream, written } = sink(options.quiet ? true : false);
      const progress = createProgress({ ...options, stream });
      progress.start('a', 'sha256:aa', 10);
      progress.done('a');
      progress.close();
      assert.deepEqual(written, [], JSON.stringify(options));
    }
    const { stream, written } = sink(true, 100);
    const progress = createProgress({ stream });
    progress.start('a', 'sha256:aa', 2048);
    progress.update('a', 1024);
    progress.close();
    progress.start('b', 'sha256:bb', -1);
    progress.done('b');
    progress.close();
    assert.equal(written.length, 2);
    assert.match(written[0]!, /^\r\x1b\[2Ksha256:aa {11}\[#+-+\] 1\.0 KiB\/2\.0 KiB \S+ \S+ ETA \S+\n$/, 'started, not done');
    assert.match(written[1]!, /^\x1b\[1A\r\x1b\[2Ksha256:aa .*\n\r\x1b\[2Ksha256:bb .* done\n$/);
  });
});

describe('the bars', () => {
  it("draw 100 ms after a change, once for many changes, cut to the terminal's width", (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const { stream, written } = sink(true, 40);
    const progress = createProgress({ stream });
    progress.start('a', 'sha256:0123456789abcdef', 4096);
    progress.update('a', 1024);
    t.mock.timers.tick(99);
    assert.equal(written.length, 0);
    t.mock.timers.tick(1);
    assert.equal(written.length, 1);
    const line = written[0]!.slice('\r\x1b[2K'.length, -1);
    assert.equal(line.length, 39);
    assert.match(line, /^sha256:0123456789ab 1\.0 KiB\/4\.0 KiB /);
    progress.update('a', 2048);
    progress.close(); // draws now, and cancels the draw the change asked for
    assert.equal(written.length, 2);
    t.mock.timers.tick(200);
    assert.equal(written.length, 2);
  });
});

describe('createImageProgress', () => {
  it("--json: each library event as a line, `event` its type, an error as its message's first line", () => {
    const { stream, written } = sink(false);
    const progress = createImageProgress({ json: true, stream });
    progress.onProgress({ type: 'blob-retry', digest: 'sha256:aa', attempt: 2, error: new Error('reset\nat line 2') } as ImageProgressEvent);
    progress.close();
    assert.deepEqual(written, [`${JSON.stringify({ event: 'blob-retry', digest: 'sha256:aa', attempt: 2, error: 'reset' })}\n`]);
  });

  it('bars: a blob labelled by the first 19 characters of its digest, its retries and its end', () => {
    const { stream, written } = sink(true, 120);
    const progress = createImageProgress({ stream });
    const digest = `sha256:${'ab'.repeat(32)}`;
    progress.onProgress({ type: 'blob-start', digest, size: 4096 } as ImageProgressEvent);
    progress.onProgress({ type: 'blob-progress', digest, bytes: 1024 } as ImageProgressEvent);
    progress.onProgress({ type: 'blob-retry', digest, attempt: 1, error: new Error('reset\nmore') } as ImageProgressEvent);
    progress.onProgress({ type: 'blob-done', digest, bytes: 4096 } as ImageProgressEvent);
    progress.close();
    assert.equal(written.length, 1);
    assert.match(written[0]!, /^\r\x1b\[2Ksha256:abababababab \[#{30}\] 4\.0 KiB\/4\.0 KiB .* done \(retry 1: reset\)\n$/);
  });
});
