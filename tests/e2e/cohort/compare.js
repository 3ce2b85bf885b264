#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Compares the active Flags on a FHIR server with a generated cohort's sidecars: exactly the
// expected rule and severity per patient, each Flag identifier once. Prints a short report.
// usage: node compare.js --base URL --cohort DIR [--json]   (exit 0 all match, 1 otherwise)
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const PRIORITY = { PH: 'high', PM: 'medium', PL: 'low', PN: 'info' };
// Issue 21: painwatch posts findings of post_min_severity (default low) and above; info findings
// go to the audit trail and reports only, so no Flag is expected for them.
const SEVERITY_RANK = { info: 0, low: 1, medium: 2, high: 3 };
const MAX_PAGES = 1000;

async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: 'application/fhir+json' } });
  if (res.status !== 200) {
    throw new Error(`GET ${url}: HTTP ${res.status}`);
  }
  return res.json();
}

/** Every Flag on the server (any status), following next links. */
async function allFlags(base) {
  const flags = [];
  let url = `${base.replace(/\/+$/, '')}/Flag?_count=1000`;
  for (let pages = 0; url; pages++) {
    if (pages >= MAX_PAGES) throw new Error('too many Flag pages');
    const b = await getJson(url);
    flags.push(...(b.entry || []).map((e) => e.resource));
    const next = (b.link || []).find((l) => l.relation === 'next');
    url = next ? next.url : null;
  }
  return flags;
}

function flagFinding(flag) {
  const ext = (flag.extension || []).find((x) => x.url === 'http://hl7.org/fhir/StructureDefinition/flag-priority');
  const code = ext && ext.valueCodeableConcept && ext.valueCodeableConcept.coding && ext.valueCodeableConcept.coding[0].code;
  const coding = (flag.code && flag.code.coding) || [];
  return { rule: coding.length ? coding[0].code : '(no code)', severity: PRIORITY[code] || `(priority ${code})` };
}

/** @returns {{ok: boolean, patients: number, byRule: object, problems: string[], sample: string}} */
async function compareCohort(base, dir, { postMin = 'low' } = {}) {
  const sidecars = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.expected.json'))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  if (sidecars.length === 0) throw new Error(`${dir}: no *.expected.json`);
  const flags = await allFlags(base);
  const problems = [];
  const seen = new Map();
  for (const f of flags) {
    for (const id of f.identifier || []) {
      const k = `${id.system}|${id.value}`;
      if (seen.has(k)) problems.push(`identifier ${k} on Flag/${seen.get(k)} and Flag/${f.id}`);
      seen.set(k, f.id);
    }
  }
  const active = new Map();
  for (const f of flags.filter((x) => x.status === 'active')) {
    const p = f.subject && f.subject.reference;
    if (!active.has(p)) active.set(p, []);
    active.get(p).push({ ...flagFinding(f), text: f.code && f.code.text });
  }
  const byRule = {};
  let sample = '';
  for (const s of sidecars) {
    const got = (active.get(s.patient) || []).map((x) => `${x.rule}:${x.severity}`).sort();
    const want = s.expected
      .filter((x) => SEVERITY_RANK[x.severity] >= SEVERITY_RANK[postMin])
      .map((x) => `${x.rule}:${x.severity}`)
      .sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      problems.push(`${s.patient} (${s.archetype}): active Flags [${got.join(', ')}], expected [${want.join(', ')}]`);
    }
    for (const x of active.get(s.patient) || []) {
      byRule[x.rule] = (byRule[x.rule] || 0) + 1;
      if (!sample && x.text) sample = `${x.rule} (${x.severity}) for ${s.patient}: ${x.text}`;
    }
    active.delete(s.patient);
  }
  for (const [p, list] of active) {
    problems.push(`${p}: active Flags [${list.map((x) => x.rule).join(', ')}] for a patient not in the cohort`);
  }
  return { ok: problems.length === 0, patients: sidecars.length, flags: flags.length, byRule, problems, sample };
}

async function main(argv) {
  let base = null;
  let dir = null;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--base' && i + 1 < argv.length) base = argv[++i];
    else if (argv[i] === '--cohort' && i + 1 < argv.length) dir = argv[++i];
    else if (argv[i] === '--json') json = true;
    else {
      console.error(`compare.js: unexpected argument ${argv[i]}\nusage: node compare.js --base URL --cohort DIR [--json]`);
      return 2;
    }
  }
  if (!base || !dir) {
    console.error('usage: node compare.js --base URL --cohort DIR [--json]');
    return 2;
  }
  let r;
  try {
    r = await compareCohort(base, dir);
  } catch (err) {
    console.error(`compare.js: ${err.message}`);
    return 2;
  }
  if (json) {
    console.log(JSON.stringify(r, null, 1));
  } else {
    console.log(`patients: ${r.patients}; Flags on the server: ${r.flags}; active by rule:`);
    for (const [rule, n] of Object.entries(r.byRule).sort()) console.log(`  ${String(n).padStart(3)}  ${rule}`);
    if (r.sample) console.log(`sample: ${r.sample}`);
    console.log(r.ok ? 'every patient has exactly its expected Flags' : `${r.problems.length} problem(s):`);
    for (const p of r.problems) console.log(`  ${p}`);
  }
  return r.ok ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((rc) => {
    process.exitCode = rc;
  });
}

module.exports = { compareCohort, flagFinding };
