// SPDX-License-Identifier: Apache-2.0
// Issue 21, Flag fidelity end to end: painwatchd --once against the validating reference server
// (every write checked by Medplum and the official R4 JSON schema), then every Flag read back is
// validated again and read as a clinician and an EHR analyst would: the published priority
// system, a code.text summary of at most 140 characters, a narrative with local times in the
// configured timezone and no internal names or _history ids, Flag.encounter while an inpatient
// stay is in progress and the encounter-bound Flag resolved when the stay ends, no Flag for info
// findings (audit only), the sink named in the audit trail. The rule CodeSystem shipped in
// config/ is validated and accepted by the server.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { E2E_DIR, serverBase, fhir, searchAll } = require('./support.js');
const D = require('./daemon-support.js');
const { validateFhir } = require(path.join(E2E_DIR, 'server/fhirvalidate.js'));

const SRC = process.env.PW_SOURCE_DIR || path.resolve(E2E_DIR, '../..');
const H = 3600 * 1000;
const PATIENT = 'pw-f21-stay';

test.after(() => D.killAll());

function iso(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** An inpatient stay in progress since 40 h, a pain score of 8 taken 30 h ago and none since. */
function stayResources(now, finished) {
  const enc = {
    resourceType: 'Encounter',
    id: `${PATIENT}-enc`,
    status: finished ? 'finished' : 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'IMP', display: 'inpatient encounter' },
    subject: { reference: `Patient/${PATIENT}` },
    period: finished ? { start: iso(now - 40 * H), end: iso(now - H) } : { start: iso(now - 40 * H) },
  };
  return [
    { resourceType: 'Patient', id: PATIENT, name: [{ family: 'Stay', given: ['Fidelity'] }] },
    enc,
    {
      resourceType: 'Observation',
      id: `${PATIENT}-pain`,
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }] },
      subject: { reference: `Patient/${PATIENT}` },
      effectiveDateTime: iso(now - 30 * H),
      valueQuantity: { value: 8, unit: '{score}', system: 'http://unitsofmeasure.org', code: '{score}' },
    },
  ];
}

async function put(base, r) {
  const res = await fhir(base, 'PUT', `/${r.resourceType}/${r.id}`, r);
  assert.ok(res.status === 200 || res.status === 201, `PUT ${r.resourceType}/${r.id}: ${res.status} ${JSON.stringify(res.body)}`);
}

async function flags(base) {
  return (await searchAll(base, '/Flag?_count=1000')).entries.map((e) => e.resource);
}

function priorityOf(flag) {
  const ext = (flag.extension || []).find((x) => x.url === 'http://hl7.org/fhir/StructureDefinition/flag-priority');
  return ext.valueCodeableConcept.coding[0];
}

test('the shipped rule CodeSystem is valid R4 and the reference server accepts it', async () => {
  const cs = JSON.parse(fs.readFileSync(path.join(SRC, 'config/codesystem-rules.json'), 'utf8'));
  assert.deepEqual(validateFhir(cs), []);
  const printed = D.cli(['codesystem']);
  assert.equal(printed.status, 0, printed.stderr);
  assert.deepEqual(JSON.parse(printed.stdout), cs);
  await put(serverBase(), cs);
  const back = await fhir(serverBase(), 'GET', `/CodeSystem/${cs.id}`);
  assert.equal(back.status, 200);
  assert.equal(back.body.concept.length, cs.count);
});

test('Flags: valid, summarised, clinician narrative, encounter-bound to the stay', async () => {
  const base = serverBase();
  const dir = D.tmpdir('f21');
  const list = await D.loadFreshCohort(base, dir, { patients: 40, seed: 'f21' });
  const now = Date.now();
  for (const r of stayResources(now, false)) await put(base, r);
  const cfg = D.writeConfig(dir, base, { extra: 'timezone: Europe/Berlin\nscope: cohort' });

  let r = await D.runOnce(cfg.file);
  assert.equal(r.code, 0, r.log);
  let all = await flags(base);
  assert.ok(all.length >= 10, `only ${all.length} Flags`);
  const infoExpected = list.some((p) => p.expected.expected.some((x) => x.severity === 'info'));
  assert.ok(infoExpected, 'the cohort has an info finding (pain-type-undocumented)');
  for (const f of all) {
    const where = `Flag/${f.id} (${f.code.coding[0].code})`;
    assert.deepEqual(validateFhir(f), [], where);
    const prio = priorityOf(f);
    assert.equal(prio.system, 'http://hl7.org/fhir/flag-priority-code', where);
    assert.notEqual(prio.code, 'PN', `${where}: an info finding was posted`);
    assert.ok(f.code.text.length > 0 && f.code.text.length <= 140, `${where}: code.text ${f.code.text.length} chars`);
    const div = f.text.div;
    assert.ok(!/_history/.test(div), `${where}: raw _history id in the narrative`);
    assert.ok(!/[a-z]+_[a-z_]+_(per_day|pct|h)\b/.test(div), `${where}: internal name in the narrative`);
    assert.ok(div.includes('Times are local (Europe/Berlin)'), `${where}: no local zone`);
    assert.ok(!/\d\d:\d\d UTC/.test(div), `${where}: UTC time in the narrative`);
  }
  // A titration Flag reads "Opioid step +N% (a -> b MME/day) with pain n/10"; its evidence names
  // the drug and dose with the reference beside it.
  const step = all.find((f) => f.code.coding[0].code === 'titration-step-too-large');
  assert.ok(step, 'the cohort has a titration-step-too-large Flag');
  assert.match(step.code.text, /^Opioid step \+\d+(\.\d)?% \(\d+(\.\d)? -> \d+(\.\d)? MME\/day\) with (pain \d+(\.\d)?\/10|no pain score)$/);
  assert.match(step.text.div, /<li>[a-z]+( ER| patch)? [^<]*, ordered \d{1,2} [A-Z][a-z]{2}( \d{4})? \d\d:\d\d[^<]* \(MedicationRequest\/[^)/]+\)<\/li>/);

  // The stay: reassessment overdue, with Flag.encounter.
  const mine = all.filter((f) => f.subject.reference === `Patient/${PATIENT}`);
  const reassess = mine.find((f) => f.code.coding[0].code === 'reassessment-overdue-after-high-score');
  assert.ok(reassess, JSON.stringify(mine.map((f) => f.code)));
  assert.equal(reassess.status, 'active');
  assert.equal(reassess.encounter.reference, `Encounter/${PATIENT}-enc`);
  assert.match(reassess.code.text, /^Pain 8\/10 not reassessed for \d+(\.\d)? h$/);

  // The audit trail names the sink of each posted finding and keeps info ones audit-only.
  const trail = D.trailRecords(cfg.trail);
  const raised = trail.filter((x) => x.subtype === 'finding-raised');
  assert.ok(raised.length >= all.length);
  for (const x of raised) assert.equal(x.painwatch.carrier, 'fhir-flag', JSON.stringify(x.painwatch));
  const notPosted = trail.filter((x) => x.subtype === 'finding-not-posted');
  assert.ok(notPosted.length > 0, 'info findings are recorded, audit only');
  for (const x of notPosted) assert.equal(x.painwatch.carrier, 'audit-only');

  // The stay ends: the encounter-bound Flag is resolved, the others stay as they were.
  const before = new Map(all.map((f) => [f.id, f.status]));
  for (const res of stayResources(now, true)) await put(base, res);
  r = await D.runOnce(cfg.file);
  assert.equal(r.code, 0, r.log);
  all = await flags(base);
  const after = all.find((f) => f.id === reassess.id);
  assert.equal(after.status, 'inactive');
  assert.ok(after.period.end, 'period.end set');
  assert.deepEqual(validateFhir(after), []);
  assert.match(after.text.div, /Resolved by painwatch on \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d \(Europe\/Berlin\)/);
  const created = all.filter((f) => f.subject.reference === `Patient/${PATIENT}` && f.id !== reassess.id && f.status === 'active');
  assert.deepEqual(created.map((f) => f.code.coding[0].code), [], 'no Flag raised again after discharge');
  for (const f of all) {
    if (f.id !== reassess.id && before.has(f.id)) assert.equal(f.status, before.get(f.id), `Flag/${f.id}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
