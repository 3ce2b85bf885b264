// SPDX-License-Identifier: Apache-2.0
// Issue 21: the CDS Hooks 2.0 service from a scripted client on loopback. The service runs on a
// real SQLite store, audit trail and configuration (tests/e2e/cds/cds_server.c); the EHR's keys
// (RSA and EC P-384) are made here, and every JWT is signed with them.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const {
  SERVICE_URL, ISS, OTHER_ISS, PV, OS, PA, PB, PC, PD, STORED, MORPHINE_ER, OXY_ER,
  rsa, ec, rogue, b64u, nowS, sign, claims, rsaToken, ecToken, cancer, med, senna,
  writeSetup, startServer, stopServer, pvRequest, osRequest, draft,
} = require('../cds/support.js');

const SERVER = process.env.PW_CDS_SERVER;

// ---- the CDS Hooks 2.0 card shape ------------------------------------------------------------

function assertCard(card) {
  assert.equal(typeof card.summary, 'string');
  assert.ok(card.summary.length > 0 && card.summary.length <= 140, `summary of ${card.summary.length} chars`);
  assert.ok(['info', 'warning', 'critical'].includes(card.indicator), `indicator ${card.indicator}`);
  assert.equal(typeof card.source, 'object');
  assert.equal(typeof card.source.label, 'string');
  assert.match(card.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  if (card.detail !== undefined) assert.equal(typeof card.detail, 'string');
  if (card.source.topic !== undefined) {
    assert.equal(typeof card.source.topic.code, 'string');
    assert.equal(typeof card.source.topic.system, 'string');
  }
  if (card.suggestions !== undefined) {
    assert.ok(Array.isArray(card.suggestions) && card.suggestions.length > 0);
    assert.ok(['at-most-one', 'any'].includes(card.selectionBehavior), 'selectionBehavior with suggestions');
    for (const s of card.suggestions) {
      assert.equal(typeof s.label, 'string');
      assert.match(s.uuid, /^[0-9a-f-]{36}$/);
      for (const a of s.actions || []) {
        assert.ok(['create', 'update', 'delete'].includes(a.type));
        assert.equal(typeof a.description, 'string');
        if (a.type === 'create') assert.equal(typeof a.resource.resourceType, 'string');
      }
    }
  }
  for (const k of Object.keys(card)) {
    assert.ok(['uuid', 'summary', 'detail', 'indicator', 'source', 'suggestions', 'selectionBehavior', 'overrideReasons', 'links'].includes(k), `card member ${k}`);
  }
}

const rulesOf = (body) => body.cards.map((c) => (c.source.topic || {}).code);

// ---- the service -------------------------------------------------------------------------------

let dir;
let srv;
let base;

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-'));
  writeSetup(dir);
  srv = await startServer(SERVER, dir);
  base = srv.base;
});

test.after(async () => {
  if (srv) {
    const code = await stopServer(srv.child);
    assert.equal(code, 0, `pw_cds_server exit ${code}: ${srv.stderr()}`);
    // No patient data in operational logs: no patient id reaches stderr.
    for (const p of [PA, PB, PC, PD]) assert.ok(!srv.stderr().includes(p), `operational log names ${p}`);
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function call(service, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}/cds-services/${service}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

test('discovery lists both services with their prefetch templates', async () => {
  const r = await fetch(`${base}/cds-services`);
  assert.equal(r.status, 200);
  const doc = await r.json();
  const byId = Object.fromEntries(doc.services.map((s) => [s.id, s]));
  assert.equal(byId[PV].hook, 'patient-view');
  assert.equal(byId[OS].hook, 'order-sign');
  for (const s of doc.services) {
    assert.equal(typeof s.description, 'string');
    assert.match(s.prefetch.patient, /\{\{context\.patientId\}\}/);
    assert.match(s.prefetch.medications, /^MedicationRequest\?patient=\{\{context\.patientId\}\}/);
  }
});

test('patient-view: cards from the stored findings (no prefetch: the store)', async () => {
  const r = await call(PV, pvRequest(PC), rsaToken(PV));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r.body.cards.forEach(assertCard);
  assert.ok(rulesOf(r.body).includes('bowel-regimen-missing'), rulesOf(r.body).join());
  const bowel = r.body.cards.find((c) => c.source.topic.code === 'bowel-regimen-missing');
  assert.equal(bowel.suggestions[0].actions[0].resource.resourceType, 'MedicationRequest');
  // The patient on morphine with rescue and laxative has no bowel or rescue card.
  const a = await call(PV, pvRequest(PA), ecToken(PV));
  assert.equal(a.status, 200);
  a.body.cards.forEach(assertCard);
  assert.ok(!rulesOf(a.body).includes('bowel-regimen-missing'));
  assert.ok(!rulesOf(a.body).includes('rescue-dose-missing'));
});

test('patient-view: a type the daemon could not read is no evidence of absence', async () => {
  // painwatchd tells the service what its pipeline could read per patient: MedicationRequest
  // refused (403) on its last read, so "no laxative ordered" proves nothing and no bowel card is
  // shown for the same stored patient that gets one above.
  const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-refused-'));
  writeSetup(dir2);
  const srv2 = await startServer(SERVER, dir2, ['--refused', 'MedicationRequest']);
  try {
    const r = await fetch(`${srv2.base}/cds-services/${PV}`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${rsaToken(PV)}` },
      body: JSON.stringify(pvRequest(PC)),
    });
    assert.equal(r.status, 200);
    const body = await r.json();
    body.cards.forEach(assertCard);
    assert.ok(!rulesOf(body).includes('bowel-regimen-missing'), rulesOf(body).join());
  } finally {
    assert.equal(await stopServer(srv2.child), 0, srv2.stderr());
    fs.rmSync(dir2, { recursive: true, force: true });
  }
});

test('patient-view: a prefetch is evaluated when the store does not know the patient', async () => {
  const empty = await call(PV, pvRequest(PD), rsaToken(PV));
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.body.cards, []);
  const prefetch = {
    patient: { resourceType: 'Patient', id: PD },
    medications: { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: med(PD, `mr-er-${PD}`, { ...OXY_ER, mg: 10, everyH: 12, hoursAgo: 72 }) }] },
    conditions: { resourceType: 'Bundle', type: 'searchset', entry: [{ resource: cancer(PD) }] },
    painScores: null,
  };
  const r = await call(PV, pvRequest(PD, prefetch), rsaToken(PV));
  assert.equal(r.status, 200);
  r.body.cards.forEach(assertCard);
  assert.ok(rulesOf(r.body).includes('bowel-regimen-missing'), rulesOf(r.body).join());
});

test('order-sign: a draft that doubles the baseline returns the titration card', async () => {
  const doubled = draft(med(PA, 'draft-er', { ...MORPHINE_ER, mg: 60, everyH: 12 }));
  const r = await call(OS, osRequest(PA, [doubled]), ecToken(OS));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r.body.cards.forEach(assertCard);
  assert.ok(rulesOf(r.body).includes('titration-step-too-large'), rulesOf(r.body).join());
  const card = r.body.cards.find((c) => c.source.topic.code === 'titration-step-too-large');
  assert.ok(['warning', 'critical'].includes(card.indicator));
  // A draft within the guide's step (+33%) brings no titration card.
  const modest = draft(med(PA, 'draft-ir', { ...MORPHINE_ER, mg: 10, everyH: 12 }));
  const ok = await call(OS, osRequest(PA, [modest]), rsaToken(OS));
  assert.equal(ok.status, 200);
  assert.ok(!rulesOf(ok.body).includes('titration-step-too-large'), rulesOf(ok.body).join());
});

test('order-sign: a new opioid with no laxative returns the bowel card with a senna suggestion', async () => {
  const oxy = draft(med(PB, 'draft-oxy', { ...OXY_ER, mg: 10, everyH: 12 }));
  const r = await call(OS, osRequest(PB, [oxy]), rsaToken(OS));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r.body.cards.forEach(assertCard);
  const bowel = r.body.cards.find((c) => c.source.topic.code === 'bowel-regimen-missing');
  assert.ok(bowel, rulesOf(r.body).join());
  const action = bowel.suggestions[0].actions[0];
  assert.equal(action.type, 'create');
  assert.equal(action.resource.resourceType, 'MedicationRequest');
  assert.equal(action.resource.subject.reference, `Patient/${PB}`);
  assert.match(action.resource.medicationCodeableConcept.text, /senn/i);
  // The same draft with a scheduled laxative beside it: no bowel card.
  const both = await call(OS, osRequest(PB, [oxy, draft(senna(PB, 'draft-lax'))]), rsaToken(OS));
  assert.equal(both.status, 200);
  assert.ok(!rulesOf(both.body).includes('bowel-regimen-missing'), rulesOf(both.body).join());
});

test('order-sign: an opioid draft painwatch cannot read gets a card saying so, not silence', async () => {
  const vague = draft(med(PB, 'draft-vague', { ...OXY_ER, mg: 10, everyH: 12 }));
  vague.dosageInstruction = [{ text: 'take as directed' }];
  const r = await call(OS, osRequest(PB, [vague]), rsaToken(OS));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r.body.cards.forEach(assertCard);
  const card = r.body.cards.find((c) => /could not check/.test(c.summary));
  assert.ok(card, JSON.stringify(r.body.cards.map((c) => c.summary)));
  assert.equal(card.indicator, 'warning');
  assert.match(card.detail, /sig/i);
  // A readable draft gets no such card.
  const clear = await call(OS, osRequest(PB, [draft(med(PB, 'draft-oxy', { ...OXY_ER, mg: 10, everyH: 12 }))]), rsaToken(OS));
  assert.ok(!clear.body.cards.some((c) => /could not check/.test(c.summary)));
});

test('every JWT failure is 401', async () => {
  const req = () => pvRequest(PC);
  const cases = {
    'no token': undefined,
    'not a JWT': 'abc',
    'wrong key': sign('RS384', rogue.privateKey, 'ehr-rsa', claims(PV)),
    'wrong key, no kid': sign('RS384', rogue.privateKey, undefined, claims(PV)),
    expired: rsaToken(PV, { iat: nowS() - 3600, exp: nowS() - 1800 }),
    'too long lived': rsaToken(PV, { exp: nowS() + 24 * 3600 }),
    'wrong audience': rsaToken(PV, { aud: 'https://elsewhere.example/cds-services/' + PV }),
    'audience of the other service': rsaToken(PV, { aud: `${SERVICE_URL}/cds-services/${OS}` }),
    'iss not allowed': rsaToken(PV, { iss: 'https://intruder.example' }),
    'iss allowed, other issuer key': sign('ES384', ec.privateKey, 'ehr-ec', claims(PV, { iss: OTHER_ISS })),
    'no jti': rsaToken(PV, { jti: undefined }),
    'no exp': rsaToken(PV, { exp: undefined }),
    'alg none': `${b64u(JSON.stringify({ alg: 'none' }))}.${b64u(JSON.stringify(claims(PV)))}.`,
    'alg HS384': (() => {
      const input = `${b64u(JSON.stringify({ alg: 'HS384', kid: 'ehr-rsa' }))}.${b64u(JSON.stringify(claims(PV)))}`;
      return `${input}.${crypto.createHmac('sha384', rsa.publicKey.export({ format: 'pem', type: 'spki' })).update(input).digest('base64url')}`;
    })(),
  };
  for (const [name, token] of Object.entries(cases)) {
    const r = await call(PV, req(), token);
    assert.equal(r.status, 401, `${name}: ${r.status} ${JSON.stringify(r.body)}`);
    assert.ok(!('cards' in r.body), name);
  }
  // Replayed jti: the first use is answered, the second refused.
  const once = rsaToken(PV);
  assert.equal((await call(PV, req(), once)).status, 200);
  assert.equal((await call(PV, req(), once)).status, 401);
  // The base service URL is an accepted audience too (CDS Hooks 2.0 leaves the choice to the EHR).
  assert.equal((await call(PV, req(), rsaToken(PV, { aud: SERVICE_URL }))).status, 200);
});

test('each hook call is audited (the call, and each finding carded)', async () => {
  const lines = fs.readFileSync(path.join(dir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const calls = lines.filter((l) => l.subtype === 'cds-hook');
  assert.ok(calls.some((l) => l.outcome === 0 && l.painwatch.service === OS && l.entity.some((e) => e.what === `Patient/${PA}`)));
  assert.ok(calls.some((l) => l.outcome === 4 && l.painwatch.http_status === 401));
  const carded = lines.filter((l) => l.subtype === 'finding-carded');
  assert.ok(carded.some((l) => l.painwatch.rule === 'titration-step-too-large'));
  assert.ok(carded.some((l) => l.painwatch.rule === 'bowel-regimen-missing'));
});

test('a flood of refused calls: the first of each minute audited, the rest counted in one record', async () => {
  const dir3 = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-flood-'));
  writeSetup(dir3, undefined, { cds: ['refused_audit_per_minute: 3'] });
  const srv3 = await startServer(SERVER, dir3);
  try {
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${srv3.base}/cds-services/${PV}`, {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer not-a-jwt' },
        body: JSON.stringify(pvRequest(PC)),
      });
      assert.equal(r.status, 401); // counted or not, every refused call is refused
    }
    // An accepted call is still audited one by one.
    const ok = await fetch(`${srv3.base}/cds-services/${PV}`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${rsaToken(PV)}` },
      body: JSON.stringify(pvRequest(PC)),
    });
    assert.equal(ok.status, 200);
  } finally {
    assert.equal(await stopServer(srv3.child), 0, srv3.stderr());
  }
  // Stopped within the minute: its count is written at shutdown.
  const calls = fs.readFileSync(path.join(dir3, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((l) => l.subtype === 'cds-hook');
  assert.equal(calls.filter((l) => l.painwatch.http_status === 401).length, 3);
  const counted = calls.filter((l) => l.painwatch.refused_401 !== undefined);
  assert.equal(counted.length, 1);
  assert.equal(counted[0].painwatch.refused_401, 7);
  assert.equal(calls.filter((l) => l.painwatch.http_status === 200).length, 1);
  fs.rmSync(dir3, { recursive: true, force: true });
});

test('a malformed call is 400 and an unknown service 404', async () => {
  assert.equal((await call(PV, { hook: 'order-sign', hookInstance: 'x', context: { patientId: PA } }, rsaToken(PV))).status, 400);
  assert.equal((await call(PV, { hook: 'patient-view', hookInstance: 'x', context: { patientId: '../x' } }, rsaToken(PV))).status, 400);
  assert.equal((await call('nope', pvRequest(PA), rsaToken(PV))).status, 404);
});

// The daemon wires the service: painwatchd with cds_hooks enabled answers on its own listener
// (no FHIR server needed for that: the one configured is down, which READY reports and waits out).
test('painwatchd serves the CDS Hooks service it is configured with', { skip: !process.env.PAINWATCHD && 'PAINWATCHD not set' }, async () => {
  const ddir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-daemon-'));
  writeSetup(ddir, []);
  const conf = fs.readFileSync(path.join(ddir, 'painwatch.yaml'), 'utf8')
    .replace('audit:\n', 'health:\n  enabled: false\naudit:\n');
  fs.writeFileSync(path.join(ddir, 'painwatch.yaml'), conf);
  const { spawn } = require('node:child_process');
  const d = spawn(process.env.PAINWATCHD, ['--config', path.join(ddir, 'painwatch.yaml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PAINWATCH_LOG_LEVEL: 'info' } });
  let log = '';
  try {
    const port = await new Promise((resolve, reject) => {
      const seen = (b) => {
        log += b;
        const m = /serving CDS Hooks on \S+ \(port (\d+)/.exec(log);
        if (m) resolve(Number(m[1]));
      };
      d.stdout.on('data', seen);
      d.stderr.on('data', seen);
      d.on('exit', (code) => reject(new Error(`painwatchd exited ${code}: ${log}`)));
    });
    const dbase = `http://127.0.0.1:${port}`;
    const disc = await fetch(`${dbase}/cds-services`);
    assert.equal(disc.status, 200);
    assert.equal((await disc.json()).services.length, 2);
    const post = (token) => fetch(`${dbase}/cds-services/${PV}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(pvRequest(PA)) });
    assert.equal((await post()).status, 401);
    const ok = await post(rsaToken(PV));
    assert.equal(ok.status, 200);
    assert.deepEqual((await ok.json()).cards, []);
  } finally {
    const exited = new Promise((resolve) => d.on('exit', (code) => resolve(code)));
    if (d.exitCode === null) d.kill('SIGTERM');
    const code = await exited;
    assert.equal(code, 0, `painwatchd exit ${code}: ${log}`);
    assert.ok(!log.includes(PA), 'operational log names the patient');
    fs.rmSync(ddir, { recursive: true, force: true });
  }
});

// TLS on the listener itself (libmicrohttpd's), with a certificate made here; plain HTTP only on
// loopback, which `painwatch config check` enforces.
test('TLS on the listener; plain HTTP refused off loopback', async () => {
  const { execFileSync } = require('node:child_process');
  const https = require('node:https');
  const tdir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(tdir, 'tls.key'), '-out', path.join(tdir, 'tls.crt')], { stdio: 'ignore' });
    fs.chmodSync(path.join(tdir, 'tls.key'), 0o600);
    writeSetup(tdir, STORED, { cds: [`tls_cert: ${tdir}/tls.crt`, `tls_key: ${tdir}/tls.key`] });
    const tsrv = await startServer(SERVER, tdir);
    const port = new URL(tsrv.base).port;
    const ca = fs.readFileSync(path.join(tdir, 'tls.crt'));
    const request = (method, p, body, token) => new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: p, method, ca, agent: false, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
        const tls = res.socket.getProtocol(); // the socket is detached once the body has ended
        let data = '';
        res.on('data', (c) => { data += c; });
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode, body: JSON.parse(data), tls });
          } catch (e) {
            reject(e);
          }
        });
      });
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });
    try {
      const disc = await request('GET', '/cds-services');
      assert.equal(disc.status, 200);
      assert.match(disc.tls, /^TLSv1\.[23]$/);
      const r = await request('POST', `/cds-services/${PV}`, pvRequest(PC), rsaToken(PV));
      assert.equal(r.status, 200);
      assert.ok(rulesOf(r.body).includes('bowel-regimen-missing'));
      await assert.rejects(fetch(`http://127.0.0.1:${port}/cds-services`)); // no plain HTTP there
    } finally {
      assert.equal(await stopServer(tsrv.child), 0, tsrv.stderr());
    }
  } finally {
    fs.rmSync(tdir, { recursive: true, force: true });
  }
});

test('config check refuses plain HTTP off loopback', { skip: !process.env.PAINWATCH && 'PAINWATCH not set' }, () => {
  const { spawnSync } = require('node:child_process');
  const cdir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-conf-'));
  try {
    writeSetup(cdir, [], { listen: '0.0.0.0:9188' });
    const r = spawnSync(process.env.PAINWATCH, ['config', 'check', path.join(cdir, 'painwatch.yaml')], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr + r.stdout, /cds_hooks\.listen.*plain HTTP only on a loopback address/);
  } finally {
    fs.rmSync(cdir, { recursive: true, force: true });
  }
});

// An issuer whose keys are at a URL: fetched through painwatch's HTTP client at start, and again
// (at most once a minute) when a token names a kid painwatch does not hold.
test('keys from a JWKS URL', async () => {
  const http = require('node:http');
  const urlIss = 'https://url-ehr.test.example';
  const fetched = [];
  let keys = [{ ...ec.publicKey.export({ format: 'jwk' }), kid: 'url-1', alg: 'ES384', use: 'sig' }];
  const jwksServer = http.createServer((req, res) => {
    fetched.push(req.url);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys }));
  });
  await new Promise((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  const udir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-url-'));
  writeSetup(udir, STORED, { issuers: [`- iss: ${urlIss}`, `  jwks_url: http://127.0.0.1:${jwksServer.address().port}/jwks.json`] });
  const usrv = await startServer(SERVER, udir);
  const post = (token) => fetch(`${usrv.base}/cds-services/${PV}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(pvRequest(PC)) });
  const token = (kid) => sign('ES384', ec.privateKey, kid, claims(PV, { iss: urlIss }));
  try {
    let status = 0;
    for (let i = 0; i < 100 && status !== 200; i++) { // the first fetch starts with the service
      status = (await post(token('url-1'))).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200);
    assert.deepEqual(fetched, ['/jwks.json']);
    // The EHR rotates to a new key: a token of an unknown kid is refused and triggers no fetch
    // within the minute after the last one (no fetch storm from forged kids).
    keys = [{ ...rsa.publicKey.export({ format: 'jwk' }), kid: 'url-2', alg: 'RS384', use: 'sig' }];
    assert.equal((await post(sign('RS384', rsa.privateKey, 'url-2', claims(PV, { iss: urlIss })))).status, 401);
    assert.equal(fetched.length, 1);
    // Another issuer's keys never verify this issuer's tokens.
    assert.equal((await post(sign('RS384', rsa.privateKey, 'ehr-rsa', claims(PV, { iss: urlIss })))).status, 401);
  } finally {
    assert.equal(await stopServer(usrv.child), 0, usrv.stderr());
    jwksServer.close();
    fs.rmSync(udir, { recursive: true, force: true });
  }
});
