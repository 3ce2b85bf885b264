// SPDX-License-Identifier: Apache-2.0
// The clinical core against the cohort, no server needed: `painwatch check --at <anchor>` over the
// generated bundles must produce exactly each patient's expected findings (rule and severity).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { E2E_DIR } = require('./support.js');
const { generate, ARCHETYPES } = require(path.join(E2E_DIR, 'cohort/generate.js'));

const PAINWATCH = process.env.PAINWATCH;
const TERMINOLOGY = path.join(process.env.PW_SOURCE_DIR || path.resolve(E2E_DIR, '../..'), 'config/terminology');

function check(anchor, files) {
  const r = spawnSync(PAINWATCH, ['check', '--at', anchor, '--format', 'json', '--terminology', TERMINOLOGY, ...files], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  assert.equal(r.status, 0, `painwatch check exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

for (const [seed, anchor] of [['1', '2026-11-26T12:00:00Z'], ['check', '2027-02-28T23:40:00Z']]) {
  test(`painwatch check finds exactly the expected findings (seed ${seed}, anchor ${anchor})`, { skip: !PAINWATCH && 'PAINWATCH not set' }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-check-'));
    try {
      const list = generate({ patients: ARCHETYPES.length, seed, anchor: new Date(anchor) });
      const files = list.map((p) => {
        const f = path.join(dir, `${p.id}.bundle.json`);
        fs.writeFileSync(f, JSON.stringify(p.bundle));
        return f;
      });
      const out = check(anchor, files);
      assert.equal(out.evaluated_at, anchor);
      assert.equal(out.factor_set, 'cdc2022');
      const byPatient = new Map(out.patients.map((p) => [p.patient, p]));
      const wrong = [];
      for (const p of list) {
        const got = byPatient.get(p.expected.patient);
        assert.ok(got, `${p.expected.patient} (${p.expected.archetype}) missing from the output`);
        const have = got.findings.map((f) => `${f.rule}:${f.severity}`).sort();
        const want = p.expected.expected.map((f) => `${f.rule}:${f.severity}`).sort();
        if (JSON.stringify(have) !== JSON.stringify(want)) {
          wrong.push(`${p.expected.archetype} (${p.expected.patient}): got [${have}] want [${want}]\n    why: ${p.expected.why}\n    ${got.findings.map((f) => f.text).join('\n    ')}`);
        }
      }
      assert.equal(wrong.length, 0, `${wrong.length} of ${list.length} patients differ:\n${wrong.join('\n')}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
