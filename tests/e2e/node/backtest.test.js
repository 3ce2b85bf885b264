// SPDX-License-Identifier: Apache-2.0
// Issue 22: `painwatch backtest` against the daemon itself. The same data is given to painwatchd
// (through the reference FHIR server, two --once runs with a change in between) and, exported
// from that server as a Bulk Data directory (one NDJSON file per type), to the backtest over the
// same period: the episodes the backtest counts are exactly the Flags the daemon posted and
// resolved (same episode keys, per rule). Run on the generated demo cohort and on the trimmed
// Synthea patients. Also: `painwatch report` over a shadow-mode run equals the Flags it wrote.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { E2E_DIR, serverBase, fhir, searchAll } = require('./support.js');
const { generate, ARCHETYPES } = require(path.join(E2E_DIR, 'cohort/generate.js'));
const { loadCohort } = require(path.join(E2E_DIR, 'cohort/load.js'));
const { flagFinding } = require(path.join(E2E_DIR, 'cohort/compare.js'));
const M = require(path.join(E2E_DIR, 'cohort/mutations.js'));

const PAINWATCHD = process.env.PAINWATCHD;
const PAINWATCH = process.env.PAINWATCH;
const TYPES = ['Observation', 'MedicationRequest', 'MedicationAdministration', 'Condition', 'ServiceRequest', 'Encounter'];
const EPISODE_SYSTEM = 'urn:painwatch:flag-episode';

function config(dir, base, extra = '') {
  const file = path.join(dir, 'painwatch.yaml');
  fs.writeFileSync(
    file,
    [
      `state_dir: ${path.join(dir, 'state')}`,
      extra.includes('shadow_mode') ? '' : 'shadow_mode: false',
      'audit: {allow_local_key: true}',
      'servers:',
      '  - name: ehr',
      `    base_url: ${base}`,
      '    auth: {type: none}',
      '    cohort: {type: group, group: Group/painwatch-cohort}',
      `    resources: [${TYPES.join(', ')}]`,
      extra.includes('sink:') ? '' : 'sink: {type: fhir-flag}',
      extra,
    ].join('\n') + '\n',
  );
  return file;
}

function runOnce(cfg) {
  return new Promise((resolve, reject) => {
    const child = spawn(PAINWATCHD, ['--config', cfg, '--once'], {
      env: { ...process.env, PAINWATCH_LOG_LEVEL: 'notice' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stderr) : reject(new Error(`painwatchd exited ${code}:\n${stderr.slice(-3000)}`))));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function painwatch(args) {
  const r = spawnSync(PAINWATCH, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return r;
}

/** The server's data as a Bulk Data export: DIR/<Type>.ndjson (what $export writes). */
async function exportBulk(base, dir) {
  fs.mkdirSync(dir, { recursive: true });
  for (const type of ['Patient', 'Medication', ...TYPES]) {
    const { entries } = await searchAll(base, `/${type}?_count=200`, 1000);
    fs.writeFileSync(path.join(dir, `${type}.ndjson`), entries.map((e) => JSON.stringify(e.resource)).join('\n') + (entries.length ? '\n' : ''));
  }
}

/** The daemon's Flags: keys posted and keys resolved, per rule. */
async function daemonEpisodes(base) {
  const flags = (await searchAll(base, '/Flag?_count=200', 1000)).entries.map((e) => e.resource);
  const out = { posted: [], resolved: [], byRule: {} };
  for (const f of flags) {
    const id = (f.identifier || []).find((x) => x.system === EPISODE_SYSTEM);
    if (!id) continue;
    const rule = flagFinding(f).rule;
    out.posted.push(id.value);
    out.byRule[rule] = (out.byRule[rule] || 0) + 1;
    if (f.status !== 'active') out.resolved.push(id.value);
  }
  out.posted.sort();
  out.resolved.sort();
  return out;
}

function backtestEpisodes(doc) {
  const out = { posted: [], resolved: [], byRule: {} };
  for (const p of doc.patient_episodes) {
    for (const e of p.episodes) {
      out.posted.push(e.key);
      if (e.end !== null) out.resolved.push(e.key);
    }
  }
  for (const r of doc.rules) if (r.episodes > 0) out.byRule[r.rule] = r.episodes;
  out.posted.sort();
  out.resolved.sort();
  return out;
}

/** Load, run the daemon twice around a change, export, backtest the same period, compare. */
async function daemonVersusBacktest(t, { base, dir, load, members, change }) {
  await fhir(base, 'POST', '/_admin/reset');
  await load();
  const ids = await members();
  await fhir(base, 'PUT', '/Group/painwatch-cohort', {
    resourceType: 'Group',
    id: 'painwatch-cohort',
    type: 'person',
    actual: true,
    member: ids.map((id) => ({ entity: { reference: `Patient/${id}` } })),
  });
  const cfg = config(dir, base);
  // The daemon evaluates at its wall clock: the period starts on the second (the backtest
  // reads whole seconds) after the first run began, and ends when the second run began.
  const start1 = Math.ceil(Date.now() / 1000) * 1000;
  await sleep(start1 - Date.now() + 10);
  await runOnce(cfg);
  await sleep(1100);
  const changedAt = Math.floor(Date.now() / 1000) * 1000;
  await change(changedAt);
  await sleep(1100);
  const start2 = Math.floor(Date.now() / 1000) * 1000;
  await runOnce(cfg);
  const daemon = await daemonEpisodes(base);

  const bulk = path.join(dir, 'export');
  await exportBulk(base, bulk);
  const r = painwatch(['backtest', '--config', cfg, '--from', iso(start1), '--to', iso(start2), '--step', '1h', '--format', 'json', '--synced', TYPES.join(','), bulk]);
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  const bt = backtestEpisodes(doc);
  assert.ok(daemon.posted.length > 0, 'the daemon posted Flags');
  if (process.env.PW_BACKTEST_DEBUG) console.error(JSON.stringify({ daemon, backtest: doc.patient_episodes, flags: (await searchAll(base, '/Flag?_count=200', 1000)).entries.map((e) => [e.resource.status, e.resource.identifier, e.resource.period, e.resource.subject]) }, null, 1));
  assert.deepEqual(bt.byRule, daemon.byRule, 'episodes per rule = Flags the daemon posted per rule');
  assert.deepEqual(bt.posted, daemon.posted, 'the same episode keys as the Flags posted');
  assert.deepEqual(bt.resolved, daemon.resolved, 'the same episodes resolved as the daemon resolved');
  // Deterministic: the same input and options give the same bytes.
  const again = painwatch(['backtest', '--config', cfg, '--from', iso(start1), '--to', iso(start2), '--format', 'json', '--synced', TYPES.join(','), bulk]);
  assert.equal(again.stdout, r.stdout);
  return { doc, daemon, cfg };
}

test('backtest = daemon: the demo cohort', { skip: (!PAINWATCHD || !PAINWATCH) && 'PAINWATCHD/PAINWATCH not set', timeout: 1800000 }, async (t) => {
  const base = serverBase();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-demo-'));
  const cohort = path.join(dir, 'cohort');
  fs.mkdirSync(cohort);
  const list = generate({ patients: ARCHETYPES.length, seed: 'backtest', anchor: new Date(Date.now() - 5000) });
  for (const p of list) fs.writeFileSync(path.join(cohort, `${p.id}.bundle.json`), JSON.stringify(p.bundle));
  const pick = (rule) => list.find((p) => p.expected.expected.some((x) => x.rule === rule));
  const { doc } = await daemonVersusBacktest(t, {
    base,
    dir,
    load: () => loadCohort(base, cohort),
    members: async () => list.map((p) => p.id),
    change: async (at) => {
      const lax = pick('bowel-regimen-missing');
      const high = pick('reassessment-overdue-after-high-score');
      for (const change of [M.addLaxative(lax.id, at), M.addPainScore(high.id, 3, at)]) {
        const res = await fhir(base, 'POST', '/', change);
        assert.equal(res.status, 200);
      }
    },
  });
  assert.ok(doc.rules.filter((r) => r.episodes > 0).length >= 10, 'most rules fire in the demo cohort');
  assert.ok(doc.patient_episodes.some((p) => p.episodes.some((e) => e.end !== null)), 'an episode resolved');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('backtest = daemon: the trimmed Synthea patients', { skip: (!PAINWATCHD || !PAINWATCH) && 'PAINWATCHD/PAINWATCH not set', timeout: 1800000 }, async (t) => {
  const base = serverBase();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-synthea-'));
  const sdir = path.join(E2E_DIR, 'synthea');
  const ids = [];
  await daemonVersusBacktest(t, {
    base,
    dir,
    load: async () => {
      for (const f of fs.readdirSync(sdir).filter((x) => x.endsWith('.json')).sort()) {
        const r = await fhir(base, 'POST', '/', JSON.parse(fs.readFileSync(path.join(sdir, f), 'utf8')));
        assert.equal(r.status, 200, f);
        ids.push(r.body.entry.find((e) => e.resource && e.resource.resourceType === 'Patient').resource.id);
      }
    },
    members: async () => ids,
    change: async (at) => {
      const res = await fhir(base, 'POST', '/', M.addPainScore(ids[0], 8, at));
      assert.equal(res.status, 200);
    },
  });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('report: a shadow-mode period summarised = the Flags it wrote to the file', { skip: (!PAINWATCHD || !PAINWATCH) && 'PAINWATCHD/PAINWATCH not set', timeout: 1800000 }, async () => {
  const base = serverBase();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-report-'));
  const cohort = path.join(dir, 'cohort');
  fs.mkdirSync(cohort);
  await fhir(base, 'POST', '/_admin/reset');
  const list = generate({ patients: 15, seed: 'report', anchor: new Date() });
  for (const p of list) fs.writeFileSync(path.join(cohort, `${p.id}.bundle.json`), JSON.stringify(p.bundle));
  await loadCohort(base, cohort);
  await fhir(base, 'PUT', '/Group/painwatch-cohort', { resourceType: 'Group', id: 'painwatch-cohort', type: 'person', actual: true, member: list.map((p) => ({ entity: { reference: `Patient/${p.id}` } })) });
  const file = path.join(dir, 'shadow.ndjson');
  const cfg = config(dir, base, `shadow_mode: true\nsink: {type: fhir-flag, file: ${file}}`);
  await runOnce(cfg);
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const trail = path.join(dir, 'state', 'audit', 'painwatch-audit.jsonl');
  const r = painwatch(['report', '--format', 'json', '--audit', trail, file]);
  assert.equal(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.source, 'report');
  assert.equal(doc.episodes, lines.filter((l) => l.op === 'create').length);
  assert.equal(doc.patients, list.length, 'every cohort patient counted (audit trail)');
  const sev = {};
  for (const p of doc.patient_episodes) for (const e of p.episodes) sev[e.severity] = (sev[e.severity] || 0) + 1;
  assert.ok((sev.high || 0) + (sev.medium || 0) + (sev.low || 0) > 0, 'severities read from the audit trail');
  // Bad input: named by file and line, exit 2, no crash.
  fs.writeFileSync(path.join(dir, 'bad.ndjson'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n{"op": oops}\n');
  const bad = painwatch(['report', path.join(dir, 'bad.ndjson')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, new RegExp(`bad\\.ndjson:${lines.length + 1}:`));
  fs.rmSync(dir, { recursive: true, force: true });
});
