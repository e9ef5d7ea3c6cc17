/**
 * The benchmark suite: `npm run bench` (tsc, then node .build/bench/run.js).
 * Options come from the environment (see options.ts). Markdown goes to
 * stdout section by section, progress to stderr, and the whole report to
 * bench/RESULTS.md (quick runs: .cache/bench/RESULTS-quick.md).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { describeMachine, probeReleases, readOptions, releasePaths, ROOT, type ScenarioName } from './options.js';
import { Fixtures, prepareFixtures, type Context, type Scenario, type Section } from './scenario.js';
import { concurrency } from './scenarios/concurrency.js';
import { memory } from './scenarios/memory.js';
import { metadata } from './scenarios/metadata.js';
import { network } from './scenarios/network.js';
import { extractToDisk, pullToDisk } from './scenarios/pull.js';
import { realRootfs, tinyFiles } from './scenarios/real-extract.js';
import { scaling } from './scenarios/scaling.js';
import { serve } from './scenarios/serve.js';
import { streaming } from './scenarios/streaming.js';
import { zstd } from './scenarios/zstd.js';
import { table } from './stats.js';

const SCENARIO_FUNCTIONS: Record<ScenarioName, Scenario> = {
  streaming,
  metadata,
  concurrency,
  memory,
  pull: pullToDisk,
  extract: extractToDisk,
  'real-rootfs': realRootfs,
  'tiny-files': tinyFiles,
  scaling,
  zstd,
  network,
  serve,
};

const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const progress = (text: string): void => {
  process.stderr.write(`[bench ${elapsed().padStart(5)}] ${text}\n`);
};

const options = readOptions();
const machine = describeMachine();
progress('probing skopeo releases');
const releases = await probeReleases(releasePaths(options));

progress(`preparing fixtures in ${relative(ROOT, options.cacheDir)}`);
const fixtures = new Fixtures(options.cacheDir);
prepareFixtures(fixtures, options);
if (fixtures.generatedBytes > 0) {
  progress(`generated ${(fixtures.generatedBytes / 1024 ** 3).toFixed(2)} GiB of fixtures in ${fixtures.generatedSeconds.toFixed(1)} s; syncing`);
  // Keep the writeback of fresh fixtures out of the first measurements.
  execFileSync('sync');
}

const header = [
  '# containers-image-proxy benchmarks',
  '',
  `Machine: ${machine.cores} cores, ${machine.memory} RAM, CPU "${machine.cpu}", Linux ${machine.kernel}, Node ${machine.node}, ${machine.python}.`,
  `skopeo: ${releases.map((r) => r.label).join(', ')}.`,
  `Run: ${new Date().toISOString()}, ${options.quick ? '**quick mode** (BENCH_QUICK=1), ' : ''}${options.runs} runs per data point.`,
  'The machine is shared and noisy: compare numbers within one run (ratios are measured in the same rounds), not across runs.',
  '',
].join('\n');
process.stdout.write(`${header}\n`);

const sections: Section[] = [];
const context: Context = { options, releases, fixtures, pythonAvailable: !machine.python.includes('missing'), progress };
for (const [name, scenario] of Object.entries(SCENARIO_FUNCTIONS) as Array<[ScenarioName, Scenario]>) {
  if (!options.only.has(name)) continue;
  progress(`scenario ${name}`);
  const sectionStart = performance.now();
  const section = await scenario(context);
  section.body += `\n\n_Scenario time: ${((performance.now() - sectionStart) / 1000).toFixed(0)} s._`;
  sections.push(section);
  process.stdout.write(`## ${section.title}\n\n${section.body}\n\n`);
}

const goals = sections.flatMap((s) => s.goals);
const summary = [
  '## Goals',
  '',
  goals.length === 0
    ? 'No goal was checked in this run.'
    : table(
        ['scenario', 'goal', 'result', 'met'],
        goals.map((g) => [g.scenario, g.goal, g.result, g.met ? '✅ yes' : '❌ no']),
      ),
  '',
  `Total runtime: ${elapsed()}${fixtures.generatedBytes > 0 ? ` (including ${fixtures.generatedSeconds.toFixed(0)} s of fixture generation)` : ' (fixtures from the cache)'}.`,
  '',
].join('\n');
process.stdout.write(summary);

const report = [header, ...sections.map((s) => `## ${s.title}\n\n${s.body}\n`), summary].join('\n');
mkdirSync(dirname(options.outFile), { recursive: true });
writeFileSync(options.outFile, report);
progress(`wrote ${relative(ROOT, options.outFile)}`);
