// SPDX-License-Identifier: Apache-2.0
// painwatchd as hospital IT and auditors meet it (issues 6 and 7), against the reference server
// behind a gate proxy that can hold the daemon's Flag writes in flight: operational logs free of
// patient data while the audit trail has what an auditor needs and verifies; fail-closed delivery
// while the trail is unwritable, resuming with nothing lost; /metrics as Prometheus text with
// moving counters; SIGHUP with a good and a bad configuration; SIGTERM mid-delivery.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { serverBase, fhir } = require('./support.js');
const D = require('./daemon-support.js');

const base = serverBase();
const isFlagWrite = (i) => i.method !== 'GET' && i.url.includes('/Flag');
/** The episode key a Flag write carries (its identifier), or null. */
function episodeOf(info) {
  const ids = JSON.parse(info.body.toString()).identifier || [];
  const id = ids.find((x) => x.system === D.EPISODE_SYSTEM);
  return id ? id.value : null;
}

function keysOnce(flags, expected) {
  const byKey = new Map();
  for (const f of flags) byKey.set(f.key, (byKey.get(f.key) || 0) + 1);
  assert.deepEqual([...byKey].filter(([, c]) => c > 1), [], 'no episode has two Flags');
  assert.deepEqual([...byKey.keys()].sort(), expected, 'exactly the Flags of a clean run');
}

/** Values in the cohort that identify a patient or are clinical data: none may reach the log. */
function phiOf(list) {
  const strings = new Set();
  const decimals = new Set();
  for (const p of list) {
    for (const { resource: r } of p.bundle.entry) {
      if (r.resourceType === 'Patient') {
        for (const n of r.name || []) {
          for (const g of n.given || []) strings.add(g);
          if (n.family) strings.add(n.family);
        }
        if (r.birthDate) strings.add(r.birthDate);
        for (const id of r.identifier || []) strings.add(id.value);
      }
      if (r.resourceType === 'Observation') {
        if (r.effectiveDateTime) strings.add(r.effectiveDateTime);
        const v = r.valueQuantity && r.valueQuantity.value;
        if (typeof v === 'number' && !Number.isInteger(v)) decimals.add(String(v));
      }
      if (r.resourceType === 'MedicationRequest' && r.authoredOn) strings.add(r.authoredOn);
    }
  }
  return { strings: [...strings].filter((s) => s.length >= 3), decimals: [...decimals] };
}

test('logs carry no patient data; the trail has what an auditor needs and verifies', async () => {
  const dir = D.tmpdir('logs');
  try {
    const list = await D.loadFreshCohort(base, dir, { patients: 20, seed: 'logs' });
    const conf = D.writeConfig(dir, base, { logLevel: 'debug' });
    const r = await D.runOnce(conf.file);
    assert.equal(r.code, 0, r.log);
    assert.match(r.log, /cycle done/);

    const phi = phiOf(list);
    assert.ok(phi.strings.length > 40 && phi.decimals.length > 0, 'the cohort has names, dates and scores');
    const esc = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    for (const s of phi.strings) {
      assert.doesNotMatch(r.log, new RegExp(`(^|[^A-Za-z0-9])${esc(s)}([^A-Za-z0-9]|$)`), `operational log contains "${s}"`);
    }
    for (const v of phi.decimals) {
      assert.doesNotMatch(r.log, new RegExp(`(^|[^0-9.])${v.replace('.', '\\.')}(?![0-9]|\\.[0-9])`), `score ${v} in the log`);
    }
    // Doses, MME, scores and resource bodies in any form.
    assert.doesNotMatch(r.log, /\b[0-9]+(\.[0-9]+)?\s?(mg|mcg|mL|MME)\b/i, 'a dose in the log');
    assert.doesNotMatch(r.log, /[0-9](\.[0-9])?\/10\b/, 'a pain score in the log');
    assert.doesNotMatch(r.log, /"(valueQuantity|doseQuantity|birthDate|name|text|numbers)"/, 'resource JSON in the log');

    // The trail: for every Flag on the server, why it was raised (patient, rule, numbers) and
    // that it was written (the Flag's id), plus the searches that read the data.
    const flags = await D.serverFlags(base);
    assert.ok(flags.length >= 5, `Flags were written (${flags.length})`);
    const recs = D.trailRecords(conf.trail);
    const patientOf = (rec) => (rec.entity || []).find((e) => e.role === 'patient');
    for (const f of flags) {
      const raised = recs.find((x) => x.subtype === 'finding-raised' && x.painwatch.episode === f.key);
      assert.ok(raised, `finding-raised for ${f.rule} ${f.subject}`);
      assert.equal(raised.painwatch.rule, f.rule);
      assert.equal(patientOf(raised).what, f.subject);
      assert.ok(typeof raised.painwatch.text === 'string' && /[0-9]/.test(raised.painwatch.text), 'a readable reason with its numbers');
      const nums = Object.values(raised.painwatch.numbers || {});
      assert.ok(nums.length > 0 && nums.every((n) => typeof n === 'number'), `numbers for ${f.rule}`);
      const delivered = recs.find((x) => x.subtype === 'flag-delivered' && x.painwatch.episode === f.key);
      assert.ok(delivered, `flag-delivered for ${f.key}`);
      assert.ok(delivered.entity.some((e) => e.what.startsWith(`Flag/${f.id}`)), 'names the Flag written');
    }
    for (const x of recs.filter((y) => y.subtype === 'finding-raised')) {
      assert.ok(!r.log.includes(x.painwatch.text.slice(0, 30)), 'a finding\'s text in the log');
    }
    // One search record per server and sync cycle (issue 19): its pages counted, the patients
    // and resource ids read listed.
    const searches = recs.filter((x) => x.subtype === 'search');
    assert.ok(searches.length >= 1, 'the sync cycle\'s searches are in the trail');
    const pages = searches.reduce((n, x) => n + (x.painwatch.pages || 0), 0);
    assert.ok(pages >= 5, `every search page is counted in the trail (${pages})`);
    for (const f of flags) {
      assert.ok(searches.some((x) => x.entity.some((e) => e.role === 'patient' && e.what === f.subject)),
        `a search record names ${f.subject}, whose data was read`);
    }

    const v = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
    // The same check fails on a copy with one byte changed (so it can fail at all).
    const copy = path.join(dir, 'tampered.jsonl');
    const bytes = fs.readFileSync(conf.trail);
    const at = bytes.indexOf('"finding-raised"') + 3;
    bytes[at] = bytes[at] === 0x6e ? 0x6d : 0x6e;
    fs.writeFileSync(copy, bytes);
    const bad = D.cli(['audit', 'verify', '--key', path.join(conf.state, 'audit.key'), copy]);
    assert.equal(bad.status, 1, `a flipped byte is detected: ${bad.stdout}${bad.stderr}`);
  } finally {
    D.killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('audit trail unwritable: no Flag is written; restored: delivery resumes, nothing lost; /metrics moves', async () => {
  const dir = D.tmpdir('failclosed');
  const gate = new D.Gate(base);
  await gate.start();
  try {
    await D.loadFreshCohort(base, dir, { patients: 16, seed: 'failclosed' });
    const expected = await D.expectedKeys(path.join(dir, 'ref'), base);
    assert.ok(expected.length >= 4, `a clean run raises Flags (${expected.length})`);

    // Flag writes wait at the gate until the trail has been made unwritable.
    gate.hold(isFlagWrite);
    fs.mkdirSync(path.join(dir, 'run'));
    const conf = D.writeConfig(path.join(dir, 'run'), gate.base, { health: true });
    const d = D.startDaemon(conf.file);
    const port = await D.healthPort(d);
    const held = await gate.waitHeld(1);
    const m1 = D.parsePrometheus((await D.healthGet(port, '/metrics')).text).samples;
    assert.equal(D.metricSum(m1, 'painwatch_flags_created_total'), 0, 'nothing delivered yet');

    // The trail's directory goes away and SIGHUP reopens it: the trail cannot be written.
    const auditDir = path.dirname(conf.trail);
    fs.renameSync(auditDir, `${auditDir}.away`);
    let mark = d.log().length;
    d.child.kill('SIGHUP');
    await d.waitFor(/reloaded/, mark);
    const ready = await D.healthGet(port, '/readyz');
    assert.equal(ready.status, 503, ready.text);
    assert.match(ready.text, /NOT writable/);

    // What was already in flight reaches the server; from now on nothing may.
    const before = gate.seen.filter(isFlagWrite).length;
    mark = d.log().length;
    gate.hold(isFlagWrite); // still holding: anything new would queue here and be counted
    const inflight = gate.held.splice(0);
    await Promise.all(inflight.map((h) => h.release()));
    await d.waitFor(/delivered but not audited/, mark);
    // Observe a few outbox scans (they run every second at most while blocked, and rows kept
    // pending are due again after a second): a leak would show up here as a new Flag write.
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(gate.seen.filter(isFlagWrite).length, before, 'no Flag write while the trail is unwritable');
    assert.equal(gate.held.length, 0);
    assert.ok(held >= 1);
    assert.equal((await D.serverFlags(base)).length, inflight.length, 'only the writes sent before');

    // Restored: delivery resumes by itself and every Flag arrives exactly once.
    fs.renameSync(`${auditDir}.away`, auditDir);
    gate.hold(null);
    await D.until('every expected Flag on the server', async () => (await D.serverFlags(base)).length >= expected.length);
    // The server has them a moment before painwatchd has counted the last answer.
    const m2text = await D.until('every delivery counted', async () => {
      const text = (await D.healthGet(port, '/metrics')).text;
      return D.metricSum(D.parsePrometheus(text).samples, 'painwatch_flags_created_total') >= expected.length && text;
    });
    const m2 = D.parsePrometheus(m2text).samples;
    keysOnce(await D.serverFlags(base), expected);

    // Counters moved: resources ingested, findings, requests answered 201, Flags created.
    assert.ok(D.metricSum(m2, 'painwatch_resources_ingested_total') > 0, m2text);
    assert.ok(D.metricSum(m2, 'painwatch_resources_ingested_total') >= D.metricSum(m1, 'painwatch_resources_ingested_total'));
    assert.ok(D.metricSum(m2, 'painwatch_findings_total') >= expected.length, m2text);
    assert.ok(D.metricSum(m1, 'painwatch_http_requests_total', { server: 'ehr', status: '200' }) > 0, 'the sync was counted');
    assert.equal(D.metricSum(m1, 'painwatch_http_requests_total', { server: 'ehr', status: '201' }), 0);
    assert.ok(D.metricSum(m2, 'painwatch_http_requests_total', { server: 'ehr', status: '201' }) >= 1, m2text);
    assert.ok(D.metricSum(m2, 'painwatch_http_requests_total') > D.metricSum(m1, 'painwatch_http_requests_total'));
    assert.equal(D.metricSum(m2, 'painwatch_flags_created_total'), expected.length, m2text);
    assert.ok(D.metricSum(m2, 'painwatch_audit_records_total') > D.metricSum(m1, 'painwatch_audit_records_total'), m2text);
    assert.ok(D.metricSum(m1, 'painwatch_audit_records_total') > 0, 'audit records counted');
    assert.equal(D.metricSum(m2, 'painwatch_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(m2.get('painwatch_build_info{version="' + /version="([^"]+)"/.exec(m2text)[1] + '"}'), 1);

    // SIGTERM: exit 0; the trail records the outage, every delivery, and verifies.
    d.child.kill('SIGTERM');
    const ex = await d.stopped();
    assert.equal(ex.code, 0, d.log().slice(-2000));
    const recs = D.trailRecords(conf.trail);
    assert.ok(recs.some((x) => x.subtype === 'audit-resumed'), 'the trail says it resumed');
    for (const key of expected) {
      assert.ok(recs.some((x) => x.subtype === 'flag-delivered' && x.painwatch.episode === key), `flag-delivered for ${key}`);
    }
    const v = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
  } finally {
    D.killAll();
    await gate.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGHUP good and bad configuration; SIGTERM mid-delivery loses nothing', async () => {
  const dir = D.tmpdir('signals');
  const gate = new D.Gate(base);
  await gate.start();
  try {
    await D.loadFreshCohort(base, dir, { patients: 16, seed: 'signals' });
    const expected = await D.expectedKeys(path.join(dir, 'ref'), base);
    assert.ok(expected.length >= 4, `a clean run raises Flags (${expected.length})`);
    const rdir = path.join(dir, 'run');
    fs.mkdirSync(rdir);

    // Phase 1: Flag writes held at the gate, i.e. in flight, for good.
    gate.hold(isFlagWrite);
    let conf = D.writeConfig(rdir, gate.base, { health: true, shutdownTimeout: '2s' });
    let d = D.startDaemon(conf.file);
    const port = await D.healthPort(d);
    await gate.waitHeld(1);

    // A good file: new log level and a rule setting; counted, audited with its new hash.
    D.writeConfig(rdir, gate.base, { health: true, shutdownTimeout: '2s', logLevel: 'debug', rules: { 'bowel-regimen-missing': { min_opioid_h: 30 } } });
    let mark = d.log().length;
    d.child.kill('SIGHUP');
    await d.waitFor(/reloaded/, mark);
    const loaded = D.trailRecords(conf.trail).filter((x) => x.subtype === 'config-loaded');
    assert.equal(loaded.length, 2, 'start and the good reload');
    assert.notEqual(loaded[0].painwatch.config_hash, loaded[1].painwatch.config_hash);

    // logrotate moves the trail away, and the SIGHUP that follows comes with a bad file (unknown
    // key): the configuration is refused, the reason logged with the key, the daemon runs on,
    // and the trail is reopened all the same.
    fs.renameSync(conf.trail, `${conf.trail}.1`);
    fs.appendFileSync(conf.file, 'no_such_key: 1\n');
    mark = d.log().length;
    d.child.kill('SIGHUP');
    await d.waitFor(/reload refused/, mark);
    assert.match(d.log().slice(mark), /no_such_key/, 'the bad key is named');
    assert.equal((await D.healthGet(port, '/healthz')).status, 200, 'still running');
    const m = D.parsePrometheus((await D.healthGet(port, '/metrics')).text).samples;
    assert.equal(D.metricSum(m, 'painwatch_config_reloads_total', { result: 'ok' }), 1);
    assert.equal(D.metricSum(m, 'painwatch_config_reloads_total', { result: 'error' }), 1);
    const reopened = D.trailRecords(conf.trail);
    assert.equal(reopened[0].type, 'header', 'a new live file was started at the SIGHUP');
    assert.deepEqual(reopened.filter((x) => x.subtype === 'config-loaded'), [], 'the bad file is not recorded as loaded');

    // SIGTERM while the writes hang: exit 0 after the shutdown timeout, the rows stay queued.
    const heldNow = gate.held.length;
    d.child.kill('SIGTERM');
    let ex = await d.stopped();
    assert.equal(ex.code, 0, d.log().slice(-2000));
    assert.ok(heldNow >= 1 && gate.held.length >= heldNow, 'it exited although its writes never completed');
    // The server applies them after all; painwatchd never heard (an unknown outcome).
    await gate.releaseAll();

    // Phase 2: SIGTERM while writes are in flight that then complete: they are finished and
    // recorded, and the daemon exits once nothing is in flight (shutdown_timeout is long).
    conf = D.writeConfig(rdir, gate.base, { health: true, shutdownTimeout: '5m' });
    gate.hold(isFlagWrite);
    d = D.startDaemon(conf.file);
    await gate.waitHeld(1);
    mark = d.log().length;
    d.child.kill('SIGTERM');
    await d.waitFor(/stopping/, mark);
    const finishing = gate.held.map((h) => episodeOf(h.info));
    assert.ok(finishing.length >= 1 && finishing.every(Boolean), 'the writes in flight name their episodes');
    await gate.releaseAll();
    ex = await d.stopped();
    assert.equal(ex.code, 0, d.log().slice(-2000));
    // What records a delivery is the outbox row and the trail, not the operational log: its
    // lines of one kind are rate-limited (a sixth "done" line within the window is folded into
    // a "suppressed" count).
    const list = D.cli(['outbox', 'list', '--all', '--json', '--config', conf.file]);
    assert.equal(list.status, 0, list.stderr);
    const rows = list.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
    const delivered = D.trailRecords(conf.trail).filter((x) => x.subtype === 'flag-delivered');
    for (const key of finishing) {
      const row = rows.find((r) => r.episode === key);
      assert.ok(row && row.state === 'done' && !row.outcome_unknown,
        `the write in flight for ${key} was finished: ${JSON.stringify(row)}\n${d.log().slice(mark)}`);
      assert.ok(delivered.some((x) => x.painwatch.episode === key), `flag-delivered for ${key}`);
    }

    // Phase 3: a restart delivers the rest; every Flag exactly once.
    const last = await D.runOnce(conf.file);
    assert.equal(last.code, 0, last.log);
    keysOnce(await D.serverFlags(base), expected);
    await fhir(base, 'DELETE', '/_admin/requests');
    const again = await D.runOnce(conf.file);
    assert.equal(again.code, 0, again.log);
    assert.deepEqual(await D.serverWrites(base), [], 'a restart after a completed cycle writes nothing');
    // The rotated and the live file chain up.
    const v = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
  } finally {
    D.killAll();
    await gate.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
