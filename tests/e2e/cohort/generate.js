#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Deterministic synthetic cancer-pain cohort: one FHIR R4 transaction Bundle per patient plus a
// sidecar with the findings painwatch must produce at the anchor. Same seed + anchor = same bytes.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const C = require('./catalog.js');
const { RULES, ARCHETYPES } = require('./archetypes.js');

const MAX_PATIENTS = 100000;
const HOUR_MS = 3600 * 1000;
const MRN_SYSTEM = 'https://painwatch.example/fhir/synthetic-mrn';
const DOSE_RATE = 'http://terminology.hl7.org/CodeSystem/dose-rate-type';
const ROUTES = {
  oral: { coding: [{ system: C.SNOMED, code: '26643006', display: 'Oral route' }] },
  transdermal: { coding: [{ system: C.SNOMED, code: '45890007', display: 'Transdermal route' }] },
};

/** mulberry32 seeded from a string hash: small, fast and the same on every platform. */
function rngFor(text) {
  let h = crypto.createHash('sha256').update(text).digest().readUInt32LE(0);
  const next = () => {
    h = (h + 0x6d2b79f5) >>> 0;
    let t = h;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    chance: (p) => next() < p,
  };
}

/** A UUID-shaped id derived from a name, so bundles are byte-identical run to run. */
function uuidFrom(name) {
  const h = crypto.createHash('sha256').update(name).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function isoAt(anchorMs, hours, shiftMs) {
  return new Date(anchorMs + hours * HOUR_MS + shiftMs).toISOString().replace('.000Z', 'Z');
}

/** A pain score in [lo, hi): a decimal (as in Synthea) or a whole number, never past a threshold. */
function scoreValue(rng, lo, hi) {
  const v = lo + rng.next() * (hi - lo);
  if (rng.chance(0.4)) {
    return Math.max(lo, Math.floor(v * 10) / 10);
  }
  const whole = Math.floor(v) >= lo ? Math.floor(v) : Math.ceil(lo);
  return whole < hi ? whole : Math.floor(v * 10) / 10;
}

function quantity(value, unit, system, code) {
  return { value, unit, system, code };
}

function doseQuantity(drug, dose) {
  if (dose.mg !== undefined) return quantity(dose.mg, 'mg', C.UCUM, 'mg');
  if (dose.ml !== undefined) return quantity(dose.ml, 'mL', C.UCUM, 'mL');
  if (dose.g !== undefined) return quantity(dose.g, 'g', C.UCUM, 'g');
  if (drug && drug.unit === 'patch') return quantity(dose.units, 'patch', C.UCUM, '{patch}');
  const cap = drug && drug.form === 'CAP';
  return quantity(dose.units, cap ? 'capsule' : 'tablet', C.DRUG_FORM, cap ? 'CAP' : 'TAB');
}

function timingOf(t) {
  if (t.code) {
    return { code: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation', code: t.code }], text: t.code } };
  }
  if (t.when) {
    return { repeat: { when: t.when, frequency: 1, period: 1, periodUnit: 'd' } };
  }
  if (t.period % 24 === 0) {
    return { repeat: { frequency: 1, period: t.period / 24, periodUnit: 'd' } };
  }
  return { repeat: { frequency: 1, period: t.period, periodUnit: 'h' } };
}

function unitWord(drug, n) {
  const [one, many] = drug && drug.unit === 'patch' ? ['patch', 'patches'] : drug && drug.form === 'CAP' ? ['capsule', 'capsules'] : ['tablet', 'tablets'];
  return `${n} ${n === 1 ? one : many}`;
}

function sigText(o, drug) {
  const d = o.dose;
  let amount;
  if (d.mg !== undefined) amount = `${d.mg} mg`;
  else if (d.ml !== undefined) amount = `${d.ml} mL`;
  else if (d.g !== undefined) amount = `${d.g} g`;
  else if (d.unitsRange) amount = `${d.unitsRange[0]}-${d.unitsRange[1]} tablets`;
  else amount = unitWord(drug, d.units);
  const t = o.timing;
  const prn = !o.prn ? '' : drug && drug.cls.startsWith('opioid') ? ' as needed for pain' : drug && drug.cls.startsWith('laxative') ? ' as needed for constipation' : ' as needed';
  if (drug && drug.unit === 'patch') {
    return `Apply ${amount} to the skin every ${t.period} hours, removing the previous one${prn}`;
  }
  let when;
  if (t.code) when = { BID: 'twice daily', TID: 'three times daily', QID: 'four times daily' }[t.code] || t.code;
  else if (t.when) when = 'at bedtime';
  else if (t.period === 24) when = 'once daily';
  else when = `every ${t.period} hours`;
  return `${amount} by mouth ${when}${prn}`;
}

function dosageOf(o, drug, rng) {
  if (o.textOnly) {
    const text = o.prn
      ? '1/2 to 1 tablet by mouth every 4 hours if needed for breakthrough pain'
      : 'Take as directed';
    const d = { sequence: 1, text };
    if (o.prn) d.asNeededBoolean = true;
    return [d];
  }
  const dose = o.dose.unitsRange
    ? { doseRange: { low: doseQuantity(drug, { units: o.dose.unitsRange[0] }), high: doseQuantity(drug, { units: o.dose.unitsRange[1] }) } }
    : { doseQuantity: doseQuantity(drug, o.dose) };
  const ordered = { type: { coding: [{ system: DOSE_RATE, code: 'ordered', display: 'Ordered' }] }, ...dose };
  const d = { sequence: 1, text: sigText(o, drug), timing: timingOf(o.timing) };
  if (o.prn) {
    if (rng.chance(0.5)) d.asNeededBoolean = true;
    else d.asNeededCodeableConcept = { text: drug && drug.cls.startsWith('opioid') ? 'breakthrough pain' : 'constipation' };
  }
  d.route = drug && drug.unit === 'patch' ? ROUTES.transdermal : ROUTES.oral;
  d.doseAndRate = [ordered];
  // Epic sends the calculated amount (tablets) next to the ordered one (mg): both agree here.
  if (o.style && o.style.startsWith('epic') && o.dose.mg !== undefined && drug && drug.mg) {
    const units = o.dose.mg / drug.mg;
    if (Number.isInteger(units)) {
      d.doseAndRate = [
        { type: { coding: [{ system: DOSE_RATE, code: 'calculated', display: 'Calculated' }] }, doseQuantity: doseQuantity(drug, { units }) },
        ordered,
      ];
    }
  }
  return [d];
}

function medicationCode(o, drug, localId) {
  if (!drug) {
    return { coding: [{ system: C.EPIC_ERX, code: localId, display: o.local }], text: o.local };
  }
  const scd = { system: C.RXNORM, code: drug.rxcui, display: drug.name };
  if (!o.style || !o.style.startsWith('epic')) {
    return { coding: [scd], text: drug.name };
  }
  const coding = [{ system: C.EPIC_ERX, code: localId, display: drug.name.toUpperCase() }];
  if (drug.sbd) coding.push({ system: C.RXNORM, code: drug.sbd[0], display: drug.sbd[1] });
  coding.push(scd);
  if (drug.ingredient) coding.push({ system: C.RXNORM, code: drug.ingredient[0], display: drug.ingredient[1] });
  return { coding, text: drug.name };
}

/** Builds one patient: the transaction Bundle and the sidecar. */
function buildPatient({ index, seed, anchorMs, archetype }) {
  const rng = rngFor(`${seed}:${index}`);
  const plan = archetype.build();
  // One shift for the whole patient (0-20 min earlier): relative timings stay exact.
  const shiftMs = -rng.int(0, 20) * 60 * 1000;
  const at = (h) => isoAt(anchorMs, h, shiftMs);
  const tag = String(seed).replace(/[^A-Za-z0-9]/g, '').slice(0, 16) || 'x';
  const pid = `pw${tag}-${String(index + 1).padStart(3, '0')}`;
  const subject = { reference: `Patient/${pid}` };
  const resources = [];
  const given = rng.pick(C.GIVEN);
  const family = rng.pick(C.FAMILY);
  resources.push({
    resourceType: 'Patient',
    id: pid,
    meta: { tag: [{ system: 'https://painwatch.example/fhir/tag', code: 'synthetic', display: 'Synthetic test patient' }] },
    identifier: [{ system: MRN_SYSTEM, value: `${tag.toUpperCase()}${String(index + 1).padStart(6, '0')}` }],
    name: [{ use: 'official', family, given: [given] }],
    gender: rng.pick(['female', 'male']),
    birthDate: `${rng.int(1938, 1985)}-${String(rng.int(1, 12)).padStart(2, '0')}-${String(rng.int(1, 28)).padStart(2, '0')}`,
  });
  const cancer = rng.pick(C.CANCERS);
  const onset = -rng.int(40, 400) * 24;
  // issue 17: a patient without cancer on the problem list is out of scope
  (plan.cancer === false ? [] : resources).push({
    resourceType: 'Condition',
    id: `${pid}-ca`,
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
    code: { coding: [{ system: C.ICD10CM, code: cancer[0], display: cancer[2] }, { system: C.SNOMED, code: cancer[1], display: cancer[2] }], text: cancer[2] },
    subject,
    onsetDateTime: at(onset),
    recordedDate: at(onset + 24),
  });
  if (plan.painType) {
    resources.push({
      resourceType: 'Condition',
      id: `${pid}-np`,
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
      verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
      code: { coding: [{ system: C.SNOMED, code: C.NEUROPATHIC[0], display: C.NEUROPATHIC[1] }], text: 'Neuropathic cancer pain' },
      subject,
      onsetDateTime: at(-9 * 24 - 2),
      recordedDate: at(-9 * 24),
    });
  }
  plan.scores.forEach(([h, lo, hi], i) => {
    const value = scoreValue(rng, lo, hi);
    const obs = {
      resourceType: 'Observation',
      id: `${pid}-pain-${i + 1}`,
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey', display: 'Survey' }] }],
      code: { coding: [{ system: C.LOINC, code: C.PAIN_LOINC[0], display: C.PAIN_LOINC[1] }], text: 'Pain score (NRS 0-10)' },
      subject,
      effectiveDateTime: at(h),
      issued: new Date(Date.parse(at(h)) + 5 * 60 * 1000).toISOString().replace('.000Z', 'Z'),
      valueQuantity: { value, unit: '{score}', system: C.UCUM, code: '{score}' },
    };
    resources.push(obs);
  });
  const idOf = (key) => `${pid}-mr-${key}`;
  plan.orders.forEach((o, i) => {
    const drug = o.drug ? C.DRUGS[o.drug] : null;
    if (o.drug && !drug) throw new Error(`archetype ${archetype.id}: unknown drug ${o.drug}`);
    const localId = String(900000 + ((index * 97 + i * 13) % 99999));
    const mr = {
      resourceType: 'MedicationRequest',
      id: idOf(o.key),
      status: o.end === undefined ? 'active' : o.endStatus || 'stopped',
      intent: 'order',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/medicationrequest-category', code: 'inpatient', display: 'Inpatient' }] }],
    };
    const code = medicationCode(o, drug, localId);
    if (o.style === 'epic-contained') {
      mr.contained = [{ resourceType: 'Medication', id: 'med1', code }];
      mr.medicationReference = { reference: '#med1', display: drug.name };
    } else if (o.style === 'epic-reference') {
      const medId = `${pid}-med-${o.key}`;
      resources.push({ resourceType: 'Medication', id: medId, code });
      mr.medicationReference = { reference: `Medication/${medId}`, display: drug.name };
    } else {
      mr.medicationCodeableConcept = code;
    }
    mr.subject = subject;
    mr.authoredOn = at(o.start);
    mr.requester = { display: `Dr. ${rng.pick(C.FAMILY)}` };
    mr.dosageInstruction = dosageOf(o, drug, rng);
    mr.dispenseRequest = { validityPeriod: o.end === undefined ? { start: at(o.start) } : { start: at(o.start), end: at(o.end) } };
    if (o.prior) mr.priorPrescription = { reference: `MedicationRequest/${idOf(o.prior)}` };
    resources.push(mr);
  });
  if (plan.referral && plan.referral.kind === 'ServiceRequest') {
    resources.push({
      resourceType: 'ServiceRequest',
      id: `${pid}-pall`,
      status: 'active',
      intent: 'order',
      category: [{ coding: [{ system: C.SNOMED, code: '3457005', display: 'Patient referral' }] }],
      code: { coding: [{ system: C.SNOMED, code: C.PALLIATIVE[0], display: C.PALLIATIVE[1] }], text: 'Referral to palliative care' },
      subject,
      authoredOn: at(plan.referral.at),
    });
  } else if (plan.referral) {
    resources.push({
      resourceType: 'Encounter',
      id: `${pid}-pall`,
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
      type: [{ coding: [{ system: C.SNOMED, code: C.PALLIATIVE[0], display: C.PALLIATIVE[1] }], text: 'Palliative care consultation' }],
      subject,
      period: { start: at(plan.referral.at), end: at(plan.referral.at + 1) },
    });
  }
  // issue 17: doses given, sedation scores, visits
  (plan.admins || []).forEach(([h, key], i) => {
    const o = plan.orders.find((x) => x.key === key);
    const drug = C.DRUGS[o.drug];
    resources.push({
      resourceType: 'MedicationAdministration',
      id: `${pid}-ma-${i + 1}`,
      status: 'completed',
      medicationCodeableConcept: { coding: [{ system: C.RXNORM, code: drug.rxcui, display: drug.name }], text: drug.name },
      subject,
      effectiveDateTime: at(h),
      request: { reference: `MedicationRequest/${idOf(key)}` },
      dosage: { dose: doseQuantity(drug, o.dose) },
    });
  });
  // respiratory rate (LOINC 9279-1, synced by default: no site code needed)
  (plan.respRate || []).forEach(([h, v], i) => {
    resources.push({
      resourceType: 'Observation',
      id: `${pid}-rr-${i + 1}`,
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }] }],
      code: { coding: [{ system: C.LOINC, code: '9279-1', display: 'Respiratory rate' }], text: 'Respiratory rate' },
      subject,
      effectiveDateTime: at(h),
      valueQuantity: quantity(v, '/min', C.UCUM, '/min'),
    });
  });
  (plan.encounters || []).forEach(([start, end, cls, hospice], i) => {
    const e = {
      resourceType: 'Encounter',
      id: `${pid}-enc-${i + 1}`,
      status: end === null ? 'in-progress' : 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: cls },
      subject,
      period: end === null ? { start: at(start) } : { start: at(start), end: at(end) },
    };
    if (hospice) e.type = [{ coding: [{ system: C.SNOMED, code: '385763009', display: 'Hospice care' }], text: 'Hospice care' }];
    resources.push(e);
  });
  const bundle = {
    resourceType: 'Bundle',
    id: `${pid}-load`,
    type: 'transaction',
    entry: resources.map((r) => ({
      fullUrl: `urn:uuid:${uuidFrom(`${seed}/${r.resourceType}/${r.id}`)}`,
      resource: r,
      request: { method: 'PUT', url: `${r.resourceType}/${r.id}` },
    })),
  };
  const expected = {
    patient: `Patient/${pid}`,
    anchor: new Date(anchorMs).toISOString().replace('.000Z', 'Z'),
    archetype: archetype.id,
    expected: archetype.expected.map(([rule, severity]) => ({ rule, severity })),
    must_not: Object.keys(RULES).filter((r) => !archetype.expected.some(([x]) => x === r)),
    near_miss: archetype.near_miss,
    why: archetype.why,
  };
  return { id: pid, bundle, expected };
}

/**
 * Generates patients 0..n-1; patient i is archetype i mod K (of `archetypes`, default all K), so
 * n >= K covers every rule. A benchmark can pass e.g. mostly clean archetypes for a 10% mix.
 */
function generate({ patients, seed, anchor, archetypes = null }) {
  const anchorMs = Math.floor(anchor.getTime() / 1000) * 1000;
  const pool = archetypes ? archetypes.map(archetypeById) : ARCHETYPES;
  const out = [];
  for (let i = 0; i < patients; i++) {
    out.push(buildPatient({ index: i, seed, anchorMs, archetype: pool[i % pool.length] }));
  }
  return out;
}

function archetypeById(id) {
  const a = ARCHETYPES.find((x) => x.id === id);
  if (!a) throw new Error(`unknown archetype '${id}' (see --list)`);
  return a;
}

function coverage(list) {
  const cov = Object.fromEntries(Object.keys(RULES).map((r) => [r, { fires: 0, near_miss: 0 }]));
  for (const p of list) {
    for (const e of p.expected.expected) cov[e.rule].fires++;
    for (const r of p.expected.near_miss) cov[r].near_miss++;
  }
  return cov;
}

function usage() {
  return `usage: generate.js --out DIR [--patients N] [--seed S] [--anchor RFC3339] [--archetypes A,B,..]
                   [--group ID] [--list]
Writes DIR/<patient>.bundle.json (FHIR R4 transaction Bundle), DIR/<patient>.expected.json
(findings at the anchor), DIR/cohort-group.bundle.json (Group/ID, default painwatch-cohort, listing
every patient), DIR/patients.txt (one Patient/<id> a line) and DIR/index.json. Defaults: --patients ${ARCHETYPES.length} (one per
archetype; fewer leaves rules uncovered), --seed 1, --anchor now; --archetypes cycles through the
named archetypes only (a name may repeat to weight it).`;
}

function parseArgs(argv) {
  const opt = { patients: ARCHETYPES.length, seed: '1', anchor: null, out: null, list: false, archetypes: null, group: 'painwatch-cohort' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--patients') opt.patients = Number(val());
    else if (a === '--seed') opt.seed = val();
    else if (a === '--anchor') opt.anchor = val();
    else if (a === '--out') opt.out = val();
    else if (a === '--list') opt.list = true;
    else if (a === '--group') opt.group = val();
    else if (a === '--archetypes') opt.archetypes = val().split(',').filter((x) => x);
    else if (a === '--help' || a === '-h') {
      console.log(usage());
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opt.patients) || opt.patients < 1 || opt.patients > MAX_PATIENTS) {
    throw new Error(`--patients must be 1..${MAX_PATIENTS}`);
  }
  if (opt.anchor !== null) {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(opt.anchor) || Number.isNaN(Date.parse(opt.anchor))) {
      throw new Error(`--anchor must be an RFC 3339 date-time with offset, got '${opt.anchor}'`);
    }
    opt.anchor = new Date(opt.anchor);
  } else {
    opt.anchor = new Date();
  }
  if (!opt.list && !opt.out) throw new Error('--out DIR is required');
  if (opt.archetypes) opt.archetypes.forEach(archetypeById);
  if (!/^[A-Za-z0-9\-.]{1,64}$/.test(opt.group)) throw new Error(`--group must be a FHIR id, got '${opt.group}'`);
  return opt;
}

function main() {
  let opt;
  try {
    opt = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`generate.js: ${err.message}\n${usage()}`);
    return 2;
  }
  if (opt.list) {
    for (const a of ARCHETYPES) {
      console.log(`${a.id}\t${a.expected.map(([r, s]) => `${r}:${s}`).join(',') || '-'}\t${a.why}`);
    }
    return 0;
  }
  const list = generate(opt);
  fs.mkdirSync(opt.out, { recursive: true });
  for (const p of list) {
    fs.writeFileSync(path.join(opt.out, `${p.id}.bundle.json`), JSON.stringify(p.bundle, null, 1) + '\n');
    fs.writeFileSync(path.join(opt.out, `${p.id}.expected.json`), JSON.stringify(p.expected, null, 1) + '\n');
  }
  // The cohort as painwatch can be told about it: a Group (cohort type group) and a list file.
  const group = {
    resourceType: 'Group',
    id: opt.group,
    type: 'person',
    actual: true,
    name: 'painwatch synthetic cancer-pain cohort',
    quantity: list.length,
    member: list.map((p) => ({ entity: { reference: p.expected.patient } })),
  };
  const groupBundle = {
    resourceType: 'Bundle',
    id: `${opt.group}-load`,
    type: 'transaction',
    entry: [{ fullUrl: `urn:uuid:${uuidFrom(`${opt.seed}/Group/${opt.group}`)}`, resource: group, request: { method: 'PUT', url: `Group/${opt.group}` } }],
  };
  fs.writeFileSync(path.join(opt.out, 'cohort-group.bundle.json'), JSON.stringify(groupBundle, null, 1) + '\n');
  fs.writeFileSync(path.join(opt.out, 'patients.txt'), list.map((p) => p.expected.patient).join('\n') + '\n');
  const index = {
    generator: 'painwatch tests/e2e/cohort/generate.js',
    group: `Group/${opt.group}`,
    seed: String(opt.seed),
    anchor: list[0].expected.anchor,
    patients: list.map((p) => ({ patient: p.expected.patient, archetype: p.expected.archetype, bundle: `${p.id}.bundle.json`, expected: `${p.id}.expected.json` })),
    coverage: coverage(list),
  };
  fs.writeFileSync(path.join(opt.out, 'index.json'), JSON.stringify(index, null, 1) + '\n');
  const resources = list.reduce((n, p) => n + p.bundle.entry.length, 0);
  console.log(`generate.js: ${list.length} patients, ${resources} resources, anchor ${index.anchor}, seed ${index.seed} -> ${opt.out}`);
  return 0;
}

if (require.main === module) {
  process.exitCode = main();
}

module.exports = { generate, buildPatient, coverage, RULES, ARCHETYPES, uuidFrom, rngFor };
