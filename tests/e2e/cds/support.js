// SPDX-License-Identifier: Apache-2.0
// Issue 21: what the CDS Hooks test (tests/e2e/node/cds-hooks.test.js) and benchmark
// (tests/bench/cds_hooks.js) share: the EHR's keys and JWTs, the patients, the service's
// configuration and its start (tests/e2e/cds/cds_server.c).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');

const SERVICE_URL = 'https://cds.test.example/painwatch';
const ISS = 'https://ehr.test.example';
const OTHER_ISS = 'https://other-ehr.test.example';
const PV = 'painwatch-patient-view';
const OS = 'painwatch-order-sign';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
const rogue = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });

const jwk = (pair, kid, alg) => ({ ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' });
const b64u = (s) => Buffer.from(s).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);
const iso = (hoursAgo) => new Date(Date.now() - hoursAgo * 3600e3).toISOString();

function sign(alg, key, kid, claims, header = {}) {
  const input = `${b64u(JSON.stringify({ alg, typ: 'JWT', kid, ...header }))}.${b64u(JSON.stringify(claims))}`;
  const sig = crypto.sign('sha384', Buffer.from(input), alg === 'ES384' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${sig.toString('base64url')}`;
}

function claims(service, over = {}) {
  return { iss: ISS, sub: 'ehr-client', aud: `${SERVICE_URL}/cds-services/${service}`, iat: nowS(), exp: nowS() + 60, jti: crypto.randomUUID(), ...over };
}

const rsaToken = (service, over) => sign('RS384', rsa.privateKey, 'ehr-rsa', claims(service, over));
const ecToken = (service, over) => sign('ES384', ec.privateKey, 'ehr-ec', claims(service, over));

// ---- fixtures: three patients with cancer, as the store holds them -------------------------

const cancer = (p) => ({
  resourceType: 'Condition', id: `cond-${p}`, meta: { versionId: '1' },
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
  verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
  code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'C50.912', display: 'Malignant neoplasm of left breast' }] },
  subject: { reference: `Patient/${p}` }, onsetDateTime: iso(24 * 90),
});
const score = (p, id, value, hoursAgo) => ({
  resourceType: 'Observation', id, meta: { versionId: '1' }, status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }] },
  subject: { reference: `Patient/${p}` }, effectiveDateTime: iso(hoursAgo), valueInteger: value,
});
const med = (p, id, { code, display, mg, everyH, prn = false, hoursAgo = 0, status = 'active' }) => ({
  resourceType: 'MedicationRequest', id, meta: { versionId: '1' }, status, intent: 'order',
  medicationCodeableConcept: { coding: [{ system: RXNORM, code, display }], text: display },
  subject: { reference: `Patient/${p}` }, authoredOn: iso(hoursAgo),
  dosageInstruction: [{
    text: `${mg} mg every ${everyH} h${prn ? ' as needed' : ''}`, asNeededBoolean: prn,
    route: { coding: [{ system: 'http://snomed.info/sct', code: '26643006', display: 'Oral route' }] },
    timing: { repeat: { frequency: 1, period: everyH, periodUnit: 'h' } },
    doseAndRate: [{ doseQuantity: { value: mg, unit: 'mg', system: 'http://unitsofmeasure.org', code: 'mg' } }],
  }],
});
const MORPHINE_ER = { code: '891885', display: '12 HR morphine sulfate 30 MG Extended Release Oral Tablet' };
const MORPHINE_IR = { code: '892494', display: 'morphine sulfate 10 MG Oral Tablet' };
const OXY_ER = { code: '1049502', display: '12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet' };
const OXY_IR = { code: '1049621', display: 'oxycodone hydrochloride 5 MG Oral Tablet' };
const senna = (p, id) => ({
  resourceType: 'MedicationRequest', id, meta: { versionId: '1' }, status: 'active', intent: 'order',
  medicationCodeableConcept: { text: 'sennosides 8.6 mg oral tablet' }, subject: { reference: `Patient/${p}` }, authoredOn: iso(120),
  dosageInstruction: [{ text: '2 tablets at bedtime', timing: { repeat: { frequency: 1, period: 1, periodUnit: 'd' } },
    doseAndRate: [{ doseQuantity: { value: 2, unit: 'tablet' } }] }],
});

const tag = crypto.randomBytes(3).toString('hex');
const PA = `cds-a-${tag}`; // on morphine ER 30 mg q12h with rescue and laxative: the doubling draft
const PB = `cds-b-${tag}`; // no opioid yet: the new-opioid draft without a laxative
const PC = `cds-c-${tag}`; // on oxycodone ER for 3 days, no laxative: patient-view shows it
const PD = `cds-d-${tag}`; // not in the store: only the prefetch knows it

const STORED = [
  cancer(PA), score(PA, `obs-${PA}`, 5, 20),
  med(PA, `mr-er-${PA}`, { ...MORPHINE_ER, mg: 30, everyH: 12, hoursAgo: 24 * 5 }),
  med(PA, `mr-ir-${PA}`, { ...MORPHINE_IR, mg: 10, everyH: 4, prn: true, hoursAgo: 24 * 5 }),
  senna(PA, `mr-lax-${PA}`),
  cancer(PB), score(PB, `obs-${PB}`, 6, 20),
  cancer(PC), score(PC, `obs-${PC}`, 4, 20),
  med(PC, `mr-er-${PC}`, { ...OXY_ER, mg: 10, everyH: 12, hoursAgo: 72 }),
  med(PC, `mr-ir-${PC}`, { ...OXY_IR, mg: 5, everyH: 4, prn: true, hoursAgo: 72 }),
];

// ---- the service -------------------------------------------------------------------------------

/**
 * Write the keys, the store's resources and the configuration into @p dir; @p cds: more lines of
 * the cds_hooks section (e.g. tls_cert), @p listen its listen address, @p issuers more lines of
 * its issuers list.
 */
function writeSetup(dir, stored = STORED, { cds = [], listen = '127.0.0.1:0', issuers = [] } = {}) {
  fs.mkdirSync(path.join(dir, 'state'));
  fs.mkdirSync(path.join(dir, 'keys'), { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'keys/audit.key'), crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'ehr-jwks.json'), JSON.stringify({ keys: [jwk(rsa, 'ehr-rsa', 'RS384'), jwk(ec, 'ehr-ec', 'ES384')] }));
  fs.writeFileSync(path.join(dir, 'other-jwks.json'), JSON.stringify({ keys: [jwk(other, 'other-ec', 'ES384')] }));
  fs.writeFileSync(path.join(dir, 'resources.json'), JSON.stringify(stored));
  fs.writeFileSync(path.join(dir, 'painwatch.yaml'), [
    `state_dir: ${dir}/state`,
    'audit:',
    `  path: ${dir}/audit.jsonl`,
    `  key_file: ${dir}/keys/audit.key`,
    'servers:',
    '  - name: ehr',
    '    base_url: http://127.0.0.1:9/fhir',
    '    auth:',
    '      type: none',
    '    cohort:',
    '      type: server-wide',
    '    resources: [Observation, MedicationRequest, Condition]',
    'cds_hooks:',
    '  enabled: true',
    `  listen: ${listen}`,
    ...cds.map((l) => `  ${l}`),
    `  service_url: ${SERVICE_URL}`,
    '  issuers:',
    `    - iss: ${ISS}`,
    `      jwks_file: ${dir}/ehr-jwks.json`,
    `    - iss: ${OTHER_ISS}`,
    `      jwks_file: ${dir}/other-jwks.json`,
    ...issuers.map((l) => `    ${l}`),
    '',
  ].join('\n'));
}

/** Start @p server on @p dir's setup; resolves to { child, base, stderr() } once it listens. */
async function startServer(server, dir, args = []) {
  const child = spawn(server, [path.join(dir, 'painwatch.yaml'), path.join(dir, 'resources.json'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`pw_cds_server exited ${code}: ${err}`)));
  });
  return { child, base: `http://127.0.0.1:${port}`, stderr: () => err };
}

/** SIGTERM, then the exit code. */
async function stopServer(child) {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

const pvRequest = (patient, prefetch) => ({
  hookInstance: crypto.randomUUID(), hook: 'patient-view', fhirServer: 'https://ehr.test.example/fhir',
  context: { userId: 'Practitioner/dr-1', patientId: patient }, ...(prefetch ? { prefetch } : {}),
});
const osRequest = (patient, drafts) => ({
  hookInstance: crypto.randomUUID(), hook: 'order-sign', fhirServer: 'https://ehr.test.example/fhir',
  context: { userId: 'Practitioner/dr-1', patientId: patient, draftOrders: { resourceType: 'Bundle', type: 'collection', entry: drafts.map((resource) => ({ resource })) } },
});
const draft = (r) => ({ ...r, status: 'draft', authoredOn: undefined, meta: undefined });

module.exports = {
  SERVICE_URL, ISS, OTHER_ISS, PV, OS, PA, PB, PC, PD, STORED, MORPHINE_ER, OXY_ER, OXY_IR,
  rsa, ec, rogue, b64u, nowS, sign, claims, rsaToken, ecToken, cancer, med, senna,
  writeSetup, startServer, stopServer, pvRequest, osRequest, draft,
};
