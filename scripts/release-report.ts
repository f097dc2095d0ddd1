// Prints test results per Ironic release from vitest's JSON report (make
// test-integration and make e2e write one): tests that drive a conductor are
// named "Ironic <release>: ...", so each release gets its own line, with what failed.
//
//   npx tsx scripts/release-report.ts build/integration-results.json
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface Assertion {
  ancestorTitles: string[];
  title: string;
  status: string;
}
interface Report {
  testResults: Array<{ name: string; assertionResults: Assertion[] }>;
}

const file = process.argv[2];
if (!file) throw new Error('usage: release-report.ts VITEST_JSON');
const report = JSON.parse(readFileSync(file, 'utf8')) as Report;

interface Tally {
  passed: number;
  failed: string[];
  other: number;
  files: Set<string>;
}
const byRelease = new Map<string, Tally>();
let rest = 0;
for (const result of report.testResults) {
  for (const a of result.assertionResults) {
    const release = a.ancestorTitles.map((t) => /^Ironic (\d+\.\d+):/.exec(t)?.[1]).find(Boolean);
    if (!release) {
      rest++;
      continue;
    }
    const t = byRelease.get(release) ?? { passed: 0, failed: [], other: 0, files: new Set<string>() };
    t.files.add(basename(result.name));
    if (a.status === 'passed') t.passed++;
    else if (a.status === 'failed') t.failed.push(`${basename(result.name)} > ${a.title}`);
    else t.other++;
    byRelease.set(release, t);
  }
}

console.log(`\nresults per Ironic release (${basename(file)}):`);
for (const [release, t] of [...byRelease].sort(([a], [b]) => Number(a) - Number(b))) {
  const notRun = t.other ? `, ${t.other} not run` : '';
  console.log(`  Ironic ${release}: ${t.passed} passed, ${t.failed.length} failed${notRun}  (${[...t.files].join(', ')})`);
  for (const f of t.failed) console.log(`    FAILED ${f}`);
}
if (byRelease.size === 0) console.log('  no test named "Ironic <release>: ..." ran');
console.log(`  (${rest} more tests use no conductor)`);
