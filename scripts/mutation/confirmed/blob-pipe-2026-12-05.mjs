// The survivors of Stryker runs BP and BP2 of 2026-12-05 (MUTATION.md) on
// src/blobs/blob-pipe.ts that test/unit/blob-pipe.test.ts now kills, written
// down as must-fail mutants (names: the line and column in that run's
// report). CI does not run this list. Check them with
//   node scripts/mutation/must-fail.mjs --mutants scripts/mutation/confirmed/blob-pipe-2026-12-05.mjs
export const MUTANTS = [
  {"name":"53:23 never off the main thread","file":"src/blobs/blob-pipe.ts","find":"const offThread = options.algorithm !== undefined && (options.hashOffThread ?? offThreadHashing);","replace":"const offThread = false;","test":"unit/blob-pipe"},
  {"name":"53:59 off the main thread only when asked","file":"src/blobs/blob-pipe.ts","find":"const offThread = options.algorithm !== undefined && (options.hashOffThread ?? offThreadHashing);","replace":"const offThread = options.algorithm !== undefined && (options.hashOffThread && offThreadHashing);","test":"unit/blob-pipe"},
  {"name":"47:13 (run BP2) made flowing","file":"src/blobs/blob-pipe.ts","find":"#paused = true; // until","replace":"#paused = false; // until","test":"unit/blob-pipe"},
];
