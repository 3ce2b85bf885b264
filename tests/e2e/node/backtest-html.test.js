// SPDX-License-Identifier: Apache-2.0
// Issue 22: the backtest's HTML report rendered by headless Chromium (Debian's chromium): no
// console messages, no scripts or external assets, as many SVG charts and table rows in the
// browser's DOM as the JSON output implies, and a PNG screenshot kept as the test's artefact
// (build/.../backtest-report.png; tests/e2e/backtest-report.png in the repository is one of them).
// Also: bad input is named (file:line, resource id) with exit 2, never a crash.
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
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
const SOURCE = process.env.PW_SOURCE_DIR || path.resolve(E2E_DIR, '../..');

function painwatch(args) {
  return spawnSync(PAINWATCH, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

function chromium(dir, action, url) {
  const profile = path.join(dir, 'chromium-profile');
  fs.rmSync(profile, { recursive: true, force: true });
  return spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-extensions',
      '--enable-logging=stderr',
      '--v=0',
      `--user-data-dir=${profile}`,
      '--window-size=1280,2000',
      '--virtual-time-budget=2000',
      action,
      url,
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
}

const count = (s, needle) => s.split(needle).length - 1;

/** A fixed cohort (fixed anchor: the same bytes every run) as a Bulk Data export directory. */
function bulkExport(dir) {
  const list = generate({ patients: ARCHETYPES.length, seed: 'backtest-html', anchor: new Date('2026-11-30T12:00:00Z') });
  const byType = {};
  for (const p of list) {
    for (const e of p.bundle.entry) {
      (byType[e.resource.resourceType] = byType[e.resource.resourceType] || []).push(JSON.stringify(e.resource));
    }
  }
  const out = path.join(dir, 'export');
  fs.mkdirSync(out);
  for (const [type, lines] of Object.entries(byType)) fs.writeFileSync(path.join(out, `${type}.ndjson`), lines.join('\n') + '\n');
  return out;
}

test('backtest --format html in headless Chromium', { skip: (!PAINWATCH && 'PAINWATCH not set') || (!CHROMIUM && 'chromium is not installed'), timeout: 600000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-html-'));
  const bulk = bulkExport(dir);
  const period = ['--from', '2026-11-23T00:00:00Z', '--to', '2026-12-01T00:00:00Z', '--step', '1h'];
  const json = painwatch(['backtest', ...period, '--format', 'json', bulk]);
  assert.equal(json.status, 0, json.stderr);
  const doc = JSON.parse(json.stdout);
  const html = path.join(dir, 'report.html');
  const r = painwatch(['backtest', ...period, '--format', 'html', '--out', html, bulk]);
  assert.equal(r.status, 0, r.stderr);
  const page = fs.readFileSync(html, 'utf8');
  assert.ok(doc.top_patients.length > 0 && doc.episodes > 0, 'the cohort has episodes to draw');
  // Self-contained: no scripts, nothing fetched.
  assert.equal(count(page, '<script'), 0);
  assert.doesNotMatch(page, /\s(src|href)=/);
  assert.match(page, /@page\{size:A4 landscape\}/);

  const dom = chromium(dir, '--dump-dom', `file://${html}`);
  assert.equal(dom.status, 0, dom.stderr);
  assert.doesNotMatch(dom.stderr, /:CONSOLE/, 'console messages while rendering the report');
  // One chart of episodes per day, one timeline per top patient.
  assert.equal(count(dom.stdout, '<svg'), 1 + doc.top_patients.length);
  // Table rows: the header of each table, one row per rule, one per top patient.
  assert.equal(count(dom.stdout, '<tr'), 2 + doc.rules.length + doc.top_patients.length);
  // Each rule's episodes are in its row; the per-day chart has a column per day.
  for (const rule of doc.rules) assert.ok(dom.stdout.includes(`<td>${rule.rule}</td><td>${rule.episodes}</td>`), rule.rule);
  const perDay = dom.stdout.slice(dom.stdout.indexOf('<svg'), dom.stdout.indexOf('</svg>'));
  assert.equal(count(perDay, '<rect '), doc.episodes_per_day.length);
  // Each top patient's timeline: a bar per episode.
  const episodes = new Map(doc.patient_episodes.map((p) => [p.patient, p.episodes.length]));
  for (const top of doc.top_patients) assert.equal(top.episodes, episodes.get(top.patient));

  const png = path.join(process.env.PW_BINARY_DIR || dir, 'backtest-report.png');
  fs.rmSync(png, { force: true });
  const shot = chromium(dir, `--screenshot=${png}`, `file://${html}`);
  assert.equal(shot.status, 0, shot.stderr);
  const head = fs.readFileSync(png);
  assert.ok(head.length > 10000);
  assert.deepEqual([...head.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  console.log(`backtest report screenshot: ${png}`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('backtest: bad input is named, exit 2, never a crash', { skip: !PAINWATCH && 'PAINWATCH not set' }, () => {
  const fx = path.join(SOURCE, 'tests/fixtures/fhir/check');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-bad-'));
  const cases = [
    [[path.join(fx, 'broken.ndjson')], /broken\.ndjson:3:\d+: /],
    [[path.join(fx, 'broken.json')], /broken\.json:5:\d+: /],
    [[path.join(fx, 'not-a-resource.json')], /not-a-resource\.json: top level, Bundle\/\(no id\) entry 0 \(id no-type\): not a FHIR resource/],
    [[path.join(dir, 'absent.ndjson')], /absent\.ndjson: No such file/],
    [[dir], /no \*\.ndjson files/],
    [['--from', 'yesterday', path.join(fx, 'resources.ndjson')], /--from 'yesterday'/],
    [['--step', '0s', path.join(fx, 'resources.ndjson')], /--step '0s'/],
    [['--format', 'pdf', path.join(fx, 'resources.ndjson')], /--format must be/],
  ];
  fs.mkdirSync(path.join(dir, 'export'));
  fs.writeFileSync(path.join(dir, 'export', 'Observation.ndjson'), '{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p"}}\n[1,2]\n');
  cases.push([[path.join(dir, 'export')], /Observation\.ndjson: line 2: not a FHIR resource/]);
  for (const [args, re] of cases) {
    const r = painwatch(['backtest', ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  // report: the same for the shadow file and the audit trail.
  fs.writeFileSync(path.join(dir, 'shadow.ndjson'), '{"time":"2026-12-01T00:00:00Z","op":"create"}\n');
  const r = painwatch(['report', path.join(dir, 'shadow.ndjson')]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /shadow\.ndjson:1: not a file sink line/);
  fs.rmSync(dir, { recursive: true, force: true });
});
