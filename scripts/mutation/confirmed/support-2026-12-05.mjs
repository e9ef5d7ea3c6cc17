// The survivors and no-coverage mutants of Stryker run P1 (2026-12-05,
// 12:16 UTC, MUTATE_TESTS='unit/*') in the library's support modules that the
// unit tests now kill, written down as must-fail mutants (names: the file and
// the line:column in that run's report, `node scripts/mutation/scores.mjs
// --survivors --only FILE`). Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/support-2026-12-05.mjs
// Some are also in the CI list (must-fail-mutants.mjs); CI does not run this one.
const mutant = (file, test, only) => (name, find, replace) => ({ name, file, find, replace, test, ...(only ? { only } : {}) });

// src/errors.ts: test/unit/errors.test.ts (new). Every mutant of the file the run listed.
const errors = mutant('src/errors.ts', 'unit/errors');
const errorNames = ['ImageProxyError', 'SpawnError', 'ProxyTooOldError', 'InvalidArgumentError', 'ImageNotFoundError', 'StallError', 'RequestStallError', 'ProxyRestartedError', 'ProxyExitedError', 'ProtocolError', 'BlobVerificationError', 'UnsupportedOperationError', 'ProxyClosedError', 'ImageClosedError'];
const ERRORS = [
  ...errorNames.map((n) => errors(`errors: ${n} name ''`, `override name = '${n}';`, `override name = '';`)),
  errors("errors:43 ProxyTooOldError message ``", "`skopeo's image proxy speaks protocol ${actualVersion}, but at least ${requiredVersion} is required: `", '``'),
  errors('errors:44 ProxyTooOldError hint ``', '`install skopeo 1.9 or newer, or point skopeoCommand at a newer skopeo`', '``'),
  errors('errors:66 isTransientMessage true', "return classifyMessage(message) === 'transient';", 'return true;'),
  errors('errors:66 isTransientMessage false', "return classifyMessage(message) === 'transient';", 'return false;'),
  errors('errors:66 isTransientMessage !==', "return classifyMessage(message) === 'transient';", "return classifyMessage(message) !== 'transient';"),
  errors('errors:89 no hint -> Stryker was here!', "`; ${options.hint}` : ''}`", "`; ${options.hint}` : 'Stryker was here!'}`"),
  errors('errors:131 StallError message ``', '`blob ${digest} stalled: no data for ${stallTimeoutMs} ms after ${bytesReceived} bytes; the registry or network stopped sending`', '``'),
  errors('errors:143 RequestStallError retryable false', "override name = 'RequestStallError';\n  override readonly retryable = true;", "override name = 'RequestStallError';\n  override readonly retryable = false;"),
  errors('errors:151 RequestStallError message ``', '`${method} got no answer for ${stallTimeoutMs} ms; the registry or network stopped answering`', '``'),
  errors('errors:162 ProxyRestartedError retryable false', "override name = 'ProxyRestartedError';\n  override readonly retryable = true;", "override name = 'ProxyRestartedError';\n  override readonly retryable = false;"),
  errors('errors:170 ProxyRestartedError message ``', '`the image proxy was restarted (${reason.message}); repeat the operation`', '``'),
  errors('errors:170 ProxyRestartedError no cause', '{ cause: reason }', '{}'),
  errors('errors:188 signal !== null true', 'signal !== null ? `was killed', 'true ? `was killed'),
  errors('errors:188 signal !== null false', 'signal !== null ? `was killed', 'false ? `was killed'),
  errors('errors:188 signal === null', 'signal !== null ? `was killed', 'signal === null ? `was killed'),
  errors('errors:188 killed-by ``', '`was killed by ${signal}`', '``'),
  errors('errors:188 exitCode !== null true', 'exitCode !== null ? `exited', 'true ? `exited'),
  errors('errors:188 exitCode !== null false', 'exitCode !== null ? `exited', 'false ? `exited'),
  errors('errors:188 exitCode === null', 'exitCode !== null ? `exited', 'exitCode === null ? `exited'),
  errors('errors:188 exited-with ``', '`exited with code ${exitCode}`', '``'),
  errors("errors:188 closed its socket ''", "'closed its socket'", "''"),
  errors('errors:189 message ``', "super(`skopeo image proxy ${how}${stderr.trim() ? `; its stderr ends with:\\n${tail(stderr, 2000)}` : ''}`);", 'super(``);'),
  errors('errors:189 stderr.trim() -> stderr', '${stderr.trim() ?', '${stderr ?'),
  errors('errors:189 stderr part ``', "`; its stderr ends with:\\n${tail(stderr, 2000)}` : ''", "`` : ''"),
  errors("errors:189 no stderr -> Stryker was here!", "`; its stderr ends with:\\n${tail(stderr, 2000)}` : ''", "`; its stderr ends with:\\n${tail(stderr, 2000)}` : 'Stryker was here!'"),
  errors('errors:234 UnsupportedOperationError hint ``', '`use a newer skopeo (skopeoCommand)`', '``'),
  errors("errors:246 ProxyClosedError message ''", "'the image proxy is closed; create a new one with ImageProxy.spawn()'", "''"),
  errors('errors:256 ImageClosedError message ``', '`image ${reference} is closed; open it again with proxy.openImage()`', '``'),
  errors('errors:261 tail always short', 'text.length <= max ?', 'true ?'),
  errors('errors:261 tail always long', 'text.length <= max ?', 'false ?'),
  errors('errors:261 tail <', 'text.length <= max ?', 'text.length < max ?'),
  errors('errors:261 tail >', 'text.length <= max ?', 'text.length > max ?'),
  errors('errors:261 tail short trimStart', 'max ? text.trimEnd()', 'max ? text.trimStart()'),
  errors("errors:261 tail … ''", "'…' + text.slice(-max).trimEnd()", "'' + text.slice(-max).trimEnd()"),
  errors('errors:261 tail long trimStart', 'text.slice(-max).trimEnd()', 'text.slice(-max).trimStart()'),
  errors('errors:261 tail long whole text', 'text.slice(-max).trimEnd()', 'text.trimEnd()'),
  errors('errors:261 tail +max', 'text.slice(-max)', 'text.slice(+max)'),
];

export const MUTANTS = [...ERRORS];
