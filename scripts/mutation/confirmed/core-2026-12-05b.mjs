// The last survivors and no-coverage mutants of the core stream and wire files
// of issue #18 (Stryker runs C, G, A, G2, P1 and H of 2026-12-05, MUTATION.md:
// section "ninth", branch mutate10) that the tests kill, written down as
// must-fail mutants (names: the file, the line:column in the results file, the
// mutator's replacement; find/replace: the same break of the current code).
// Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/core-2026-12-05b.mjs
// Some are also in the CI list (must-fail-mutants.mjs); CI does not run this one.
const T = 'src/transport.ts';
const R = 'src/replies.ts';
const RAW = 'src/blobs/raw-blob-stream.ts';
export const MUTANTS = [
  {"name":"transport:91:33 Shutdown sent with an argument","file":T,"find":"await this.#enqueue(method, [], 'plain'","replace":"await this.#enqueue(method, ['Stryker was here'], 'plain'","test":"unit/replies","only":"Shutdown goes out"},
  {"name":"transport:167:39 the abort listener is never removed","file":T,"find":"signal?.removeEventListener('abort', onAbort);","replace":"signal?.removeEventListener('', onAbort);","test":"unit/replies","only":"leaves no listener on it once answered"},
  {"name":"transport:275:10 every send error is a disconnect","file":T,"find":"return code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN';","replace":"return true;","test":"unit/replies","only":"fails otherwise"},
  {"name":"transport:275:30 ECONNRESET is no disconnect","file":T,"find":"code === 'EPIPE' || code === 'ECONNRESET' ||","replace":"code === 'EPIPE' || false ||","test":"unit/replies","only":"ECONNRESET, not EPIPE"},
  {"name":"transport:275:39 'ECONNRESET' emptied","file":T,"find":"code === 'EPIPE' || code === 'ECONNRESET' ||","replace":"code === 'EPIPE' || code === '' ||","test":"unit/replies","only":"ECONNRESET, not EPIPE"},
  {"name":"replies:51:19 refresh() does nothing","file":R,"find":"refresh(): void {\n    if (this.#timer) this.#timer.refresh();\n  }","replace":"refresh(): void {}","test":"unit/replies","only":"refresh\\(\\) starts an armed wait over"},
  {"name":"replies:102:40 FinishPipe's deadline names no method","file":R,"find":"new ReplyDeadline('FinishPipe', replyTimeoutMs)","replace":"new ReplyDeadline('', replyTimeoutMs)","test":"unit/replies","only":"deadline names FinishPipe"},
  {"name":"replies:120:20 progress() does not start FinishPipe's wait over","file":R,"find":"progress(): void {\n    this.#deadline.refresh();\n  }","replace":"progress(): void {}","test":"unit/replies","only":"deadline names FinishPipe"},
  {"name":"replies:141:64 default maxBytes 64 * 1024 / 1024","file":R,"find":"maxBytes = 64 * 1024 * 1024","replace":"maxBytes = 64 * 1024 / 1024","test":"unit/replies","only":"up to 64 MiB by default"},
  {"name":"replies:141:64 default maxBytes 64 / 1024 * 1024","file":R,"find":"maxBytes = 64 * 1024 * 1024","replace":"maxBytes = 64 / 1024 * 1024","test":"unit/replies","only":"up to 64 MiB by default"},
  {"name":"replies:146:18 a read error resolves","file":R,"find":"else if (error) reject(error);","replace":"else if (false) reject(error);","test":"unit/replies","only":"poll or read of the pipe gives"},
  {"name":"replies:202:50 releaseReply frees nothing (no coverage in run A, unit files only: an integration file kills it)","file":R,"find":"if (reply.kind !== 'plain') reply.release();","replace":"","test":"faults","only":"while getBlob is under way"},
  {"name":"replies:209:23 an already aborted signal is waited on","file":R,"find":"  if (signal.aborted) {\n    promise.catch(() => {});\n    return Promise.reject(signal.reason);\n  }","replace":"  if (signal.aborted) {}","test":"unit/replies","only":"an already aborted signal","timeoutMs":30000},
  {"name":"raw-blob-stream:73:11 the error pipe's reads are never capped","file":RAW,"find":"if (this.#errorChunks.length < 64) this.#errorChunks.push(chunk);","replace":"if (true) this.#errorChunks.push(chunk);","test":"unit/blob-streams","only":"first 64 reads"},
  {"name":"raw-blob-stream:73:11 the cap at 65 reads","file":RAW,"find":"if (this.#errorChunks.length < 64) this.#errorChunks.push(chunk);","replace":"if (this.#errorChunks.length <= 64) this.#errorChunks.push(chunk);","test":"unit/blob-streams","only":"first 64 reads"},
  {"name":"raw-blob-stream:80:21 no 'error' listener on the error pipe","file":RAW,"find":"this.#errors.on('error', (error) => this.destroy(error));","replace":"this.#errors.on('', (error) => this.destroy(error));","test":"unit/blob-streams","only":"error pipe whose read fails"},
  {"name":"raw-blob-stream:80:30 the error pipe's error swallowed","file":RAW,"find":"this.#errors.on('error', (error) => this.destroy(error));","replace":"this.#errors.on('error', () => undefined);","test":"unit/blob-streams","only":"error pipe whose read fails"},
  {"name":"raw-blob-stream:90:9 _read arms the stall only after the end","file":RAW,"find":"if (!this.#dataEnded) this.#stall.arm();","replace":"if (this.#dataEnded) this.#stall.arm();","test":"unit/blob-streams","only":"not one byte ever comes"},
  {"name":"raw-blob-stream:90:9 _read never arms the stall","file":RAW,"find":"if (!this.#dataEnded) this.#stall.arm();","replace":"if (false) this.#stall.arm();","test":"unit/blob-streams","only":"not one byte ever comes"},
  {"name":"extract-state:74:55 the temporary state file opened without O_EXCL ({})","file":"src/extract/extract-state.ts","find":"await writeFile(temporary, JSON.stringify(state), { flag: 'wx' });","replace":"await writeFile(temporary, JSON.stringify(state), {});","test":"unit/images","only":"planted"},
  {"name":"extract-state:74:63 the temporary state file's flag emptied","file":"src/extract/extract-state.ts","find":"await writeFile(temporary, JSON.stringify(state), { flag: 'wx' });","replace":"await writeFile(temporary, JSON.stringify(state), { flag: '' });","test":"unit/images","only":"planted"},
  {"name":"ordered-apply:260:25 a spool file's removal without force ({})","file":"src/extract/ordered-apply.ts","find":"await rm(this.path, { force: true });","replace":"await rm(this.path, {});","test":"unit/ordered-apply","only":"someone else removed"},
  {"name":"ordered-apply:260:34 a spool file's removal with force: false","file":"src/extract/ordered-apply.ts","find":"await rm(this.path, { force: true });","replace":"await rm(this.path, { force: false });","test":"unit/ordered-apply","only":"someone else removed"},
  {"name":"protocol:9:41 MINIMUM_PROTOCOL_VERSION '' (run G2 had the unit files only; the fake proxy's 0.2.2 is refused)","file":"src/protocol.ts","find":"export const MINIMUM_PROTOCOL_VERSION = '0.2.3';","replace":"export const MINIMUM_PROTOCOL_VERSION = '';","test":"fake-proxy","only":"older than 0.2.3"},
];
