// SPDX-License-Identifier: Apache-2.0
// The detected-issue sink and `sink.type: auto` against the validating reference server (issue
// 21): DetectedIssues written (every write validated by the server), the same episode keys as
// Flags, idempotent (an unchanged run writes nothing; a run that lost its state creates no
// duplicate), reconcile closes an episode whose situation ended (dated mitigation entry, status
// cancelled), a clinician's mitigation entry or status change is never overwritten and the
// episode is not re-created; `auto` writes DetectedIssues or Flags as /metadata says.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { E2E_DIR, serverBase, fhir, searchAll } = require('./support.js');
const D = require('./daemon-support.js');
const M = require(path.join(E2E_DIR, 'cohort/mutations.js'));

const base = serverBase();
const EPISODE_SYSTEM = 'urn:painwatch:flag-episode';
const RULE_SYSTEM = 'https://painwatch.org/fhir/CodeSystem/rule';
const MITIGATION_SYSTEM = 'https://painwatch.org/fhir/CodeSystem/mitigation';

const keyOf = (r) => ((r.identifier || []).find((i) => i.system === EPISODE_SYSTEM) || {}).value;
const ruleOf = (r) => r.code.coding.find((c) => c.system === RULE_SYSTEM).code;

async function all(type) {
  return (await searchAll(base, `/${type}?_count=1000`)).entries.map((e) => e.resource);
}

async function writesSince(n) {
  const log = (await fhir(base, 'GET', '/_admin/requests')).body;
  return log.slice(n).filter((e) => e.method !== 'GET' && !/\/_search(\?|$)/.test(e.url));
}

async function logLength() {
  return (await fhir(base, 'GET', '/_admin/requests')).body.length;
}

function onceByKey(list) {
  const byKey = new Map();
  for (const r of list) byKey.set(keyOf(r), (byKey.get(keyOf(r)) || 0) + 1);
  assert.deepEqual([...byKey].filter(([, c]) => c > 1), [], 'no episode has two resources');
  return byKey;
}

async function run(conf) {
  const r = await D.runOnce(conf.file);
  assert.equal(r.code, 0, r.log.slice(-3000));
  return r;
}

test.after(() => D.killAll());

test('detected-issue sink: write, idempotency, reconcile, clinician acknowledgement', { timeout: 900000 }, async (t) => {
  const dir = D.tmpdir('di');
  const list = await D.loadFreshCohort(base, dir, { patients: 52, seed: 'detected-issue' });
  const di = (name, lines = []) =>
    D.writeConfig(path.join(dir, name), base, { sinkType: 'detected-issue', readBack: 'DetectedIssue', sinkLines: lines });
  fs.mkdirSync(path.join(dir, 'a'));
  fs.mkdirSync(path.join(dir, 'b'));
  fs.mkdirSync(path.join(dir, 'shadow'));
  const conf = di('a');
  let issues;

  await t.test('first run: DetectedIssues, each episode once, none a Flag', async () => {
    const before = await logLength();
    await run(conf);
    issues = await all('DetectedIssue');
    assert.ok(issues.length >= 10, `DetectedIssues were written (${issues.length})`);
    onceByKey(issues);
    assert.deepEqual(await all('Flag'), [], 'no Flag written');
    const w = await writesSince(before);
    assert.ok(w.every((x) => x.url.startsWith('/DetectedIssue') && x.status === 201), JSON.stringify(w.slice(0, 5)));
    for (const r of issues) {
      assert.equal(r.status, 'final');
      assert.ok(['high', 'moderate', 'low'].includes(r.severity), r.severity);
      assert.match(r.patient.reference, /^Patient\//);
      assert.equal(r.author.reference, 'Device/painwatch');
      assert.ok(r.detail && r.detail.length > 10);
      // The clinician narrative a Flag carries, from the same builder.
      assert.equal(r.text.status, 'generated');
      assert.ok(r.text.div.startsWith('<div xmlns="http://www.w3.org/1999/xhtml">'), r.text.div.slice(0, 80));
      assert.ok(r.text.div.includes('painwatch rule ' + ruleOf(r)), r.text.div.slice(0, 200));
      assert.ok(ruleOf(r));
    }
    // The orders a finding rests on are implicated, and they are the server's own.
    const implicated = issues.flatMap((r) => r.implicated || []);
    assert.ok(implicated.length >= 5, 'orders implicated');
    for (const ref of implicated.slice(0, 10)) {
      assert.match(ref.reference, /^MedicationRequest\//);
      const id = ref.reference.split('/')[1];
      assert.equal((await fhir(base, 'GET', `/MedicationRequest/${id}`)).status, 200, ref.reference);
    }
    assert.ok(issues.some((r) => (r.evidence || []).length > 0), 'some evidence beside the orders');
  });

  await t.test('the same episode keys as the Flags of a shadow fhir-flag run', async () => {
    const shadow = D.writeConfig(path.join(dir, 'shadow'), base, { shadow: true });
    const before = await logLength();
    await run(shadow);
    assert.deepEqual(await writesSince(before), [], 'shadow mode wrote to the EHR');
    const file = path.join(dir, 'shadow', 'shadow-flags.ndjson');
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const flags = lines.map((l) => (l.resourceType === 'Flag' ? l : l.resource || l.flag || l)).filter((f) => f.resourceType === 'Flag');
    const flagKeys = [...new Set(flags.map(keyOf))].sort();
    assert.deepEqual([...new Set(issues.map(keyOf))].sort(), flagKeys);
  });

  await t.test('unchanged data: no write', async () => {
    const before = await logLength();
    await run(conf);
    assert.deepEqual((await writesSince(before)).map((x) => `${x.method} ${x.url}`), []);
  });

  await t.test('state lost: conditional create finds every DetectedIssue, none duplicated', async () => {
    const fresh = di('b');
    const before = await logLength();
    await run(fresh);
    const w = await writesSince(before);
    assert.equal(w.length, issues.length, 'one conditional create per episode');
    for (const x of w) {
      assert.equal(x.method, 'POST');
      assert.match(x.headers['if-none-exist'] || '', /^identifier=/);
      assert.equal(x.status, 200, 'found, not created');
    }
    assert.equal(onceByKey(await all('DetectedIssue')).size, issues.length);
  });

  await t.test('reconcile closes ended episodes; a clinician\'s mitigation or status stands', async () => {
    const conf2 = di('b'); // the run that now holds the episode map
    const byPatientRule = (pid, rule) => issues.find((r) => r.patient.reference === `Patient/${pid}` && ruleOf(r) === rule);
    const bowel = list.filter((p) => byPatientRule(p.id, 'bowel-regimen-missing'));
    assert.ok(bowel.length >= 2, `patients with bowel-regimen-missing (${bowel.length})`);
    const [pA, pC] = bowel;
    const A = byPatientRule(pA.id, 'bowel-regimen-missing'); // acknowledged by mitigation, then ends
    const C = byPatientRule(pC.id, 'bowel-regimen-missing'); // ends: painwatch closes it
    // cancelled by a clinician while its situation still holds (another patient's episode)
    const B = issues.find((r) => ![`Patient/${pA.id}`, `Patient/${pC.id}`].includes(r.patient.reference));

    // The clinician's edits, as an EHR would make them (version-checked).
    const getNow = async (r) => (await fhir(base, 'GET', `/DetectedIssue/${r.id}`)).body;
    const a = await getNow(A);
    a.mitigation = [{ action: { text: 'Discussed with the patient: stool softener declined' }, date: new Date().toISOString() }];
    const aw = await fhir(base, 'PUT', `/DetectedIssue/${a.id}`, a, { 'If-Match': `W/"${a.meta.versionId}"` });
    assert.equal(aw.status, 200, JSON.stringify(aw.body));
    const b = await getNow(B);
    b.status = 'cancelled';
    const bw = await fhir(base, 'PUT', `/DetectedIssue/${b.id}`, b, { 'If-Match': `W/"${b.meta.versionId}"` });
    assert.equal(bw.status, 200, JSON.stringify(bw.body));
    const aVer = aw.body.meta.versionId;
    const bVer = bw.body.meta.versionId;

    const now = Date.now() - 60000;
    for (const p of [pA, pC]) {
      const r = await fhir(base, 'POST', '/', M.addLaxative(p.id, now));
      assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 500));
    }
    const before = await logLength();
    await run(conf2);
    const w = await writesSince(before);
    assert.ok(w.some((x) => x.method === 'PUT' && x.url === `/DetectedIssue/${C.id}`), 'C closed');
    assert.ok(!w.some((x) => x.url.startsWith(`/DetectedIssue/${A.id}`)), 'A (clinician mitigation) not written');
    assert.ok(!w.some((x) => x.url.startsWith(`/DetectedIssue/${B.id}`)), 'B (clinician status) not written');
    assert.ok(!w.some((x) => x.method === 'POST' && x.url.startsWith('/DetectedIssue')), 'nothing re-created');

    const a2 = await getNow(A);
    assert.equal(a2.meta.versionId, aVer);
    assert.equal(a2.status, 'final');
    assert.deepEqual(a2.mitigation.map((m) => m.action.text), ['Discussed with the patient: stool softener declined']);
    const b2 = await getNow(B);
    assert.equal(b2.meta.versionId, bVer);
    assert.equal(b2.status, 'cancelled');
    const c2 = await getNow(C);
    assert.equal(c2.status, 'cancelled');
    assert.equal(c2.mitigation.length, 1);
    assert.equal(c2.mitigation[0].action.coding[0].system, MITIGATION_SYSTEM);
    assert.match(c2.mitigation[0].date, /^\d{4}-\d\d-\d\dT/);
    assert.ok(Date.parse(c2.mitigation[0].date) >= now - 120000, 'dated when painwatch saw it end');
    assert.match(c2.text.div, /<p>Resolved by painwatch on [^<]+: the finding no longer holds\.<\/p><\/div>$/);
    onceByKey(await all('DetectedIssue'));

    // And again: the acknowledged episodes stay as the clinician left them.
    const again = await logLength();
    await run(conf2);
    assert.deepEqual((await writesSince(again)).map((x) => `${x.method} ${x.url}`), []);
  });
  fs.rmSync(dir, { recursive: true, force: true });
});

test('sink.type auto: DetectedIssue when /metadata advertises it, else Flag', { timeout: 600000 }, async (t) => {
  const dir = D.tmpdir('di-auto');
  try {
    for (const [name, omit, want, other] of [
      ['with-di', [], 'DetectedIssue', 'Flag'],
      ['flag-only', ['DetectedIssue'], 'Flag', 'DetectedIssue'],
    ]) {
      await t.test(`${name}: ${want}`, async () => {
        await D.loadFreshCohort(base, path.join(dir, name), { patients: 12, seed: `auto-${name}` });
        assert.equal((await fhir(base, 'POST', '/_admin/metadata', { omit })).status, 200);
        const meta = (await fhir(base, 'GET', '/metadata')).body;
        assert.equal(meta.rest[0].resource.some((r) => r.type === 'DetectedIssue'), omit.length === 0);
        const conf = D.writeConfig(path.join(dir, name), base, { sinkType: 'auto' });
        const r = await run(conf);
        assert.match(r.log, new RegExp(`sink auto: writing ${want} resources`));
        assert.ok((await all(want)).length >= 1, `${want}s written`);
        assert.deepEqual(await all(other), [], `no ${other} written`);
      });
    }
  } finally {
    await fhir(base, 'POST', '/_admin/metadata', {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
