// SPDX-License-Identifier: Apache-2.0
// Issue 22: `painwatch backtest --jobs N` splits the patients over N worker processes; the output
// is byte-identical whatever N (json; text and html for 1 and 2), on the generated demo cohort (as Bundles
// and as a Bulk Data export) and on the trimmed Synthea patients. Bad input is still named
// (file:line) with exit 2 when the workers read it, and --jobs is checked.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { E2E_DIR } = require('./support.js');
const { generate, ARCHETYPES } = require(path.join(E2E_DIR, 'cohort/generate.js'));

const PAINWATCH = process.env.PAINWATCH;
const skip = !PAINWATCH && 'PAINWATCH not set';

function painwatch(args) {
  return spawnSync(PAINWATCH, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

/** The demo cohort (fixed anchor) as one Bundle per patient and as a Bulk Data export. */
function demo(dir) {
  const list = generate({ patients: ARCHETYPES.length * 2, seed: 'backtest-jobs', anchor: new Date('2026-11-30T12:00:00Z') });
  const bundles = path.join(dir, 'bundles');
  const bulk = path.join(dir, 'export');
  fs.mkdirSync(bundles);
  fs.mkdirSync(bulk);
  const byType = {};
  list.forEach((p, i) => {
    fs.writeFileSync(path.join(bundles, `p${String(i).padStart(3, '0')}.json`), JSON.stringify(p.bundle));
    for (const e of p.bundle.entry) {
      (byType[e.resource.resourceType] = byType[e.resource.resourceType] || []).push(JSON.stringify(e.resource));
    }
  });
  for (const [type, lines] of Object.entries(byType)) fs.writeFileSync(path.join(bulk, `${type}.ndjson`), lines.join('\n') + '\n');
  return {
    bundles: fs.readdirSync(bundles).sort().map((f) => path.join(bundles, f)),
    bulk,
  };
}

/** The output of every --jobs in @p jobs is the same bytes; @return the --jobs 1 output. */
function sameForAnyJobs(args, jobs = [1, 2, 3], withDefault = true) {
  const outs = jobs.map((n) => {
    const r = painwatch(['backtest', '--jobs', String(n), ...args]);
    assert.equal(r.status, 0, `--jobs ${n}: ${r.stderr}`);
    return r.stdout;
  });
  for (let i = 1; i < jobs.length; i++) assert.equal(outs[i], outs[0], `--jobs ${jobs[i]} differs from --jobs ${jobs[0]}`);
  if (withDefault) {
    const dflt = painwatch(['backtest', ...args]);
    assert.equal(dflt.status, 0, dflt.stderr);
    assert.equal(dflt.stdout, outs[0], 'the default --jobs differs from --jobs 1');
  }
  return outs[0];
}

test('demo cohort: the same output for --jobs 1, 2, 3 and the default', { skip, timeout: 600000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-jobs-'));
  const { bundles, bulk } = demo(dir);
  const period = ['--from', '2026-11-23T00:00:00Z', '--to', '2026-12-01T00:00:00Z', '--step', '1h'];
  for (const input of [bundles, [bulk]]) {
    const doc = JSON.parse(sameForAnyJobs([...period, '--format', 'json', ...input]));
    // Not vacuous: several patients with episodes, so every worker has a share to merge.
    assert.ok(doc.patients >= 10, `patients ${doc.patients}`);
    assert.ok(doc.episodes >= 5, `episodes ${doc.episodes}`);
    assert.ok(doc.top_patients.length >= 3, 'top patients (charts) merged from the workers');
    sameForAnyJobs([...period, '--format', 'text', ...input], [1, 2], false);
    sameForAnyJobs([...period, '--format', 'html', ...input], [1, 2], false);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('Synthea patients: the same output for --jobs 1 and 2', { skip, timeout: 600000 }, () => {
  const sdir = path.join(E2E_DIR, 'synthea');
  const files = fs.readdirSync(sdir).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(sdir, f));
  const doc = JSON.parse(sameForAnyJobs(['--lookback', '0', '--format', 'json', ...files], [1, 2], false));
  assert.equal(doc.patients, files.length);
  assert.ok(doc.episodes > 0, 'the Synthea patients have episodes');
});

test('--jobs: bad input named by every worker count; bad values refused', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-jobs-'));
  const bad = path.join(dir, 'bad.ndjson');
  fs.writeFileSync(bad, '{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/a"}}\n{"broken\n');
  for (const n of ['1', '2']) {
    const r = painwatch(['backtest', '--jobs', n, bad]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /bad\.ndjson:2/);
  }
  for (const v of ['0', '-1', 'x', '65']) {
    const r = painwatch(['backtest', '--jobs', v, bad]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--jobs/);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
