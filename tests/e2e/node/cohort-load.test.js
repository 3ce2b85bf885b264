// SPDX-License-Identifier: Apache-2.0
// A generated cohort loads into the validating server (one transaction per patient), comes back by
// search page by page, and loading it again changes no resource count (PUT with stable ids).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { E2E_DIR, serverBase, fhir, searchAll } = require('./support.js');
const { generate, ARCHETYPES } = require(path.join(E2E_DIR, 'cohort/generate.js'));
const { loadCohort } = require(path.join(E2E_DIR, 'cohort/load.js'));

const base = serverBase();

function writeCohort(dir, list) {
  for (const p of list) {
    fs.writeFileSync(path.join(dir, `${p.id}.bundle.json`), JSON.stringify(p.bundle));
  }
}

function countBy(list, type, keep = () => true) {
  const counts = new Map();
  for (const p of list) {
    counts.set(`Patient/${p.id}`, p.bundle.entry.filter((e) => e.resource.resourceType === type && keep(e.resource)).length);
  }
  return counts;
}

// issue 17: some patients also have a respiratory rate Observation, not a pain score
const painScore = (r) => r.code.coding.some((c) => c.code === '72514-3');

test('the cohort loads and every resource comes back by search', async () => {
  assert.equal((await fhir(base, 'POST', '/_admin/reset')).status, 200);
  const list = generate({ patients: ARCHETYPES.length, seed: 'load', anchor: new Date() });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-load-'));
  try {
    writeCohort(dir, list);
    const before = new Date(Date.now() - 1000).toISOString();
    const loaded = await loadCohort(base, dir);
    const total = list.reduce((n, p) => n + p.bundle.entry.length, 0);
    assert.deepEqual(loaded, { bundles: list.length, resources: total });

    // Pain scores by code, 100 per page, grouped by patient.
    const obs = await searchAll(base, `/Observation?code=${encodeURIComponent('http://loinc.org|72514-3')}&_count=100`);
    const gotObs = new Map();
    for (const e of obs.entries) {
      const s = e.resource.subject.reference;
      gotObs.set(s, (gotObs.get(s) || 0) + 1);
    }
    assert.deepEqual(gotObs, new Map([...countBy(list, 'Observation', painScore)].filter(([, n]) => n > 0)));
    assert.ok(obs.pages.length >= 3, 'paged');

    // Orders changed since the cursor, oldest first, as painwatch's sync asks for them.
    const mr = await searchAll(base, `/MedicationRequest?_lastUpdated=gt${encodeURIComponent(before)}&_sort=_lastUpdated&_count=50`);
    assert.equal(mr.entries.length, [...countBy(list, 'MedicationRequest').values()].reduce((a, b) => a + b, 0));
    const stamps = mr.entries.map((e) => e.resource.meta.lastUpdated);
    assert.deepEqual(stamps, [...stamps].sort(), 'sorted by _lastUpdated');

    // One patient's orders by patient and authoredon, and its referral.
    const p = list.find((x) => x.expected.archetype === 'rotation-without-reduction');
    const orders = await fhir(base, 'GET', `/MedicationRequest?patient=Patient/${p.id}&authoredon=gt2000-01-01&_count=100`);
    assert.equal(orders.body.entry.length, countBy([p], 'MedicationRequest').get(`Patient/${p.id}`));
    const stopped = orders.body.entry.filter((e) => e.resource.status === 'stopped');
    assert.equal(stopped.length, 2, 'baseline and rescue of the old opioid');
    const pall = list.find((x) => x.expected.archetype === 'palliative-already-referred');
    const sr = await fhir(base, 'GET', `/ServiceRequest?patient=Patient/${pall.id}`);
    assert.equal(sr.body.entry[0].resource.code.coding[0].code, '103735009');

    // Loading again updates in place: no duplicates.
    await loadCohort(base, dir);
    const again = await searchAll(base, `/MedicationRequest?_count=1000`);
    assert.equal(again.entries.length, mr.entries.length);
    const pats = await searchAll(base, '/Patient?_count=1000');
    assert.equal(pats.entries.length, list.length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a bundle with an invalid resource is rejected whole, naming the resource', async () => {
  const [p] = generate({ patients: 1, seed: 'bad', anchor: new Date() });
  const obs = p.bundle.entry.find((e) => e.resource.resourceType === 'Observation').resource;
  obs.status = 'done'; // not an ObservationStatus
  const r = await fhir(base, 'POST', '/', p.bundle);
  assert.equal(r.status, 400);
  assert.ok(r.body.issue.some((i) => (i.expression || []).includes('Observation.status')), JSON.stringify(r.body));
  assert.equal((await fhir(base, 'GET', `/Patient/${p.id}`)).status, 404);
});

test('trimmed Synthea patients (real-shaped data written by others) load and come back', async () => {
  const dir = path.join(E2E_DIR, 'synthea');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.equal(files.length, 3);
  for (const f of files) {
    const bundle = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    const r = await fhir(base, 'POST', '/', bundle);
    assert.equal(r.status, 200, `${f}: ${JSON.stringify(r.body).slice(0, 500)}`);
    const pat = r.body.entry.find((e) => e.resource && e.resource.resourceType === 'Patient').resource;
    const pain = bundle.entry.filter((e) => e.resource.resourceType === 'Observation').length;
    const obs = await searchAll(base, `/Observation?patient=Patient/${pat.id}&code=${encodeURIComponent('http://loinc.org|72514-3')}&_count=100`);
    assert.equal(obs.entries.length, pain, f);
    assert.ok(obs.entries.some((e) => !Number.isInteger(e.resource.valueQuantity.value)), `${f}: decimal scores`);
    const mr = await searchAll(base, `/MedicationRequest?patient=Patient/${pat.id}&_count=100`);
    assert.equal(mr.entries.length, bundle.entry.filter((e) => e.resource.resourceType === 'MedicationRequest').length);
  }
});

test('compare.js accepts exactly the expected Flags and names every difference', async () => {
  const { compareCohort } = require(path.join(E2E_DIR, 'cohort/compare.js'));
  assert.equal((await fhir(base, 'POST', '/_admin/reset')).status, 200);
  const list = generate({ patients: 20, seed: 'cmp', anchor: new Date() });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cmp-'));
  const prio = { high: 'PH', medium: 'PM', low: 'PL', info: 'PN' };
  const flagFor = (p, e, n) => ({
    resourceType: 'Flag',
    extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/flag-priority', valueCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/flag-priority-code', code: prio[e.severity] }] } }],
    identifier: [{ system: 'urn:test:episode', value: `${p.id}-${e.rule}-${n}` }],
    status: 'active',
    code: { coding: [{ system: 'urn:test:rule', code: e.rule }], text: `test ${e.rule}` },
    subject: { reference: p.expected.patient },
  });
  try {
    for (const p of list) fs.writeFileSync(path.join(dir, `${p.id}.expected.json`), JSON.stringify(p.expected));
    for (const p of list) for (const e of p.expected.expected) assert.equal((await fhir(base, 'POST', '/Flag', flagFor(p, e, 1))).status, 201);
    // every expected finding was posted, info ones too: compare as a site posting info (issue 21)
    let r = await compareCohort(base, dir, { postMin: 'info' });
    assert.deepEqual(r.problems, []);
    assert.ok(r.ok && r.patients === 20 && Object.keys(r.byRule).length >= 5, JSON.stringify(r));

    const clean = list.find((p) => p.expected.expected.length === 0);
    const firing = list.find((p) => p.expected.expected.length === 1);
    await fhir(base, 'POST', '/Flag', flagFor(clean, { rule: 'rescue-dose-missing', severity: 'medium' }, 1));
    const wrongSev = flagFor(firing, { rule: firing.expected.expected[0].rule, severity: 'info' }, 2);
    await fhir(base, 'POST', '/Flag', wrongSev);
    await fhir(base, 'POST', '/Flag', flagFor(firing, firing.expected.expected[0], 1)); // same identifier again
    r = await compareCohort(base, dir, { postMin: 'info' });
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((x) => x.startsWith(`${clean.expected.patient} `)), r.problems.join('\n'));
    assert.ok(r.problems.some((x) => x.startsWith(`${firing.expected.patient} `) && x.includes(':info')), r.problems.join('\n'));
    assert.ok(r.problems.some((x) => x.startsWith('identifier urn:test:episode|')), r.problems.join('\n'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
