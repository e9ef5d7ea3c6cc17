/** The CLI's progress line, for sizes known and not known before a transfer. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderLine } from '../../src/cli/progress.js';

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
