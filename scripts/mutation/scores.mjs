#!/usr/bin/env node
// Prints the mutation score per file of the last `npm run mutate` as a
// Markdown table (for MUTATION.md), from reports/mutation/mutation.json.
//   node scripts/mutation/scores.mjs [REPORT] [--survivors]
// Score = (killed + timeout) / (killed + timeout + survived + no coverage);
// mutants that do not compile or crash the runner, and ignored ones, do not count.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const report = JSON.parse(readFileSync(args.find((arg) => !arg.startsWith('--')) ?? 'reports/mutation/mutation.json', 'utf8'));
const rows = [];
const total = { killed: 0, timeout: 0, survived: 0, noCoverage: 0, invalid: 0, ignored: 0 };
for (const [file, { mutants }] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
  const count = { killed: 0, timeout: 0, survived: 0, noCoverage: 0, invalid: 0, ignored: 0 };
  for (const mutant of mutants) {
    const key = { Killed: 'killed', Timeout: 'timeout', Survived: 'survived', NoCoverage: 'noCoverage', Ignored: 'ignored' }[mutant.status] ?? 'invalid';
    count[key]++;
    total[key]++;
  }
  rows.push([file, count]);
}
const score = (c) => {
  const valid = c.killed + c.timeout + c.survived + c.noCoverage;
  return valid === 0 ? 'n/a' : `${((100 * (c.killed + c.timeout)) / valid).toFixed(1)}%`;
};
console.log('| file | score | killed | timeout | survived | no coverage | ignored | not compiling |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const [file, c] of [...rows, ['**all**', total]]) {
  console.log(`| ${file} | ${score(c)} | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.ignored} | ${c.invalid} |`);
}
if (args.includes('--survivors')) {
  for (const [file, { source, mutants }] of Object.entries(report.files)) {
    const lines = source.split('\n');
    for (const mutant of mutants.filter((m) => m.status === 'Survived' || m.status === 'NoCoverage')) {
      const { start } = mutant.location;
      console.log(`${file}:${start.line}:${start.column} ${mutant.status} ${mutant.mutatorName}: ${lines[start.line - 1]?.trim()}  =>  ${mutant.replacement ?? ''}`);
    }
  }
}
