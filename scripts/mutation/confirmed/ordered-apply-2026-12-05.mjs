// The mutants of src/extract/ordered-apply.ts that Stryker run P3 (2026-12-05,
// 12:36 UTC, MUTATE_TESTS='unit/*,versions,proxy') left alive (2 survived,
// 124 no coverage) and that test/unit/ordered-apply.test.ts (new) now kills,
// written down as must-fail mutants (names: line:column in that run's
// report, `node scripts/mutation/scores.mjs --survivors --only
// src/extract/ordered-apply.ts`). Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/ordered-apply-2026-12-05.mjs
// The ones not here are kept, each with its reason, in MUTATION.md (session
// "seventh (branch mutate8)"). CI runs two of these (must-fail-mutants.mjs).
// At the end: the mutants of src/extract-image.ts that a unit test can reach
// (its option and selector checks; the rest needs a proxy), killed by new
// cases in test/unit/images.test.ts.
const FILE = 'src/extract/ordered-apply.ts';
const TEST = 'unit/ordered-apply';
/** `only`: the one test that fails, for a mutant that makes tests hang (one limit waited for, not several). */
const m = (name, find, replace, only) => ({ name, file: FILE, find, replace, test: TEST, ...(only ? { only } : {}) });

const CONDITION_88 = 'if (!this.#failure && !this.#busy && position === this.#next) {';
const LOOP_117 = 'while (this.#next <= position && !this.#failure && !signal.aborted)';
const REGEX_40 = "new RegExp(`^${SPOOL_PREFIX.replace(/\\./g, '\\\\.')}(\\\\d+)-`)";
const CONDITION_41 = 'if (pid !== undefined && !isRunning(Number(pid)))';
const IN_ORDER = 'applies layers strictly in order';

export const MUTANTS = [
  // --- The two Stryker survivors (static: every file "covers" them)
  m("ordered-apply:24:22 SPOOL_PREFIX ''", "const SPOOL_PREFIX = '.cip-spool-';", "const SPOOL_PREFIX = '';"),
  m('ordered-apply:31:21 SPOOL_CHUNK 128 / 1024', 'const SPOOL_CHUNK = 128 * 1024;', 'const SPOOL_CHUNK = 128 / 1024;'),

  // --- createSpool
  m('ordered-apply:38:23 mkdir {}', 'await mkdir(parent, { recursive: true });', 'await mkdir(parent, {});'),
  m('ordered-apply:38:36 mkdir recursive false', 'await mkdir(parent, { recursive: true });', 'await mkdir(parent, { recursive: false });'),
  m('ordered-apply:39:45 the cleanup loop body {}', `const pid = ${REGEX_40}.exec(name)?.[1];`, 'const pid = undefined;'),
  m('ordered-apply:40:28 the pattern ``', REGEX_40, 'new RegExp(``)'),
  m("ordered-apply:40:60 the escaped dot ''", "SPOOL_PREFIX.replace(/\\./g, '\\\\.')", "SPOOL_PREFIX.replace(/\\./g, '')"),
  m('ordered-apply:41:9 condition true', CONDITION_41, 'if (true)'),
  m('ordered-apply:41:9 condition false', CONDITION_41, 'if (false)'),
  m('ordered-apply:41:9 && -> ||', CONDITION_41, 'if (pid !== undefined || !isRunning(Number(pid)))'),
  m('ordered-apply:41:9 pid !== undefined -> true', CONDITION_41, 'if (true && !isRunning(Number(pid)))'),
  m('ordered-apply:41:9 pid === undefined', CONDITION_41, 'if (pid === undefined && !isRunning(Number(pid)))'),
  m('ordered-apply:41:30 running ones removed', CONDITION_41, 'if (pid !== undefined && isRunning(Number(pid)))'),
  m('ordered-apply:41:84 rm {}', '{ recursive: true, force: true }', '{}'),
  m('ordered-apply:41:97 rm recursive false', '{ recursive: true, force: true }', '{ recursive: false, force: true }'),
  m('ordered-apply:43:31 mkdtemp name ``', 'mkdtemp(join(parent, `${SPOOL_PREFIX}${process.pid}-`))', 'mkdtemp(join(parent, ``))'),

  // --- OrderedApplier: construction, next
  m('ordered-apply:50:11 busy from the start', '#busy = false;\n  /** Layers', '#busy = true;\n  /** Layers', IN_ORDER),
  m('ordered-apply:72:39 finished never settled', '(resolve, reject) => (this.#settle = { resolve, reject })', '() => undefined'),
  m('ordered-apply:74:9 start >= end -> true', 'if (start >= end) this.#settle!.resolve();', 'if (true) this.#settle!.resolve();'),
  m('ordered-apply:74:9 start >= end -> false', 'if (start >= end) this.#settle!.resolve();', 'if (false) this.#settle!.resolve();'),
  m('ordered-apply:74:9 start > end', 'if (start >= end) this.#settle!.resolve();', 'if (start > end) this.#settle!.resolve();'),
  m('ordered-apply:74:9 start < end', 'if (start >= end) this.#settle!.resolve();', 'if (start < end) this.#settle!.resolve();'),
  m('ordered-apply:79:12 next: true', 'return this.#next < this.end ? this.#next : undefined;', 'return true ? this.#next : undefined;'),
  m('ordered-apply:79:12 next: false', 'return this.#next < this.end ? this.#next : undefined;', 'return false ? this.#next : undefined;'),
  m('ordered-apply:79:12 next: <=', 'return this.#next < this.end ? this.#next : undefined;', 'return this.#next <= this.end ? this.#next : undefined;'),
  m('ordered-apply:79:12 next: >=', 'return this.#next < this.end ? this.#next : undefined;', 'return this.#next >= this.end ? this.#next : undefined;'),

  // --- take: the direct path or the spool
  m('ordered-apply:87:80 take does nothing', 'async take(position: number, blob: Readable, meter: BlobStep): Promise<void> {', 'async take(position: number, blob: Readable, meter: BlobStep): Promise<void> { return;'),
  m('ordered-apply:88:9 direct: always', CONDITION_88, 'if (true) {'),
  m('ordered-apply:88:9 direct: never', CONDITION_88, 'if (false) {'),
  m('ordered-apply:88:9 direct: (!failure && !busy) || turn', CONDITION_88, 'if (!this.#failure && !this.#busy || position === this.#next) {'),
  m('ordered-apply:88:9 direct: failure and busy ignored', CONDITION_88, 'if (true && position === this.#next) {'),
  m('ordered-apply:88:9 direct: !failure || !busy', CONDITION_88, 'if ((!this.#failure || !this.#busy) && position === this.#next) {'),
  m('ordered-apply:88:9 direct: only after a failure', CONDITION_88, 'if (this.#failure && !this.#busy && position === this.#next) {'),
  m('ordered-apply:88:27 direct: only while busy', CONDITION_88, 'if (!this.#failure && this.#busy && position === this.#next) {'),
  m('ordered-apply:88:42 direct: any position', CONDITION_88, 'if (!this.#failure && !this.#busy && true) {'),
  m('ordered-apply:88:42 direct: !==', CONDITION_88, 'if (!this.#failure && !this.#busy && position !== this.#next) {'),
  m('ordered-apply:88:67 direct path body {}', 'await this.#run(position, () => this.apply(position, meter(blob)));\n      return;', ''),
  m('ordered-apply:92:62 spool file name ``', "join(this.spoolDir, `${position}-${randomBytes(4).toString('hex')}`)", 'join(this.spoolDir, ``)'),
  m('ordered-apply:96:9 spooling try body {}', 'await pipeline(blob, meter, spool.writable());\n      spool.finish();', ''),
  m('ordered-apply:99:21 spooling catch {}', 'spool.fail(error);\n      if (this.#spooled.get(position) === spool) this.#spooled.delete(position);\n      await this.#remove(spool);\n      throw error;', ''),
  m('ordered-apply:101:11 a failed spool kept (false)', 'if (this.#spooled.get(position) === spool) this.#spooled.delete(position);', 'if (false) this.#spooled.delete(position);'),
  m('ordered-apply:101:11 a failed spool kept (!==)', 'if (this.#spooled.get(position) === spool) this.#spooled.delete(position);', 'if (this.#spooled.get(position) !== spool) this.#spooled.delete(position);'),

  // --- applied()
  m('ordered-apply:113:71 applied() body {}', 'const onAbort = (): void => this.#wakeWaiters();', 'return; const onAbort = (): void => this.#wakeWaiters();'),
  m('ordered-apply:114:21 onAbort does nothing', 'const onAbort = (): void => this.#wakeWaiters();', 'const onAbort = () => undefined;', 'applied\\(\\) resolves'),
  m("ordered-apply:115:29 listens to ''", "signal.addEventListener('abort', onAbort, { once: true });", "signal.addEventListener('', onAbort, { once: true });", 'applied\\(\\) resolves'),
  m('ordered-apply:116:9 the wait {}', `${LOOP_117} await new Promise<void>((resolve) => this.#moved.push(resolve));`, ''),
  m('ordered-apply:117:14 loop false', LOOP_117, 'while (false)'),
  m('ordered-apply:117:14 loop ... || !aborted', LOOP_117, 'while (this.#next <= position && !this.#failure || !signal.aborted)', 'applied\\(\\) resolves'),
  m('ordered-apply:117:14 loop true && !aborted', LOOP_117, 'while (true && !signal.aborted)', 'applied\\(\\) resolves'),
  m('ordered-apply:117:14 loop next <= position || !failure', LOOP_117, 'while ((this.#next <= position || !this.#failure) && !signal.aborted)', 'applied\\(\\) resolves'),
  m('ordered-apply:117:14 loop next <= position -> true', LOOP_117, 'while (true && !this.#failure && !signal.aborted)', 'applied\\(\\) resolves'),
  m('ordered-apply:117:14 loop <', LOOP_117, 'while (this.#next < position && !this.#failure && !signal.aborted)'),
  m('ordered-apply:117:14 loop >', LOOP_117, 'while (this.#next > position && !this.#failure && !signal.aborted)'),
  m('ordered-apply:117:40 loop only after a failure', LOOP_117, 'while (this.#next <= position && this.#failure && !signal.aborted)'),
  m('ordered-apply:117:58 loop only when aborted', LOOP_117, 'while (this.#next <= position && !this.#failure && signal.aborted)'),
  m('ordered-apply:117:99 waiters never registered', 'await new Promise<void>((resolve) => this.#moved.push(resolve));', 'await new Promise<void>(() => undefined);', 'applied\\(\\) resolves'),
  m('ordered-apply:118:15 listener not removed', "signal.removeEventListener('abort', onAbort);", ''),
  m("ordered-apply:119:34 removes ''", "signal.removeEventListener('abort', onAbort);", "signal.removeEventListener('', onAbort);"),
  m('ordered-apply:123:24 wakeWaiters {}', 'const waiters = this.#moved;\n    this.#moved = [];\n    for (const wake of waiters) wake();', '', 'applied\\(\\) resolves'),

  // --- dispose, remove, stop
  m('ordered-apply:130:34 dispose {}', 'for (const spool of this.#open) await this.#remove(spool);', ''),
  m('ordered-apply:134:50 #remove {}', 'this.#open.delete(spool);\n    await spool.remove();', ''),
  m('ordered-apply:145:30 stop {}', 'this.#failure ??= { error };\n    this.#settle?.reject(error);\n    this.#wakeWaiters();', ''),
  m('ordered-apply:146:5 stop: failure never set (&&=)', 'this.#failure ??= { error };\n    this.#settle', 'this.#failure &&= { error };\n    this.#settle'),

  // --- #run
  m('ordered-apply:151:74 #run {}', 'this.#busy = true;\n    let done', 'return;\n    let done'),
  m('ordered-apply:152:18 never busy', 'this.#busy = true;', 'this.#busy = false;'),
  m('ordered-apply:154:30 idle never resolvable', 'this.#idle = new Promise((resolve) => (done = resolve));', 'this.#idle = new Promise(() => undefined);'),
  m('ordered-apply:155:9 #run try {}', 'await work();\n      this.#next = position + 1;\n      if (this.#next >= this.end) this.#settle?.resolve();\n      this.#wakeWaiters();', ''),
  m('ordered-apply:157:20 position - 1', 'this.#next = position + 1;', 'this.#next = position - 1;'),
  m('ordered-apply:158:11 finished after any layer (true)', 'if (this.#next >= this.end) this.#settle?.resolve();', 'if (true) this.#settle?.resolve();'),
  m('ordered-apply:158:11 never finished (false)', 'if (this.#next >= this.end) this.#settle?.resolve();', 'if (false) this.#settle?.resolve();'),
  m('ordered-apply:158:11 >', 'if (this.#next >= this.end) this.#settle?.resolve();', 'if (this.#next > this.end) this.#settle?.resolve();'),
  m('ordered-apply:158:11 <', 'if (this.#next >= this.end) this.#settle?.resolve();', 'if (this.#next < this.end) this.#settle?.resolve();'),
  m('ordered-apply:160:15 #run finally {}', 'this.#busy = false;\n      done();', ''),
  m('ordered-apply:161:20 busy for ever', 'this.#busy = false;\n      done();', 'this.#busy = true;\n      done();'),

  // --- #pump
  m('ordered-apply:168:17 #pump {}', 'const spool = this.#spooled.get(this.#next);', 'return; const spool = this.#spooled.get(this.#next);'),
  m('ordered-apply:170:9 busy and failure ignored', 'if (this.#busy || this.#failure || spool === undefined) return;', 'if (false || spool === undefined) return;'),
  m('ordered-apply:170:9 busy && failure', 'if (this.#busy || this.#failure || spool === undefined) return;', 'if (this.#busy && this.#failure || spool === undefined) return;'),
  m('ordered-apply:173:37 the work {}', 'try {\n        await this.apply(position, spool.follow());\n      } finally {\n        if (spool.done) await this.#remove(spool);\n      }', ''),
  m('ordered-apply:174:11 apply not called', 'await this.apply(position, spool.follow());', ''),
  m('ordered-apply:176:17 file not removed once applied', 'if (spool.done) await this.#remove(spool);', ''),
  m('ordered-apply:177:13 removed while still written', 'if (spool.done) await this.#remove(spool);', 'if (true) await this.#remove(spool);'),
  m('ordered-apply:179:34 apply failure swallowed', 'if (spool.failed) return this.#pump();\n      this.stop(error);\n      this.onFailure(error);', ''),
  m('ordered-apply:181:11 every failure a download failure', 'if (spool.failed) return this.#pump();', 'if (true) return this.#pump();'),
  m('ordered-apply:181:11 every failure a layer failure', 'if (spool.failed) return this.#pump();', 'if (false) return this.#pump();'),

  // --- SpoolFile
  m('ordered-apply:195:11 done from the start', '#done = false;', '#done = true;'),
  m("ordered-apply:205:49 open flags ''", "await open(path, 'wx+')", "await open(path, '')"),
  m('ordered-apply:209:12 done: true', 'return this.#done || this.#failure !== undefined;', 'return true;'),
  m('ordered-apply:209:12 done: false', 'return this.#done || this.#failure !== undefined;', 'return false;'),
  m('ordered-apply:209:12 done: &&', 'return this.#done || this.#failure !== undefined;', 'return this.#done && this.#failure !== undefined;'),
  m('ordered-apply:209:26 done: failure === undefined', 'return this.#done || this.#failure !== undefined;', 'return this.#done || this.#failure === undefined;'),
  m('ordered-apply:213:12 failed: true', 'get failed(): boolean {\n    return this.#failure !== undefined;', 'get failed(): boolean {\n    return true;'),
  m('ordered-apply:213:12 failed: false', 'get failed(): boolean {\n    return this.#failure !== undefined;', 'get failed(): boolean {\n    return false;'),
  m('ordered-apply:213:12 failed: ===', 'get failed(): boolean {\n    return this.#failure !== undefined;', 'get failed(): boolean {\n    return this.#failure === undefined;'),
  m('ordered-apply:218:25 Writable {}', 'return new Writable({\n      highWaterMark', 'return new Writable({} as never); ({\n      highWaterMark'),
  m('ordered-apply:220:54 write {}', 'this.handle.write(chunk, 0, chunk.length, this.#written).then(', 'new Promise<{ bytesWritten: number }>(() => {}).then('),
  m('ordered-apply:221:93 written callback {}', 'this.#written += bytesWritten;\n          this.#notify();\n          callback(bytesWritten === chunk.length ? null : new Error(`short write to ${this.path}`));', 'void bytesWritten;'),
  m('ordered-apply:222:11 written -=', 'this.#written += bytesWritten;', 'this.#written -= bytesWritten;'),
  m('ordered-apply:224:20 every write short', 'callback(bytesWritten === chunk.length ? null', 'callback(false ? null'),
  m('ordered-apply:224:20 short writes taken for whole (true)', 'callback(bytesWritten === chunk.length ? null', 'callback(true ? null'),
  m('ordered-apply:224:69 short write message ``', '`short write to ${this.path}`', '``'),
  m('ordered-apply:224:20 !==', 'callback(bytesWritten === chunk.length ? null', 'callback(bytesWritten !== chunk.length ? null'),
  m('ordered-apply:230:18 finish {}', 'this.#done = true;\n    this.#notify();', ''),
  m('ordered-apply:231:18 finish: done false', 'this.#done = true;\n    this.#notify();', 'this.#done = false;\n    this.#notify();'),
  m('ordered-apply:235:30 fail {}', 'this.#failure ??= { error };\n    this.#notify();', ''),
  m('ordered-apply:236:5 fail: &&=', 'this.#failure ??= { error };\n    this.#notify();', 'this.#failure &&= { error };\n    this.#notify();'),
  m('ordered-apply:241:43 follow {}', 'let at = 0;\n    for (;;) {', 'return; let at = 0;\n    for (;;) {'),
  // Spins without an await (the event loop blocked, the file's own limits cannot fire): the runner's limit kills it.
  { ...m('ordered-apply:243:14 follow loop body {}', 'for (;;) {\n      if (at < this.#written) {', 'for (;;) { continue;\n      if (at < this.#written) {', 'as it grows'), timeoutMs: 15_000 },
  m('ordered-apply:244:11 never reads', 'if (at < this.#written) {', 'if (false) {'),
  { ...m('ordered-apply:244:11 <=', 'if (at < this.#written) {', 'if (at <= this.#written) {', 'as it grows'), timeoutMs: 15_000 }, // empty reads resolve at once: spins
  m('ordered-apply:244:11 >=', 'if (at < this.#written) {', 'if (at >= this.#written) {'),
  m('ordered-apply:244:31 read block {}', 'const buffer = Buffer.allocUnsafe(Math.min(this.#written - at, SPOOL_CHUNK));\n        const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, at);\n        at += bytesRead;\n        yield buffer.subarray(0, bytesRead);\n        continue;', ''),
  m('ordered-apply:245:43 Math.max', 'Math.min(this.#written - at, SPOOL_CHUNK)', 'Math.max(this.#written - at, SPOOL_CHUNK)'),
  { ...m('ordered-apply:247:9 at -=', 'at += bytesRead;', 'at -= bytesRead;', 'as it grows'), timeoutMs: 15_000 }, // spins likewise
  m('ordered-apply:252:11 ends when caught up (true)', 'if (this.#done) return;', 'if (true) return;'),
  m('ordered-apply:252:11 never ends (false)', 'if (this.#done) return;', 'if (false) return;', IN_ORDER),
  m('ordered-apply:253:31 never woken', 'await new Promise<void>((resolve) => (this.#wake = resolve));', 'await new Promise<void>(() => undefined);', 'as it grows'),
  m('ordered-apply:257:33 remove {}', 'await this.handle.close().catch(() => {});\n    await rm(this.path, { force: true });', ''),
  m('ordered-apply:262:19 notify {}', 'const wake = this.#wake;\n    this.#wake = undefined;\n    wake?.();', '', 'as it grows'),

  // --- src/extract-image.ts (test/unit/images.test.ts): the dir check, before anything is spawned
  ...(() => {
    const DIR = "if (typeof dir !== 'string' || dir === '') throw";
    const x = (name, replace, only = 'extractImage refuses a dir') => ({ name: `extract-image:${name}`, file: 'src/extract-image.ts', find: DIR, replace, test: 'unit/images', only });
    return [
      x('85:7 dir check true', 'if (true) throw'),
      x('85:7 dir check false', 'if (false) throw'),
      x('85:7 dir check &&', "if (typeof dir !== 'string' && dir === '') throw"),
      x('85:7 non-strings pass', "if (false || dir === '') throw"),
      x('85:7 typeof ===', "if (typeof dir === 'string' || dir === '') throw"),
      x("85:34 '' passes", "if (typeof dir !== 'string' || false) throw"),
      x("85:34 dir !== ''", "if (typeof dir !== 'string' || dir !== '') throw"),
      x("85:42 '' -> Stryker was here!", "if (typeof dir !== 'string' || dir === 'Stryker was here!') throw"),
      {
        name: 'extract-image:85:77 dir message ``',
        file: 'src/extract-image.ts',
        find: '`dir must be a directory path, got ${String(dir)}`',
        replace: '``',
        test: 'unit/images',
        only: 'extractImage refuses a dir',
      },
      // selectLayers
      {
        name: 'extract-image:200:7 a non-array selector taken (false)',
        file: 'src/extract-image.ts',
        find: 'if (!Array.isArray(wanted)) throw',
        replace: 'if (false) throw',
        test: 'unit/images',
        only: 'not an array',
      },
      {
        name: 'extract-image:200:62 selector message ``',
        file: 'src/extract-image.ts',
        find: '`layers must be an array of layer indexes or digests, got ${String(wanted)}`',
        replace: '``',
        test: 'unit/images',
        only: 'not an array',
      },
      {
        name: 'extract-image:205:109 the range says 0-(length+1)',
        file: 'src/extract-image.ts',
        find: '(0-${layers.length - 1})',
        replace: '(0-${layers.length + 1})',
        test: 'unit/images',
        only: 'names no layer',
      },
    ];
  })(),
];
