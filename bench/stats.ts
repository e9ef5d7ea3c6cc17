/**
 * Small statistics and Markdown helpers for the benchmarks: medians with
 * their spread, percentiles, and table formatting. Nothing here measures.
 */

/** The median of some samples with the range they span. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), min: sorted[0]!, max: sorted[sorted.length - 1]!, n: sorted.length };
}

/**
 * The p-th percentile of ascending `sorted` samples, interpolated linearly
 * between the two nearest ranks (so p50 of an even count is the mean of the
 * middle pair, as a median should be).
 */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('percentile: no samples');
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const a = sorted[low]!;
  const b = sorted[high]!;
  return a + (b - a) * (rank - low);
}

export function sortedCopy(samples: readonly number[]): number[] {
  return [...samples].sort((a, b) => a - b);
}

/** Applies `f` to every statistic (e.g. seconds -> MiB/s; note min and max swap for decreasing `f`). */
export function mapSummary(s: Summary, f: (x: number) => number): Summary {
  const a = f(s.min);
  const b = f(s.max);
  return { median: f(s.median), min: Math.min(a, b), max: Math.max(a, b), n: s.n };
}

/** `1234 (1200–1300)`: median with min–max, `digits` decimals. */
export function fmtSummary(s: Summary, digits = 0): string {
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

export function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return String(x);
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** `0.93x`, with a ✅/❌ mark when a goal is given. */
export function fmtRatio(ratio: number, goal?: { atLeast?: number; below?: number }): string {
  const text = `${ratio.toFixed(2)}x`;
  if (!goal) return text;
  const met = (goal.atLeast === undefined || ratio >= goal.atLeast) && (goal.below === undefined || ratio < goal.below);
  return `${text} ${met ? '✅' : '❌'}`;
}

/** Milliseconds with a precision that suits their magnitude. */
export function fmtMs(ms: number): string {
  if (ms >= 100) return fmt(ms, 0);
  if (ms >= 10) return fmt(ms, 1);
  if (ms >= 1) return fmt(ms, 2);
  return fmt(ms, 3);
}

export function fmtMsSummary(s: Summary): string {
  return `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})`;
}

export type Align = 'left' | 'right';

/** A GitHub-flavoured Markdown table; numeric columns read best right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => (align[i] === 'right' ? escape(c).padStart(widths[i]!) : escape(c).padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (align[i] === 'right' ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(headers), rule, ...rows.map(line)].join('\n');
}
