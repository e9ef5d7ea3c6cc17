// Surviving mutants that are equivalent: no test can tell them from the
// code, because the behaviour they change cannot happen or cannot be seen
// (a guard the layer below already keeps, an errno Linux never gives here).
// The entries are kept per area in scripts/mutation/equivalent/*.mjs (each
// exports EQUIVALENT, an array). Each names one mutant by what it changes,
// not by line, so it stays true as lines move:
//   file         the source file
//   mutator      Stryker's mutator name (ConditionalExpression, StringLiteral, ...)
//   original     the exact code the mutant replaces (as Stryker reports it:
//                `node scripts/mutation/scores.mjs --survivors`, whitespace
//                across lines folded to one space)
//   replacement  what Stryker puts there
//   why          one line: why no test can kill it
// `node scripts/mutation/scores.mjs` leaves these out of its second score
// column and lists them with their reason under --survivors. An entry that
// matches no surviving mutant, or a killed one, is reported there: remove or
// correct it. Stryker's own `// Stryker disable` comments are not used for
// these: they switch off every mutant of a mutator on a line, killed ones too.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const DIR = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'equivalent');
const lists = await Promise.all(
  readdirSync(DIR)
    .filter((name) => name.endsWith('.mjs'))
    .sort()
    .map((name) => import(join(DIR, name))),
);
export const EQUIVALENT = lists.flatMap((list) => list.EQUIVALENT);
