// SPDX-License-Identifier: Apache-2.0
// The cohort generator: deterministic, every rule covered both ways, every resource valid R4,
// and regimen changes shaped so that the expected findings follow from the data alone.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawnSync } = require('node:child_process');
const { E2E_DIR } = require('./support.js');

const GEN = path.join(E2E_DIR, 'cohort/generate.js');
const { RULES, ARCHETYPES, generate } = require(GEN);
const ANCHOR = '2026-03-01T09:30:00Z';
const SEVERITIES = ['high', 'medium', 'low', 'info'];

function run(args) {
  return spawnSync(process.execPath, [GEN, ...args], { encoding: 'utf8' });
}

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cohort-'));
}

function readDir(dir) {
  return Object.fromEntries(fs.readdirSync(dir).sort().map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
}

test('same seed and anchor give the same bytes; another seed other patients, same findings', () => {
  const a = tmpdir();
  const b = tmpdir();
  const c = tmpdir();
  try {
    for (const [dir, seed] of [[a, '42'], [b, '42'], [c, '43']]) {
      const r = run(['--out', dir, '--seed', seed, '--anchor', ANCHOR]);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.deepEqual(readDir(a), readDir(b));
    const ea = JSON.parse(fs.readFileSync(path.join(a, 'pw42-008.expected.json'), 'utf8'));
    const ec = JSON.parse(fs.readFileSync(path.join(c, 'pw43-008.expected.json'), 'utf8'));
    assert.deepEqual(ea.expected, ec.expected);
    assert.notEqual(fs.readFileSync(path.join(a, 'pw42-008.bundle.json'), 'utf8'), fs.readFileSync(path.join(c, 'pw43-008.bundle.json'), 'utf8').replaceAll('pw43', 'pw42'));
  } finally {
    for (const d of [a, b, c]) fs.rmSync(d, { recursive: true, force: true });
  }
});

test('the default cohort covers every rule of issue 3 with firing and near-miss patients', () => {
  const list = generate({ patients: ARCHETYPES.length, seed: '1', anchor: new Date(ANCHOR) });
  assert.equal(Object.keys(RULES).length, 17);
  for (const rule of Object.keys(RULES)) {
    assert.ok(list.some((p) => p.expected.expected.some((e) => e.rule === rule)), `${rule} fires for nobody`);
    assert.ok(list.some((p) => p.expected.near_miss.includes(rule)), `${rule} has no near-miss patient`);
  }
  for (const p of list) {
    const e = p.expected;
    assert.equal(e.patient, `Patient/${p.id}`);
    assert.equal(e.anchor, ANCHOR);
    assert.ok(e.why.length > 20);
    for (const f of e.expected) {
      assert.ok(RULES[f.rule], `unknown rule ${f.rule}`);
      assert.ok(SEVERITIES.includes(f.severity));
      assert.ok(RULES[f.rule].split('|').includes(f.severity), `${f.rule} cannot be ${f.severity}`);
      assert.ok(!e.must_not.includes(f.rule));
    }
    assert.equal(e.expected.length + e.must_not.length, Object.keys(RULES).length, 'expected + must_not = every rule');
    for (const r of e.near_miss) assert.ok(e.must_not.includes(r), `${p.id}: near miss ${r} is expected`);
  }
  const ids = new Set(ARCHETYPES.map((a) => a.id));
  assert.equal(ids.size, ARCHETYPES.length, 'archetype ids are unique');
});

test('regimen changes: the old order stops exactly when its replacement starts', () => {
  const list = generate({ patients: ARCHETYPES.length, seed: '5', anchor: new Date(ANCHOR) });
  let changes = 0;
  for (const p of list) {
    const byId = new Map(p.bundle.entry.map((e) => [`${e.resource.resourceType}/${e.resource.id}`, e.resource]));
    for (const { resource: r } of p.bundle.entry) {
      assert.equal(r.subject ? r.subject.reference : `Patient/${p.id}`, `Patient/${p.id}`);
      if (r.resourceType !== 'MedicationRequest') continue;
      if (r.status === 'stopped' || r.status === 'completed') {
        assert.ok(r.dispenseRequest.validityPeriod.end, `${r.id}: a stopped order carries its end`);
      }
      if (!r.priorPrescription) continue;
      changes++;
      const prior = byId.get(r.priorPrescription.reference);
      assert.ok(prior, `${r.id}: prior ${r.priorPrescription.reference} is in the bundle`);
      assert.equal(prior.status, 'stopped');
      assert.equal(prior.dispenseRequest.validityPeriod.end, r.dispenseRequest.validityPeriod.start);
      assert.equal(r.authoredOn, r.dispenseRequest.validityPeriod.start);
    }
    // Everything happened before the anchor.
    for (const { resource: r } of p.bundle.entry) {
      for (const t of [r.effectiveDateTime, r.authoredOn, r.issued]) {
        if (t) assert.ok(Date.parse(t) < Date.parse(ANCHOR), `${r.id} at ${t} is after the anchor`);
      }
    }
  }
  assert.ok(changes >= 15, `only ${changes} regimen changes`);
});

test('pain scores respect the archetype thresholds and some are decimals', () => {
  const list = generate({ patients: ARCHETYPES.length * 3, seed: 'thresholds', anchor: new Date(ANCHOR) });
  let decimals = 0;
  for (const p of list) {
    const scores = p.bundle.entry.filter((e) => e.resource.resourceType === 'Observation' && e.resource.code.coding[0].code !== '9279-1').map((e) => e.resource.valueQuantity.value);
    for (const v of scores) {
      assert.ok(v >= 0 && v <= 10);
      if (!Number.isInteger(v)) decimals++;
    }
    if (p.expected.archetype === 'clean-low-pain-untyped') assert.ok(scores.every((v) => v < 4), `${p.id}: ${scores}`);
    if (p.expected.archetype === 'reassess-after-high-score') assert.ok(scores.at(-1) >= 7);
    if (p.expected.archetype === 'pain-uncontrolled') assert.ok(scores.slice(-3).every((v) => v >= 7));
  }
  assert.ok(decimals > 20, 'decimals occur, as in real data');
});

test('every generated bundle passes both validators (validate.js)', () => {
  const dir = tmpdir();
  try {
    assert.equal(run(['--out', dir, '--seed', '9', '--anchor', ANCHOR]).status, 0);
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.bundle.json')).map((f) => path.join(dir, f));
    const out = execFileSync(process.execPath, [path.join(E2E_DIR, 'server/validate.js'), ...files], { encoding: 'utf8' });
    assert.match(out, / 0 errors/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('validate.js rejects an invalid Flag and names the element', () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'flag.ndjson');
    fs.writeFileSync(file, [
      JSON.stringify({ resourceType: 'Flag', status: 'active', code: { text: 'x' }, subject: { reference: 'Patient/1' } }),
      JSON.stringify({ resourceType: 'Flag', status: 'bogus', code: { text: 'x' }, subject: { reference: 'Patient/1' } }),
    ].join('\n') + '\n');
    const r = spawnSync(process.execPath, [path.join(E2E_DIR, 'server/validate.js'), file], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /flag\.ndjson:2: Flag\/\(no id\): Flag\.status/);
    assert.doesNotMatch(r.stderr, /flag\.ndjson:1:/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad arguments exit 2 with a message', () => {
  let r = run(['--out', '/nonexistent-never', '--anchor', '2026-03-01']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /RFC 3339/);
  r = run(['--patients', '0', '--out', '/tmp/x']);
  assert.equal(r.status, 2);
  r = run(['--out', '/tmp/x', '--archetypes', 'clean-morphine,no-such']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown archetype 'no-such'/);
  const mix = generate({ patients: 10, seed: 's', anchor: new Date(ANCHOR), archetypes: ['clean-morphine', 'clean-morphine', 'rescue-missing'] });
  assert.deepEqual(mix.map((p) => p.expected.archetype).filter((a) => a === 'rescue-missing').length, 3);
  r = run(['--list']);
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim().split('\n').length, ARCHETYPES.length);
});

test('an independent reading of the rules (cohort/oracle.js) agrees with every sidecar', () => {
  const { oracle } = require(path.join(E2E_DIR, 'cohort/oracle.js'));
  for (const seed of ['1', '2', 'oracle']) {
    for (const anchor of ['2026-03-01T09:30:00Z', '2026-06-15T23:50:00Z', '2026-12-31T00:10:00Z']) {
      for (const p of generate({ patients: ARCHETYPES.length, seed, anchor: new Date(anchor) })) {
        const got = oracle(p.bundle, p.expected.anchor); // throws when readings disagree
        const want = new Map(p.expected.expected.map((e) => [e.rule, e.severity]));
        assert.deepEqual([...got].sort(), [...want].sort(), `${p.id} ${p.expected.archetype} at ${anchor}`);
      }
    }
  }
});

test('the oracle is not blind: removing a laxative, a referral or a pain score changes its answer', () => {
  const { oracle } = require(path.join(E2E_DIR, 'cohort/oracle.js'));
  const list = generate({ patients: ARCHETYPES.length, seed: 'mut', anchor: new Date(ANCHOR) });
  const find = (id) => structuredClone(list.find((p) => p.expected.archetype === id));
  const drop = (p, pred) => {
    p.bundle.entry = p.bundle.entry.filter((e) => !pred(e.resource));
    return oracle(p.bundle, ANCHOR);
  };
  let got = drop(find('clean-morphine'), (r) => r.id.endsWith('-mr-lax'));
  assert.equal(got.get('bowel-regimen-missing'), 'medium');
  got = drop(find('palliative-already-referred'), (r) => r.resourceType === 'ServiceRequest');
  assert.equal(got.get('palliative-referral-suggested'), 'low');
  got = drop(find('titration-too-large'), (r) => r.resourceType === 'Observation' && Date.parse(r.effectiveDateTime) > Date.parse(ANCHOR) - 50 * 3600e3);
  assert.equal(got.get('reassessment-overdue-after-dose-change'), 'medium');
  got = drop(find('clean-morphine'), (r) => r.id.endsWith('-mr-resc'));
  assert.equal(got.get('rescue-dose-missing'), 'medium');
});

test('mutations: adding a laxative or a pain score, stopping an opioid, change the findings', () => {
  const { oracle } = require(path.join(E2E_DIR, 'cohort/oracle.js'));
  const M = require(path.join(E2E_DIR, 'cohort/mutations.js'));
  const list = generate({ patients: ARCHETYPES.length, seed: 'mut2', anchor: new Date(ANCHOR) });
  const at = (h) => Date.parse(ANCHOR) + h * 3600e3;
  const byArch = (id) => list.find((p) => p.expected.archetype === id);

  let p = byArch('bowel-regimen-missing');
  let change = M.addLaxative(p.id, at(-1));
  assert.equal(oracle(M.apply(p.bundle, change), ANCHOR).size, 0, 'laxative added: bowel finding resolved');

  p = byArch('reassess-after-high-score');
  change = M.addPainScore(p.id, 4.5, at(-1));
  assert.equal(oracle(M.apply(p.bundle, change), ANCHOR).size, 0, 'reassessed: overdue finding resolved');
  change = M.addPainScore(p.id, 8, at(-1));
  assert.deepEqual([...oracle(M.apply(p.bundle, change), ANCHOR)], [['pain-uncontrolled-no-titration', 'high']], 'a second high score 29 h later: uncontrolled pain');

  p = byArch('opioid-benzodiazepine');
  let bundle = p.bundle;
  for (const e of p.bundle.entry.filter((x) => x.resource.resourceType === 'MedicationRequest' && /-mr-(base|resc)$/.test(x.resource.id))) {
    bundle = M.apply(bundle, M.stopOrder(e.resource, at(-2)));
  }
  assert.equal(oracle(bundle, ANCHOR).size, 0, 'opioids stopped: no concurrent benzodiazepine finding');

  // Every change validates as FHIR R4 (the server would accept it).
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'changes.ndjson');
    fs.writeFileSync(file, [M.addLaxative('x', at(0)), M.addPainScore('x', 3, at(0)), M.stopOrder(p.bundle.entry.find((e) => e.resource.resourceType === 'MedicationRequest').resource, at(0))].map((b) => JSON.stringify(b)).join('\n') + '\n');
    const r = spawnSync(process.execPath, [path.join(E2E_DIR, 'server/validate.js'), file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
