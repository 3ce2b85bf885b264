// SPDX-License-Identifier: Apache-2.0
// painwatchd end to end against the validating reference FHIR server (issue 8): load the cohort,
// run `painwatchd --once` (per-patient mode through the cohort Group), read the Flags back and
// compare them with every patient's sidecar; change the data and run again (only the right
// Flags move); run again unchanged (zero writes); shadow mode (Flags to the file, none to the EHR).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { E2E_DIR, serverBase, fhir, searchAll } = require('./support.js');
const { generate, ARCHETYPES } = require(path.join(E2E_DIR, 'cohort/generate.js'));
const { loadCohort } = require(path.join(E2E_DIR, 'cohort/load.js'));
const { compareCohort, flagFinding } = require(path.join(E2E_DIR, 'cohort/compare.js'));
const { oracle } = require(path.join(E2E_DIR, 'cohort/oracle.js'));
const M = require(path.join(E2E_DIR, 'cohort/mutations.js'));

const PAINWATCHD = process.env.PAINWATCHD;

function writeCohort(dir, list) {
  for (const p of list) {
    fs.writeFileSync(path.join(dir, `${p.id}.bundle.json`), JSON.stringify(p.bundle));
    fs.writeFileSync(path.join(dir, `${p.id}.expected.json`), JSON.stringify(p.expected, null, 1));
  }
}

function config(dir, base, extra = '') {
  const file = path.join(dir, 'painwatch.yaml');
  fs.writeFileSync(
    file,
    [
      `state_dir: ${path.join(dir, 'state')}`,
      // Shadow mode is the built-in default (issue 19): these runs write to the server.
      extra.includes('shadow_mode') ? '' : 'shadow_mode: false',
      'audit: {allow_local_key: true}', // the key beside the trail: a test, like the demo
      'servers:',
      '  - name: ehr',
      `    base_url: ${base}`,
      '    auth: {type: none}',
      '    cohort: {type: group, group: Group/painwatch-cohort}',
      '    resources: [Observation, MedicationRequest, MedicationAdministration, Condition, ServiceRequest, Encounter]',
      'sink: {type: fhir-flag}',
      extra,
    ].join('\n') + '\n',
  );
  return file;
}

// Asynchronous on purpose: a synchronous spawn would freeze this process's event loop for the
// whole run, and fetch would then reuse keep-alive sockets the server closed meanwhile.
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
    const timer = setTimeout(() => child.kill('SIGKILL'), 600000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`painwatchd --once exited ${code} ${signal || ''}:\n${stderr.slice(-4000)}`));
      } else {
        resolve(stderr);
      }
    });
  });
}

async function requests(base) {
  const r = await fhir(base, 'GET', '/_admin/requests');
  return r.body;
}

const writes = (reqs) => reqs.filter((x) => x.method === 'POST' || x.method === 'PUT' || x.method === 'PATCH');

test('painwatchd --once against the reference server', { skip: !PAINWATCHD && 'PAINWATCHD not set', timeout: 1800000 }, async (t) => {
  const base = serverBase();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-daemon-e2e-'));
  const cohort = path.join(dir, 'cohort');
  fs.mkdirSync(cohort);
  await fhir(base, 'POST', '/_admin/reset');
  const anchor = new Date(Math.floor(Date.now() / 1000) * 1000);
  const list = generate({ patients: ARCHETYPES.length, seed: 'daemon', anchor });
  writeCohort(cohort, list);
  // The Group the cohort adapter reads.
  const group = {
    resourceType: 'Group',
    id: 'painwatch-cohort',
    type: 'person',
    actual: true,
    member: list.map((p) => ({ entity: { reference: `Patient/${p.id}` } })),
  };
  await fhir(base, 'PUT', '/Group/painwatch-cohort', group);
  await loadCohort(base, cohort);
  const cfg = config(dir, base);

  await t.test('first run: exactly the expected Flags, each identifier once', async () => {
    await runOnce(cfg);
    const r = await compareCohort(base, cohort);
    assert.ok(r.ok, r.problems.join('\n'));
    const rules = Object.keys(r.byRule);
    assert.ok(rules.length >= 14, `every rule fires at least once in the cohort (got ${rules.join(', ')})`);
    // Every patient's first MedicationRequest sync also asked for the orders still in force
    // authored before the lookback (status=active,on-hold, authoredon=lt), and the server answered it.
    const inForce = (await requests(base)).filter((x) => {
      const q = decodeURIComponent(x.url.split('?')[1] || '');
      return x.method === 'GET' && /\/MedicationRequest\?/.test(x.url) && /(^|&)status=active,on-hold(&|$)/.test(q) && /(^|&)authoredon=lt/.test(q);
    });
    const asked = new Set(inForce.map((x) => (decodeURIComponent(x.url).match(/[?&]patient=([^&]+)/) || [])[1]));
    assert.deepEqual([...asked].sort(), list.map((p) => p.id).sort());
    assert.ok(inForce.every((x) => x.status === 200), 'the orders-in-force searches were answered');
  });

  await t.test('changed data: the right Flags resolve and appear, the others are untouched', async () => {
    const sidecars = list.map((p) => p.expected);
    const pick = (rule) => list.find((p) => p.expected.expected.some((x) => x.rule === rule));
    const now = Date.now() - 60000;
    const changes = [];
    const lax = pick('bowel-regimen-missing');
    changes.push([lax, M.addLaxative(lax.id, now)]);
    const high = pick('reassessment-overdue-after-high-score');
    if (high !== lax) changes.push([high, M.addPainScore(high.id, 3, now)]);
    const benzoPatient = pick('opioid-benzodiazepine-concurrent');
    const benzo = benzoPatient.bundle.entry
      .map((e) => e.resource)
      .find((r) => r.resourceType === 'MedicationRequest' && /azepam|azolam/i.test(JSON.stringify(r.medicationCodeableConcept || {})));
    assert.ok(benzo, 'the benzodiazepine order of the concurrent-use patient');
    if (![lax, high].includes(benzoPatient)) changes.push([benzoPatient, M.stopOrder(benzo, now)]);

    const before = (await requests(base)).length;
    const evalAt = new Date().toISOString();
    const changed = new Set();
    for (const [p, change] of changes) {
      const res = await fhir(base, 'POST', '/', change);
      assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
      const merged = M.apply(p.bundle, change);
      const findings = oracle(merged, evalAt);
      const sc = sidecars.find((s) => s.patient === `Patient/${p.id}`);
      sc.expected = [...findings].map(([rule, severity]) => ({ rule, severity }));
      fs.writeFileSync(path.join(cohort, `${p.id}.expected.json`), JSON.stringify(sc, null, 1));
      changed.add(`Patient/${p.id}`);
    }
    await runOnce(cfg);
    const r = await compareCohort(base, cohort);
    assert.ok(r.ok, r.problems.join('\n'));
    // Every Flag write of this run concerns a changed patient.
    const w = writes((await requests(base)).slice(before)).filter((x) => x.url.startsWith('/Flag'));
    assert.ok(w.length >= changes.length, `at least one Flag write per change (got ${w.length})`);
    const flags = (await searchAll(base, '/Flag?_count=200')).entries.map((e) => e.resource);
    const byId = new Map(flags.map((f) => [f.id, f]));
    for (const x of w) {
      const id = x.url.split('?')[0].split('/')[2];
      const subject = id ? byId.get(id).subject.reference : null;
      if (subject) assert.ok(changed.has(subject), `Flag ${id} of ${subject} was written but that patient did not change`);
    }
  });

  await t.test('unchanged data: a further run writes nothing to the EHR', async () => {
    const before = (await requests(base)).length;
    await runOnce(cfg);
    const w = writes((await requests(base)).slice(before));
    assert.deepEqual(w.map((x) => `${x.method} ${x.url}`), []);
  });

  await t.test('shadow mode: the same Flags go to the file, nothing to the EHR', async () => {
    const sdir = path.join(dir, 'shadow');
    fs.mkdirSync(sdir);
    const file = path.join(sdir, 'flags.ndjson');
    const scfg = config(sdir, base, 'shadow_mode: true');
    // Shadow mode writes to sink.file.
    fs.writeFileSync(scfg, fs.readFileSync(scfg, 'utf8').replace('sink: {type: fhir-flag}', `sink: {type: fhir-flag, file: ${file}}`));
    const before = (await requests(base)).length;
    await runOnce(scfg);
    const w = writes((await requests(base)).slice(before));
    assert.deepEqual(w.map((x) => `${x.method} ${x.url}`), [], 'shadow mode wrote to the EHR');
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const flagOf = (l) => (l.resourceType === 'Flag' ? l : l.resource || l.flag || l);
    const shadow = lines.map(flagOf).filter((f) => f.status === 'active');
    const server = (await searchAll(base, '/Flag?_count=200')).entries.map((e) => e.resource).filter((f) => f.status === 'active');
    const key = (f) => `${f.subject.reference} ${flagFinding(f).rule}`;
    assert.deepEqual([...new Set(shadow.map(key))].sort(), [...new Set(server.map(key))].sort());
  });
  fs.rmSync(dir, { recursive: true, force: true });
});
