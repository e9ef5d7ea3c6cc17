#!/usr/bin/env node
// Prints the mutation score per file as a Markdown table (for MUTATION.md),
// from the results that every `npm run mutate` adds to:
// .cache/mutation/incremental.json (stryker.config.mjs). Each run keeps the
// results of the files outside its --mutate scope, so the table covers every
// chunk run so far, in any worktree of this machine, until a file's code
// changes under its mutants.
//   node scripts/mutation/scores.mjs [REPORT.json] [--survivors] [--only PATH-PREFIX]
// REPORT: another report of the same schema, e.g. reports/mutation/mutation.json
// (the last run's). --only: the files whose path starts with it (e.g. src/extract/).
// Score = (killed + timeout) / (killed + timeout + survived + no coverage);
// mutants that do not compile or crash the runner, and ignored ones, do not count.
// The second score also leaves out the surviving mutants listed as equivalent,
// with their reasons, in scripts/mutation/equivalent.mjs.
// The files of src/ with no result yet are listed under the table: until
// there are none, the "all" row is the score of the chunks run, not of src/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EQUIVALENT } from './equivalent.mjs';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const DEFAULT = join(ROOT, '.cache', 'mutation', 'incremental.json');
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : '';
const path = args.find((arg, i) => !arg.startsWith('--') && args[i - 1] !== '--only') ?? DEFAULT;
if (!existsSync(path)) {
  console.error(`scores: no results at ${path}: run \`npm run mutate -- --mutate FILE\` first (MUTATION.md)`);
  process.exit(2);
}
const report = JSON.parse(readFileSync(path, 'utf8'));
// Keys are relative to the directory Stryker ran in (older reports: absolute).
const relativeName = (file) => (file.startsWith('/') ? relative(report.projectRoot ?? ROOT, file) : file);
const files = Object.entries(report.files)
  .map(([file, result]) => [relativeName(file), result])
  .filter(([file]) => file.startsWith(only))
  .sort(([a], [b]) => a.localeCompare(b));

const STATUS = { Killed: 'killed', Timeout: 'timeout', Survived: 'survived', NoCoverage: 'noCoverage', Ignored: 'ignored' };
const empty = () => ({ killed: 0, timeout: 0, survived: 0, noCoverage: 0, equivalent: 0, invalid: 0, ignored: 0 });
const total = empty();
const rows = [];
/** The code a mutant replaces, its lines folded to one (as equivalent.mjs names it). */
function originalText(lines, { start, end }) {
  const text =
    start.line === end.line
      ? lines[start.line - 1]?.slice(start.column - 1, end.column - 1)
      : [lines[start.line - 1]?.slice(start.column - 1), ...lines.slice(start.line, end.line - 1), lines[end.line - 1]?.slice(0, end.column - 1)].join('\n');
  return (text ?? '').replace(/\s*\n\s*/g, ' ');
}
const matches = (entry, file, mutant, original) =>
  entry.file === file && entry.mutator === mutant.mutatorName && entry.original === original && entry.replacement === (mutant.replacement ?? '');
/** Per entry of EQUIVALENT: the mutants it matched, by status. */
const matched = EQUIVALENT.map(() => []);
for (const [file, { source, mutants }] of files) {
  const lines = source.split('\n');
  const count = empty();
  for (const mutant of mutants) {
    let key = STATUS[mutant.status] ?? 'invalid'; // CompileError, RuntimeError (Pending: never written)
    const original = originalText(lines, mutant.location);
    EQUIVALENT.forEach((entry, i) => {
      if (!matches(entry, file, mutant, original)) return;
      matched[i].push(mutant.status);
      if (key === 'survived' || key === 'noCoverage') {
        key = 'equivalent';
        mutant.equivalent = entry.why;
      }
    });
    count[key]++;
    total[key]++;
  }
  rows.push([file, count]);
}
const score = (c, withEquivalent) => {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage + (withEquivalent ? c.equivalent : 0);
  return valid === 0 ? 'n/a' : `${((100 * (c.killed + c.timeout)) / valid).toFixed(1)}%`;
};
console.log(`Results: ${relative(process.cwd(), path) || path}`);
console.log('| file | score | equivalent left out | killed | timeout | survived | no coverage | equivalent | ignored | not compiling |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [file, c] of [...rows, ['**all**', total]]) {
  console.log(`| ${file} | ${score(c, true)} | ${score(c, false)} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.equivalent} | ${c.ignored} | ${c.invalid} |`);
}

/** The .ts files under src/ (the config's `mutate`), relative to the root. */
function sources(dir) {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}
const scored = new Set(files.map(([file]) => file));
const missing = sources('src')
  .filter((file) => file.startsWith(only) && !scored.has(file))
  .sort();
if (missing.length > 0) {
  console.log(`\nNo results yet for ${missing.length} file(s) (files with no mutant at all, such as type-only ones, stay here):`);
  for (const file of missing) console.log(`- ${file}`);
}

if (args.includes('--survivors')) {
  console.log('');
  for (const [file, { source, mutants }] of files) {
    const lines = source.split('\n');
    const left = mutants
      .filter((m) => m.status === 'Survived' || m.status === 'NoCoverage')
      .sort((a, b) => a.location.start.line - b.location.start.line || a.location.start.column - b.location.start.column);
    for (const mutant of left) {
      const { start } = mutant.location;
      const original = originalText(lines, mutant.location);
      const status = mutant.equivalent ? `${mutant.status} (equivalent: ${mutant.equivalent})` : mutant.status;
      console.log(`${file}:${start.line}:${start.column} ${status} ${mutant.mutatorName}: ${original.length > 160 ? `${original.slice(0, 160)}…` : original}  =>  ${mutant.replacement ?? ''}`);
    }
  }
  // Entries of files in these results that match no surviving mutant.
  const inScope = new Set(files.map(([file]) => file));
  EQUIVALENT.forEach((entry, i) => {
    if (!inScope.has(entry.file)) return;
    const statuses = matched[i];
    if (!statuses.some((status) => status === 'Survived' || status === 'NoCoverage')) {
      console.log(`equivalent.mjs: ${entry.file} ${entry.mutator} ${JSON.stringify(entry.original)} => ${JSON.stringify(entry.replacement)} matches ${statuses.length === 0 ? 'no mutant' : `only ${statuses.join(', ')} mutants`}: remove or correct it`);
    }
  });
}
