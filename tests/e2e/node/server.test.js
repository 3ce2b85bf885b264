// SPDX-License-Identifier: Apache-2.0
// Proves the reference FHIR server itself: paging, _lastUpdated search, conditional create,
// validation of Flags, If-Match, transactions and the request log that later tests rely on.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { E2E_DIR, serverBase, fhir, searchAll, unique } = require('./support.js');

const base = serverBase();
const RULE_SYSTEM = 'https://painwatch.example/fhir/CodeSystem/painwatch-rule';
const EPISODE_SYSTEM = 'https://painwatch.example/fhir/episode';

function patient(id) {
  return { resourceType: 'Patient', id, name: [{ family: 'Test', given: ['E2e'] }] };
}

function painScore(patientId, value, when) {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime: when,
    valueQuantity: { value, unit: '{score}', system: 'http://unitsofmeasure.org', code: '{score}' },
  };
}

/** A Flag shaped as issue 5 describes. */
function validFlag(patientId, key) {
  return {
    resourceType: 'Flag',
    extension: [
      {
        url: 'http://hl7.org/fhir/StructureDefinition/flag-priority',
        valueCodeableConcept: { coding: [{ system: 'http://hl7.org/fhir/flag-priority-code', code: 'PM', display: 'Medium priority' }] },
      },
      { url: 'http://hl7.org/fhir/StructureDefinition/flag-detail', valueReference: { reference: 'MedicationRequest/mr-1' } },
    ],
    text: {
      status: 'generated',
      div: '<div xmlns="http://www.w3.org/1999/xhtml"><p>Rescue dose 5 mg oral morphine = 4.2% of 24-h baseline 120 MME; guide: 10-20%, i.e. 12-24 mg (factor set cdc2022).</p></div>',
    },
    identifier: [{ system: EPISODE_SYSTEM, value: key }],
    status: 'active',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'drug', display: 'Drug' }] }],
    code: {
      coding: [{ system: RULE_SYSTEM, code: 'rescue-dose-out-of-range', display: 'Rescue dose out of range' }],
      text: 'Rescue dose 5 mg oral morphine = 4.2% of 24-h baseline 120 MME; guide: 10-20%, i.e. 12-24 mg',
    },
    subject: { reference: `Patient/${patientId}` },
    period: { start: '2026-01-02T03:04:05Z' },
    author: { reference: 'Device/painwatch-gateway', display: 'painwatch' },
  };
}

test('metadata advertises what painwatch needs', async () => {
  const r = await fhir(base, 'GET', '/metadata');
  assert.equal(r.status, 200);
  assert.equal(r.body.resourceType, 'CapabilityStatement');
  assert.equal(r.body.fhirVersion.slice(0, 3), '4.0');
  const rest = r.body.rest[0];
  const byType = Object.fromEntries(rest.resource.map((x) => [x.type, x]));
  for (const [type, params] of Object.entries({
    Observation: ['_lastUpdated', 'patient', 'code', 'date'],
    MedicationRequest: ['_lastUpdated', 'patient', 'authoredon', 'status'],
    Flag: ['_lastUpdated', 'patient', 'identifier'],
  })) {
    const names = byType[type].searchParam.map((p) => p.name);
    for (const p of params) assert.ok(names.includes(p), `${type} lacks search param ${p}`);
  }
  assert.equal(byType.Flag.conditionalCreate, true);
  assert.ok(byType.Flag.interaction.some((i) => i.code === 'create'));
  assert.ok(byType.Flag.interaction.some((i) => i.code === 'update'));
  assert.ok(rest.searchParam.some((p) => p.name === '_sort'));
});

test('search pages with a default _count, next links and fullUrl', async () => {
  const pid = unique('page');
  assert.equal((await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid))).status < 300, true);
  const created = new Set();
  for (let i = 0; i < 45; i++) {
    const r = await fhir(base, 'POST', '/Observation', painScore(pid, (i % 10) + 0.5, '2026-01-01T00:00:00Z'));
    assert.equal(r.status, 201, JSON.stringify(r.body));
    created.add(r.body.id);
  }
  const first = await fhir(base, 'GET', `/Observation?patient=Patient/${pid}`);
  assert.equal(first.body.type, 'searchset');
  assert.equal(first.body.entry.length, 20, 'default _count is 20');
  assert.ok(first.body.link.find((l) => l.relation === 'self'));
  const { entries, pages } = await searchAll(base, `/Observation?patient=Patient/${pid}&_count=7`);
  assert.equal(pages.length, 7); // 6 full pages of 7 + 3
  assert.equal(pages.at(-1).link.find((l) => l.relation === 'next'), undefined);
  const ids = entries.map((e) => e.resource.id);
  assert.equal(new Set(ids).size, 45, 'no entry twice across pages');
  assert.deepEqual(new Set(ids), created);
  for (const e of entries) {
    assert.equal(e.fullUrl, `${base}/Observation/${e.resource.id}`);
  }
  const big = await fhir(base, 'GET', `/Observation?patient=Patient/${pid}&_count=5000`);
  assert.equal(big.body.entry.length, 45);
  assert.match(big.body.link[0].url, /_count=1000/, 'page size is capped at 1000');
});

test('reference searches accept a bare id, Type/id and a type modifier', async () => {
  const pid = unique('ref');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  await fhir(base, 'POST', '/Observation', painScore(pid, 2, '2026-01-01T00:00:00Z'));
  for (const q of [`patient=${pid}`, `patient=Patient/${pid}`, `subject=${pid}`, `subject:Patient=${pid}`, `patient=${pid},nobody-else`]) {
    const r = await fhir(base, 'GET', `/Observation?${q}`);
    assert.equal((r.body.entry || []).length, 1, q);
  }
  const none = await fhir(base, 'GET', `/Observation?subject:Group=${pid}`);
  assert.equal(none.body.entry, undefined);
});

test('_lastUpdated=gt with _sort returns only what changed after the cursor', async () => {
  const pid = unique('lu');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  const a = await fhir(base, 'POST', '/Observation', painScore(pid, 3, '2026-01-01T00:00:00Z'));
  await new Promise((r) => setTimeout(r, 20));
  const b = await fhir(base, 'POST', '/Observation', painScore(pid, 4, '2026-01-01T01:00:00Z'));
  await new Promise((r) => setTimeout(r, 20));
  const c = await fhir(base, 'POST', '/Observation', painScore(pid, 5, '2026-01-01T02:00:00Z'));
  const cursor = encodeURIComponent(a.body.meta.lastUpdated);
  const r = await fhir(base, 'GET', `/Observation?patient=Patient/${pid}&_lastUpdated=gt${cursor}&_sort=_lastUpdated`);
  assert.deepEqual(r.body.entry.map((e) => e.resource.id), [b.body.id, c.body.id]);
  const desc = await fhir(base, 'GET', `/Observation?patient=Patient/${pid}&_sort=-_lastUpdated`);
  assert.deepEqual(desc.body.entry.map((e) => e.resource.id), [c.body.id, b.body.id, a.body.id]);
});

test('conditional create: concurrent identical requests leave one Flag', async () => {
  const pid = unique('cc');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  const key = unique('episode');
  const results = await Promise.all(
    Array.from({ length: 8 }, () =>
      fhir(base, 'POST', '/Flag', validFlag(pid, key), { 'If-None-Exist': `identifier=${EPISODE_SYSTEM}|${key}` }),
    ),
  );
  const statuses = results.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
  assert.equal(new Set(results.map((r) => r.body.id)).size, 1, 'every answer names the same Flag');
  const s = await fhir(base, 'GET', `/Flag?identifier=${encodeURIComponent(`${EPISODE_SYSTEM}|${key}`)}`);
  assert.equal(s.body.entry.length, 1);
  const log = await fhir(base, 'GET', '/_admin/requests');
  const mine = log.body.filter((e) => e.headers['if-none-exist'] === `identifier=${EPISODE_SYSTEM}|${key}`);
  assert.equal(mine.length, 8, 'the request log keeps If-None-Exist');
  assert.deepEqual(mine.map((e) => e.status).sort(), statuses);
});

test('invalid Flags are rejected with 400 and an OperationOutcome naming the element', async () => {
  const pid = unique('bad');
  const key = unique('bad-episode');
  const noCode = validFlag(pid, key);
  delete noCode.code;
  let r = await fhir(base, 'POST', '/Flag', noCode);
  assert.equal(r.status, 400);
  assert.equal(r.body.resourceType, 'OperationOutcome');
  assert.ok(r.body.issue.some((i) => (i.expression || []).includes('Flag.code')), JSON.stringify(r.body));

  const bogus = { ...validFlag(pid, key), status: 'bogus' };
  r = await fhir(base, 'POST', '/Flag', bogus);
  assert.equal(r.status, 400, 'the R4 JSON schema catches what Medplum alone accepts');
  assert.ok(r.body.issue.some((i) => (i.expression || []).includes('Flag.status')), JSON.stringify(r.body));

  r = await fhir(base, 'POST', '/Flag', { ...validFlag(pid, key), period: { start: '2024-13-45' } });
  assert.equal(r.status, 400);
  r = await fhir(base, 'POST', '/Flag', { ...validFlag(pid, key), priority: 'high' });
  assert.equal(r.status, 400, 'unknown element');

  // The same checks apply inside a transaction, and nothing of it is stored.
  r = await fhir(base, 'POST', '/', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { resource: patient(pid), request: { method: 'PUT', url: `Patient/${pid}` } },
      { resource: bogus, request: { method: 'POST', url: 'Flag' } },
    ],
  });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal((await fhir(base, 'GET', `/Patient/${pid}`)).status, 404, 'a failed transaction stores nothing');
  const s = await fhir(base, 'GET', `/Flag?identifier=${encodeURIComponent(`${EPISODE_SYSTEM}|${key}`)}`);
  assert.equal(s.body.entry, undefined, 'no invalid Flag was stored');
});

test('a Flag shaped as issue 5 is accepted and reads back unchanged', async () => {
  const pid = unique('ok');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  const flag = validFlag(pid, unique('ok-episode'));
  const r = await fhir(base, 'POST', '/Flag', flag);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.match(r.headers.get('location'), new RegExp(`/Flag/${r.body.id}/_history/`));
  assert.equal(r.headers.get('etag'), `W/"${r.body.meta.versionId}"`);
  const back = await fhir(base, 'GET', `/Flag/${r.body.id}`);
  const { id, meta, ...content } = back.body;
  assert.deepEqual(content, flag);
  assert.ok(id && meta.versionId && meta.lastUpdated);
});

test('If-Match: update with the current version succeeds, a stale one gets 412', async () => {
  const pid = unique('im');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  const created = await fhir(base, 'POST', '/Flag', validFlag(pid, unique('im-episode')));
  const v1 = created.body.meta.versionId;
  const inactive = { ...created.body, status: 'inactive', period: { start: '2026-01-02T03:04:05Z', end: '2026-01-03T00:00:00Z' } };
  delete inactive.meta;
  const ok = await fhir(base, 'PUT', `/Flag/${created.body.id}`, inactive, { 'If-Match': `W/"${v1}"` });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.notEqual(ok.body.meta.versionId, v1);
  const stale = await fhir(base, 'PUT', `/Flag/${created.body.id}`, { ...inactive, status: 'entered-in-error' }, { 'If-Match': `W/"${v1}"` });
  assert.equal(stale.status, 412);
  const now = await fhir(base, 'GET', `/Flag/${created.body.id}`);
  assert.equal(now.body.status, 'inactive', 'the stale write changed nothing');
});

test('instance history: newest first on every read, with request and response', async () => {
  const pid = unique('hist');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  const created = await fhir(base, 'POST', '/Flag', validFlag(pid, unique('hist-episode')));
  const v = [created.body.meta.versionId];
  for (const status of ['inactive', 'entered-in-error']) {
    const next = { ...created.body, status };
    delete next.meta;
    const r = await fhir(base, 'PUT', `/Flag/${created.body.id}`, next);
    v.push(r.body.meta.versionId);
  }
  for (let i = 0; i < 3; i++) {
    const h = await fhir(base, 'GET', `/Flag/${created.body.id}/_history`);
    assert.equal(h.body.type, 'history');
    assert.deepEqual(h.body.entry.map((e) => e.resource.meta.versionId), [...v].reverse(), `read ${i + 1}`);
    assert.deepEqual(h.body.entry.map((e) => e.request.method), ['PUT', 'PUT', 'POST']);
    assert.equal(h.body.entry[0].response.etag, `W/"${v[2]}"`);
  }
  const old = await fhir(base, 'GET', `/Flag/${created.body.id}/_history/${v[0]}`);
  assert.equal(old.body.status, 'active');
});

test('transaction bundles resolve urn:uuid references', async () => {
  const mrn = unique('mrn');
  const r = await fhir(base, 'POST', '/', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:6d3f0a3e-0000-4000-8000-000000000001',
        resource: { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: mrn }] },
        request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=urn:test:mrn|${mrn}` },
      },
      {
        resource: painScore('x', 6.5, '2026-01-01T00:00:00Z'),
        request: { method: 'POST', url: 'Observation' },
      },
    ].map((e, i) => {
      if (i === 1) e.resource.subject = { reference: 'urn:uuid:6d3f0a3e-0000-4000-8000-000000000001' };
      return e;
    }),
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.type, 'transaction-response');
  assert.deepEqual(r.body.entry.map((e) => e.response.status.slice(0, 3)), ['201', '201']);
  const pat = await fhir(base, 'GET', `/Patient?identifier=urn:test:mrn|${mrn}`);
  const pid = pat.body.entry[0].resource.id;
  const obs = await fhir(base, 'GET', `/Observation?patient=Patient/${pid}`);
  assert.equal(obs.body.entry.length, 1);
  assert.equal(obs.body.entry[0].resource.valueQuantity.value, 6.5);
});

test('a second server with a base path pages under that path and stops on SIGTERM', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-e2e-'));
  const portFile = path.join(dir, 'port');
  const pid = execFileSync('sh', [path.join(E2E_DIR, 'server/start.sh'), portFile, path.join(dir, 'log'), '120', '--base', '/fhir/R4'], { encoding: 'utf8' }).trim();
  try {
    const b2 = `http://127.0.0.1:${fs.readFileSync(portFile, 'utf8').trim()}`;
    assert.equal((await fhir(b2, 'GET', '/metadata')).status, 404, 'nothing outside the base');
    const p = unique('bp');
    assert.equal((await fhir(b2, 'PUT', `/fhir/R4/Patient/${p}`, patient(p))).status < 300, true);
    for (let i = 0; i < 3; i++) await fhir(b2, 'POST', '/fhir/R4/Observation', painScore(p, i, '2026-01-01T00:00:00Z'));
    const { entries, pages } = await searchAll(b2, `/fhir/R4/Observation?_count=2`);
    assert.equal(entries.length, 3);
    assert.ok(pages[0].link.find((l) => l.relation === 'next').url.startsWith(`${b2}/fhir/R4/Observation?`));
    assert.ok(entries[0].fullUrl.startsWith(`${b2}/fhir/R4/Observation/`));
  } finally {
    execFileSync('sh', [path.join(E2E_DIR, 'server/stop.sh'), pid]);
  }
  let alive = true;
  try {
    process.kill(Number(pid), 0);
  } catch {
    alive = false;
  }
  assert.equal(alive, false, 'stop.sh left no process behind');
  assert.equal(fs.existsSync(portFile), false, 'the port file goes with the server');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('injected faults: 503 with Retry-After, error after processing, connection dropped', async () => {
  const pid = unique('fault');
  await fhir(base, 'PUT', `/Patient/${pid}`, patient(pid));
  const key = unique('fault-episode');
  const search = `/Flag?identifier=${encodeURIComponent(`${EPISODE_SYSTEM}|${key}`)}`;
  const ine = { 'If-None-Exist': `identifier=${EPISODE_SYSTEM}|${key}` };
  try {
    // Refused before processing: nothing stored, Retry-After given.
    let r = await fhir(base, 'POST', '/_admin/faults', { method: 'POST', path: '/Flag', when: 'before', status: 503, retryAfter: 2 });
    assert.equal(r.status, 200);
    r = await fhir(base, 'POST', '/Flag', validFlag(pid, key), ine);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '2');
    assert.equal((await fhir(base, 'GET', search)).body.entry, undefined);

    // Processed, then answered 500: the retry with If-None-Exist finds it (200, no duplicate).
    await fhir(base, 'POST', '/_admin/faults', { method: 'POST', path: '/Flag', when: 'after', status: 500 });
    r = await fhir(base, 'POST', '/Flag', validFlag(pid, key), ine);
    assert.equal(r.status, 500);
    const stored = (await fhir(base, 'GET', search)).body.entry;
    assert.equal(stored.length, 1);
    r = await fhir(base, 'POST', '/Flag', validFlag(pid, key), ine);
    assert.equal(r.status, 200);
    assert.equal(r.body.id, stored[0].resource.id);

    // Processed, then the connection is dropped: the client sees a transport error.
    const key2 = unique('drop-episode');
    await fhir(base, 'POST', '/_admin/faults', { method: 'POST', path: '/Flag', when: 'drop-after' });
    await assert.rejects(fhir(base, 'POST', '/Flag', validFlag(pid, key2)));
    const s2 = await fhir(base, 'GET', `/Flag?identifier=${encodeURIComponent(`${EPISODE_SYSTEM}|${key2}`)}`);
    assert.equal(s2.body.entry.length, 1, 'the write happened although no answer came');

    const log = (await fhir(base, 'GET', '/_admin/requests')).body;
    assert.deepEqual(log.filter((e) => e.fault).slice(-3).map((e) => [e.fault, e.status]), [['before', 503], ['after', 500], ['drop-after', 0]]);
    assert.deepEqual((await fhir(base, 'GET', '/_admin/faults')).body, [], 'each fault fired once');
    r = await fhir(base, 'POST', '/_admin/faults', { when: 'sideways' });
    assert.equal(r.status, 400);
  } finally {
    await fhir(base, 'DELETE', '/_admin/faults');
  }
});
