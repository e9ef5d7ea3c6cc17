// The survivors and no-coverage mutants of Stryker run G of 2026-12-05
// (MUTATION.md) on src/retry.ts and src/config.ts that new tests kill,
// written down as must-fail mutants (names: the line in that run's report).
// Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/core-2026-12-05.mjs
// Some are also in the CI list (must-fail-mutants.mjs); CI does not run this one.
export const MUTANTS = [
  {"name":"retry:82 the retrying stream takes Node's default high-water mark","file":"src/retry.ts","find":"super({ highWaterMark: first.readableHighWaterMark });","replace":"super({});","test":"unit/retry","only":"backpressure"},
  {"name":"retry:101 _read never resumes the attempt","file":"src/retry.ts","find":"override _read(): void {\n    this.#inner.resume();\n  }","replace":"override _read(): void {}","test":"unit/retry","only":"backpressure"},
  {"name":"retry:114 a full buffer never pauses the attempt","file":"src/retry.ts","find":"if (!this.push(chunk)) inner.pause();","replace":"if (this.push(chunk)) inner.pause();","test":"unit/retry","only":"backpressure"},
  {"name":"retry:121 a destroyed stream still handles its attempt's failure","file":"src/retry.ts","find":"if (this.destroyed) return;\n    if (this.#emitted > 0","replace":"if (false) return;\n    if (this.#emitted > 0","test":"unit/retry","only":"backpressure"},
  {"name":"config: 112 needsFeatureProbe always true","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return true;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 needsFeatureProbe always false","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return false;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 || -> &&","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return config.userAgentPrefix !== undefined && (config.decryptionKeys?.length ?? 0) > 0;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 prefix test false","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return false || (config.decryptionKeys?.length ?? 0) > 0;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 prefix === undefined","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return config.userAgentPrefix === undefined || (config.decryptionKeys?.length ?? 0) > 0;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 keys test false","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return config.userAgentPrefix !== undefined || false;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 keys >= 0","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) >= 0;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 112 keys <= 0","file":"src/config.ts","find":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) > 0;","replace":"return config.userAgentPrefix !== undefined || (config.decryptionKeys?.length ?? 0) <= 0;","test":"unit/config","only":"needsFeatureProbe"},
  {"name":"config: 127 skopeoCommand part type unchecked","file":"src/config.ts","find":"prefix.some((part) => typeof part !== 'string' || part === '')","replace":"prefix.some((part) => false || part === '')","test":"unit/config","only":"wrong type"},
  {"name":"config: 188 authAnonymous: false counted as a choice","file":"src/config.ts","find":"key === 'authAnonymous' ? config.authAnonymous === true","replace":"false ? config.authAnonymous === true","test":"unit/config","only":"authAnonymous: false"},
  {"name":"config: 201 registry type unchecked","file":"src/config.ts","find":"if (typeof registry !== 'string' || !/^","replace":"if (false || !/^","test":"unit/config","only":"wrong type"},
  {"name":"config: 201 registry path of one character","file":"src/config.ts","find":"(\\/[^\\s]*)?$/.test(registry)","replace":"(\\/[^\\s])?$/.test(registry)","test":"unit/config","only":"namespace path"},
  {"name":"config: 201 registry path of spaces","file":"src/config.ts","find":"(\\/[^\\s]*)?$/.test(registry)","replace":"(\\/[\\s]*)?$/.test(registry)","test":"unit/config","only":"namespace path"},
  {"name":"config: 201 registry path [^\\S]","file":"src/config.ts","find":"(\\/[^\\s]*)?$/.test(registry)","replace":"(\\/[^\\S]*)?$/.test(registry)","test":"unit/config","only":"namespace path"},
  {"name":"config: 204 username type unchecked","file":"src/config.ts","find":"if (typeof username !== 'string' || username === ''","replace":"if (false || username === ''","test":"unit/config","only":"wrong type"},
  {"name":"config: 204 password type unchecked","file":"src/config.ts","find":"username.includes(':') || typeof password !== 'string') {","replace":"username.includes(':') || false) {","test":"unit/config","only":"wrong type"},
  {"name":"config: 217 path type unchecked","file":"src/config.ts","find":"if (typeof value !== 'string' || value === '') throw","replace":"if (false || value === '') throw","test":"unit/config","only":"wrong type"},
  {"name":"config: 222 word type unchecked","file":"src/config.ts","find":"if (typeof value !== 'string' || !/^[A-Za-z0-9_.]+$/.test(value))","replace":"if (false || !/^[A-Za-z0-9_.]+$/.test(value))","test":"unit/config","only":"wrong type"},
];
