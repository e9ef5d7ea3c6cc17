// The survivors of Stryker run B2 of 2026-12-05 (`MUTATE_TESTS='unit/*,serve'`)
// in createRegistryServer's option checks (src/serve/server.ts, checkOptions)
// that test/unit/serve.test.ts ("createRegistryServer option checks") kills,
// written down as must-fail mutants (names: the line in that run's report).
// Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/serve-server-2026-12-05.mjs
// CI does not run this list.
const CHECK = 'if (!Number.isSafeInteger(value) || value < min) throw';
const TLS = 'if (options.tls && (!options.tls.cert || !options.tls.key)) throw';
const only = 'option checks';
const mutant = (name, find, replace) => ({ name, file: 'src/serve/server.ts', find, replace, test: 'unit/serve', only });
export const MUTANTS = [
  mutant('server:280 the options shape never refused', "if (typeof options !== 'object' || options === null) throw", 'if (false) throw'),
  mutant('server:280 && instead of ||', "if (typeof options !== 'object' || options === null) throw", "if (typeof options !== 'object' && options === null) throw"),
  mutant('server:280 typeof check forced false', "if (typeof options !== 'object' || options === null) throw", 'if (false || options === null) throw'),
  mutant('server:280 null check forced false', "if (typeof options !== 'object' || options === null) throw", "if (typeof options !== 'object' || false) throw"),
  mutant('server:299 a limit never refused', CHECK, 'if (false) throw'),
  mutant('server:299 && instead of ||', CHECK, 'if (!Number.isSafeInteger(value) && value < min) throw'),
  mutant('server:299 the minimum never checked', CHECK, 'if (!Number.isSafeInteger(value) || false) throw'),
  mutant('server:299 the minimum inclusive refused', CHECK, 'if (!Number.isSafeInteger(value) || value <= min) throw'),
  mutant('server:299 message emptied', '`${name} must be a whole number, ${min} or more, got ${String(value)}`', '``'),
  mutant('server:302 TLS halves never refused', TLS, 'if (false) throw'),
  mutant('server:302 both halves missing only', TLS, 'if (options.tls && (!options.tls.cert && !options.tls.key)) throw'),
  mutant('server:302 message emptied', "'tls needs both cert and key (PEM)'", "''"),
  mutant('server:306 maxConnections named ""', "positive('maxConnections',", "positive('',"),
  mutant('server:307 clientIdleTimeout named ""', "positive('clientIdleTimeout',", "positive('',"),
  mutant('server:308 idleClose named ""', "positive('idleClose',", "positive('',"),
  mutant('server:309 tagTtl named ""', "positive('tagTtl',", "positive('',"),
  mutant('server:308 idleClose minimum 1', "options.idleClose, 30_000, 0)", 'options.idleClose, 30_000)'),
  mutant('server:309 tagTtl minimum 1', "options.tagTtl, 5_000, 0)", 'options.tagTtl, 5_000)'),
];
