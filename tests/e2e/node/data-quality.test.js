// SPDX-License-Identifier: Apache-2.0
// Data-quality events in the daemon (a number painwatch is not sure of becomes a data-quality
// event, never advice): painwatchd against the reference server with the cohort's data-quality
// archetypes records each event once in the audit trail ("data-quality": patient, resource, code,
// detail), not again while the patients are re-evaluated by time, counts them by code in
// /metrics, and keeps the detail out of its operational log; the trail still verifies.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { E2E_DIR, serverBase, fhir } = require('./support.js');
const D = require('./daemon-support.js');
const { generate } = require(path.join(E2E_DIR, 'cohort/generate.js'));
const { loadCohort } = require(path.join(E2E_DIR, 'cohort/load.js'));

const base = serverBase();
const ARCH = ['dq-text-only-rescue-sig', 'dq-unknown-drug', 'dq-epic-style-orders', 'rescue-use-frequent'];

/** A data-quality record's event: patient, code and the resource (without its version). */
function eventOf(rec) {
  const patient = rec.entity.find((e) => e.role === 'patient');
  const res = rec.entity.find((e) => e.role === 'resource');
  const what = res ? res.what.replace(/\/_history\/.*$/, '') : '-';
  return `${patient ? patient.what : '?'} ${rec.painwatch.code} ${what}`;
}

test('data-quality events: recorded once per episode, counted by code', async () => {
  const dir = D.tmpdir('dq');
  try {
    assert.equal((await fhir(base, 'POST', '/_admin/reset')).status, 200);
    const list = generate({ patients: ARCH.length, seed: 'dq', anchor: new Date(), archetypes: ARCH });
    const cohort = path.join(dir, 'cohort');
    fs.mkdirSync(cohort);
    for (const p of list) fs.writeFileSync(path.join(cohort, `${p.id}.bundle.json`), JSON.stringify(p.bundle));
    await loadCohort(base, cohort);
    // One sync cycle only: a re-evaluation timer that fires during a cycle defers to the cycle's
    // end, so with cycles every 10 s a loaded machine might never log a time-driven pass.
    const conf = D.writeConfig(dir, base, { health: true, logLevel: 'debug', pollInterval: '1h' });
    const d = D.startDaemon(conf.file);
    const port = await D.healthPort(d);

    // The evaluation after the first sync cycle, then two time-driven re-evaluations (every
    // 10 s: the patients have orders in force).
    await d.waitFor(/evaluation after a sync cycle of [0-9]+ patient/);
    let from = d.log().length;
    await d.waitFor(/time-driven re-evaluation of [0-9]+ patient/, from);
    from = d.log().length;
    await d.waitFor(/time-driven re-evaluation of [0-9]+ patient/, from);
    const mtext = (await D.healthGet(port, '/metrics')).text;
    const m = D.parsePrometheus(mtext);
    d.child.kill('SIGTERM');
    const ex = await d.stopped();
    assert.equal(ex.code, 0, d.log().slice(-2000));

    const recs = D.trailRecords(conf.trail).filter((x) => x.subtype === 'data-quality');
    assert.ok(recs.length >= 2, `data-quality records in the trail (${recs.length})`);
    const seen = new Map();
    for (const r of recs) {
      assert.equal(r.type, 'painwatch');
      assert.ok(typeof r.painwatch.code === 'string' && r.painwatch.code.length > 0);
      seen.set(eventOf(r), (seen.get(eventOf(r)) || 0) + 1);
    }
    assert.deepEqual([...seen].filter(([, n]) => n > 1), [], 'an event recorded more than once while it stood');
    // The free-text-only rescue order: its dose cannot be read.
    const textOnly = `Patient/${list[0].id}`;
    const sig = recs.find((r) => eventOf(r).startsWith(`${textOnly} unstructured-sig MedicationRequest/`));
    assert.ok(sig, `an unstructured-sig record for ${textOnly}: ${JSON.stringify(recs.map(eventOf))}`);
    assert.match(sig.painwatch.detail, /free-text/);
    // A patient whose data painwatch can read has none.
    const clean = `Patient/${list[3].id}`;
    assert.deepEqual(recs.map(eventOf).filter((e) => e.startsWith(`${clean} `)), [], `no record for ${clean}`);

    // The counter by code equals the records written by this process (one per event).
    assert.equal(m.types.get('painwatch_data_quality_events_total'), 'counter');
    const codes = new Set(recs.map((r) => r.painwatch.code));
    for (const code of codes) {
      assert.equal(
        D.metricSum(m.samples, 'painwatch_data_quality_events_total', { code }),
        recs.filter((r) => r.painwatch.code === code).length,
        `painwatch_data_quality_events_total{code="${code}"}\n${mtext}`,
      );
    }
    assert.equal(D.metricSum(m.samples, 'painwatch_data_quality_events_total'), recs.length, mtext);
    for (const key of m.samples.keys()) {
      if (key.startsWith('painwatch_data_quality_events_total{')) assert.doesNotMatch(key, /Patient|\//, key);
    }

    // The operational log names the code and the resource at most, never the detail.
    const log = d.log();
    assert.match(log, /data-quality event unstructured-sig on MedicationRequest\//);
    for (const r of recs) {
      if (r.painwatch.detail) assert.ok(!log.includes(r.painwatch.detail), `detail in the log: ${r.painwatch.detail}`);
    }

    // The auditor's tools: the trail verifies; show lists the records of a patient.
    const v = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
    const s = D.cli(['audit', 'show', '--patient', textOnly, conf.trail]);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /data-quality .*unstructured-sig/);
  } finally {
    D.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
