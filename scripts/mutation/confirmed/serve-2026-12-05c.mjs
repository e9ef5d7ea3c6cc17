// A survivor of Stryker run B3 of 2026-12-05 (`MUTATE_TESTS='unit/*,serve'`,
// after the tests of serve-2026-12-05b.mjs), written down as a must-fail
// mutant. Check with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/serve-2026-12-05c.mjs
// CI does not run this list.
//
// The same break as serve-2026-12-05b's "216:36 every digest served
// converted", which that list killed with its test run alone. In the whole
// file an earlier test had the image cached, so the by-digest fetch never
// reached the check, and the mutant survived B3. The test now fetches an
// image no other test touches; so no `only` here: the whole file must kill it.
export const MUTANTS = [
  {
    name: 'server:215:36 every digest served converted (the whole serve file)',
    file: 'src/serve/server.ts',
    find: "if ('digest' in reference && image.manifest.digest !== reference.digest) {",
    replace: "if ('digest' in reference && true) {",
    test: 'serve',
  },
];
