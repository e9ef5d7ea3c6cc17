/**
 * Progress for the CLI, always on stderr (stdout carries data): bars on a
 * terminal, JSON lines with --json, nothing with --quiet or when stderr is
 * not a terminal.
 */
import type { ImageProgressEvent } from '../index.js';

/** A pipeline step that passes bytes through and counts them. */
export type Meter = (source: AsyncIterable<Buffer>) => AsyncGenerator<Buffer>;

export interface Progress {
  /** `total`: bytes, or -1 when not known before the transfer. */
  start(id: string, label: string, total: number): void;
  /** A pipeline step that counts the bytes of `id` flowing through it. */
  meter(id: string): Meter;
  /** Sets how many bytes of `id` have arrived. */
  update(id: string, bytes: number): void;
  retry(id: string, attempt: number, reason: string): void;
  done(id: string): void;
  close(): void;
}

/**
 * The progress output of `pull` and `extract`, drawn from the library's
 * events alone: with --json each event is one JSON line (`event` is its
 * type; an error becomes its message); otherwise bars on a terminal.
 */
export function createImageProgress(options: { quiet?: boolean; json?: boolean; stream?: NodeJS.WriteStream }): {
  onProgress(event: ImageProgressEvent): void;
  close(): void;
} {
  const stream = options.stream ?? process.stderr;
  if (options.json) {
    return {
      onProgress: ({ type, ...fields }) => {
        const line = 'error' in fields ? { ...fields, error: fields.error.message.split('\n')[0] } : fields;
        stream.write(JSON.stringify({ event: type, ...line }) + '\n');
      },
      close: () => {},
    };
  }
  const progress = createProgress({ ...options, json: false });
  return {
    onProgress: (event) => {
      switch (event.type) {
        case 'blob-start':
          progress.start(event.digest, event.digest, event.size); // renderLine cuts the label
          return;
        case 'blob-progress':
          progress.update(event.digest, event.bytes);
          return;
        case 'blob-retry':
          progress.retry(event.digest, event.attempt, event.error.message.split('\n')[0]!);
          return;
        case 'blob-done':
          progress.update(event.digest, event.bytes);
          progress.done(event.digest);
          return;
        // Stryker disable next-line ConditionalExpression: the last clause: emptied, the switch ends there just as its return does
        default:
          return;
      }
    },
    close: () => progress.close(),
  };
}

export function createProgress(options: { quiet?: boolean; json?: boolean; stream?: NodeJS.WriteStream }): Progress {
  const stream = options.stream ?? process.stderr;
  if (options.json) return new JsonProgress(stream);
  if (options.quiet || !stream.isTTY) return new SilentProgress();
  return new BarProgress(stream);
}

interface Task {
  label: string;
  total: number;
  bytes: number;
  started: number;
  finished: boolean;
  note: string;
}

abstract class BaseProgress implements Progress {
  protected readonly tasks = new Map<string, Task>();

  start(id: string, label: string, total: number): void {
    this.tasks.set(id, { label, total, bytes: 0, started: Date.now(), finished: false, note: '' });
    this.changed(id, 'start');
  }

  meter(id: string): Meter {
    const progress = this;
    return async function* (source) {
      for await (const chunk of source) {
        const task = progress.tasks.get(id);
        if (task) {
          task.bytes += chunk.length;
          progress.changed(id, 'progress');
        }
        yield chunk;
      }
    };
  }

  update(id: string, bytes: number): void {
    const task = this.tasks.get(id);
    if (!task) return;
    task.bytes = bytes;
    this.changed(id, 'progress');
  }

  retry(id: string, attempt: number, reason: string): void {
    const task = this.tasks.get(id);
    if (task) {
      task.bytes = 0;
      task.note = `retry ${attempt}: ${reason}`;
    }
    this.changed(id, 'retry', { attempt, reason });
  }

  done(id: string): void {
    const task = this.tasks.get(id);
    if (task) task.finished = true;
    this.changed(id, 'done');
  }

  close(): void {}

  protected abstract changed(id: string, event: string, extra?: Record<string, unknown>): void;
}

class SilentProgress extends BaseProgress {
  protected changed(): void {}
}

/** One JSON object per line: {event, id, label, bytes, total, ...}. Progress events at most every 100 ms per task. */
class JsonProgress extends BaseProgress {
  readonly #lastEmit = new Map<string, number>();
  constructor(private readonly stream: NodeJS.WritableStream) {
    super();
  }

  protected changed(id: string, event: string, extra: Record<string, unknown> = {}): void {
    const task = this.tasks.get(id);
    if (!task) return;
    if (event === 'progress') {
      const now = Date.now();
      if (now - (this.#lastEmit.get(id) ?? 0) < 100 && (task.total < 0 || task.bytes < task.total)) return;
      this.#lastEmit.set(id, now);
    }
    // total is null when the size is not known before the transfer.
    const total = task.total < 0 ? null : task.total;
    this.stream.write(JSON.stringify({ event, id, label: task.label, bytes: task.bytes, total, ...extra }) + '\n');
  }
}

/** Redraws one line per task in place, at most 10 times a second. */
class BarProgress extends BaseProgress {
  #drawnLines = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly stream: NodeJS.WriteStream) {
    super();
  }

  protected changed(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#draw();
    }, 100);
  }

  override close(): void {
    clearTimeout(this.#timer); // undefined: a no-op
    this.#timer = undefined;
    this.#draw();
  }

  #draw(): void {
    const width = this.stream.columns || 80;
    const lines = [...this.tasks.values()].map((task) => renderLine(task, width));
    let out = this.#drawnLines > 0 ? `\x1b[${this.#drawnLines}A` : '';
    for (const line of lines) out += `\r\x1b[2K${line}\n`;
    this.#drawnLines = lines.length;
    this.stream.write(out);
  }
}

export function renderLine(task: Pick<Task, 'label' | 'total' | 'bytes' | 'started' | 'finished' | 'note'>, width: number, now = Date.now()): string {
  const seconds = Math.max((now - task.started) / 1000, 0.001);
  const rate = task.bytes / seconds;
  const fraction = task.total > 0 ? Math.min(task.bytes / task.total, 1) : task.finished ? 1 : 0;
  const eta = task.finished ? 'done' : rate > 0 && task.total > 0 ? `ETA ${formatDuration((task.total - task.bytes) / rate)}` : '';
  const total = task.total < 0 ? '?' : formatBytes(task.total); // unknown until the transfer ends
  const stats = `${formatBytes(task.bytes)}/${total} ${formatBytes(rate)}/s ${eta}${task.note ? ` (${task.note})` : ''}`;
  const label = task.label.slice(0, 19).padEnd(19);
  // The numbers matter most: the bar takes whatever room is left, if any.
  const barWidth = Math.min(30, width - 1 - label.length - stats.length - 4);
  if (barWidth < 5) return `${label} ${stats}`.slice(0, Math.max(width - 1, 20));
  const filled = Math.round(fraction * barWidth);
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${stats}`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** A duration in seconds, finite (renderLine divides by a rate above 0). */
function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.ceil(seconds)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`;
}
