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
// The files of src/ with no result yet are listed under the table: until
// there are none, the "all" row is the score of the chunks run, not of src/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
const empty = () => ({ killed: 0, timeout: 0, survived: 0, noCoverage: 0, invalid: 0, ignored: 0 });
const total = empty();
const rows = [];
for (const [file, { mutants }] of files) {
  const count = empty();
  for (const mutant of mutants) {
    const key = STATUS[mutant.status] ?? 'invalid'; // CompileError, RuntimeError (Pending: never written)
    count[key]++;
    total[key]++;
  }
  rows.push([file, count]);
}
const score = (c) => {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage;
  return valid === 0 ? 'n/a' : `${((100 * (c.killed + c.timeout)) / valid).toFixed(1)}%`;
};
console.log(`Results: ${relative(process.cwd(), path) || path}`);
console.log('| file | score | killed | timeout | survived | no coverage | ignored | not compiling |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const [file, c] of [...rows, ['**all**', total]]) {
  console.log(`| ${file} | ${score(c)} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.ignored} | ${c.invalid} |`);
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
    // The mutated text itself: several mutants may start at one column (`a` and `a || b`).
    const text = ({ start, end }) =>
      start.line === end.line
        ? lines[start.line - 1]?.slice(start.column - 1, end.column - 1)
        : [lines[start.line - 1]?.slice(start.column - 1), ...lines.slice(start.line, end.line - 1), lines[end.line - 1]?.slice(0, end.column - 1)].join('\n');
    for (const mutant of left) {
      const { start } = mutant.location;
      const original = text(mutant.location).replace(/\s*\n\s*/g, ' ');
      console.log(`${file}:${start.line}:${start.column} ${mutant.status} ${mutant.mutatorName}: ${original.length > 160 ? `${original.slice(0, 160)}…` : original}  =>  ${mutant.replacement ?? ''}`);
    }
  }
}
