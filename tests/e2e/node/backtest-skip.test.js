// SPDX-License-Identifier: Apache-2.0
// Issue 22: the backtest evaluates a patient again only where a rule's outcome can change (an
// event, or an event time plus a rule's time parameter or fixed offset: pw_engine_time_offsets).
// This checks that the skip changes nothing: `--exhaustive` (every instant evaluated) gives the
// same bytes, on every rule case story (each rule's boundaries: 23 h vs 25 h, exactly 24 h, ...)
// at a 10-minute step, with the default thresholds and with site thresholds that move every
// time parameter, and on the demo cohort and the Synthea patients.
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
const skip = !PAINWATCH && 'PAINWATCH not set';
const CASES = path.join(E2E_DIR, '..', 'daemon', 'clinical', 'rules', 'cases');

function painwatch(args) {
  return spawnSync(PAINWATCH, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
}

/** @p args with and without --exhaustive: the same bytes. @return the parsed JSON. */
function sameAsExhaustive(args) {
  const fast = painwatch(['backtest', '--jobs', '1', '--format', 'json', ...args]);
  assert.equal(fast.status, 0, fast.stderr);
  const all = painwatch(['backtest', '--jobs', '1', '--exhaustive', '--format', 'json', ...args]);
  assert.equal(all.status, 0, all.stderr);
  assert.equal(fast.stdout, all.stdout, 'skipping evaluations changed the result');
  return JSON.parse(fast.stdout);
}

/** Every id and relative reference of @p v prefixed with @p tag (cases reuse ids like mr-prn). */
function retag(v, tag) {
  if (Array.isArray(v)) return v.map((x) => retag(x, tag));
  if (!v || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'id' && typeof x === 'string' && v.resourceType) out[k] = `${tag}-${x}`;
    else if (k === 'reference' && typeof x === 'string' && /^[A-Z][A-Za-z]+\/[^/]+$/.test(x)) {
      const [type, id] = x.split('/');
      out[k] = `${type}/${tag}-${id}`;
    } else if (k === 'fullUrl') continue;
    else out[k] = retag(x, tag);
  }
  return out;
}

/** Every rule case's Bundle, ids made unique, one file each. @return [files, cases fired]. */
function caseInputs(dir) {
  const files = [];
  let firing = 0;
  for (const rule of fs.readdirSync(CASES).sort()) {
    const rdir = path.join(CASES, rule);
    if (!fs.statSync(rdir).isDirectory()) continue;
    for (const c of fs.readdirSync(rdir).sort()) {
      const input = path.join(rdir, c, 'input.json');
      if (!fs.existsSync(input)) continue;
      const expected = JSON.parse(fs.readFileSync(path.join(rdir, c, 'expected.json'), 'utf8'));
      firing += expected.findings.length > 0 ? 1 : 0;
      const file = path.join(dir, `c${String(files.length).padStart(3, '0')}.json`);
      fs.writeFileSync(file, JSON.stringify(retag(JSON.parse(fs.readFileSync(input, 'utf8')), `c${files.length}`)));
      files.push(file);
    }
  }
  return [files, firing];
}

/**
 * Site thresholds: every time parameter moved off the defaults (and off 24, 48 and 72 h), so the
 * rules' fixed offsets (one and two days: rescue-use-frequent) are not covered by a parameter.
 */
function siteConfig(dir) {
  const file = path.join(dir, 'painwatch.yaml');
  fs.writeFileSync(
    file,
    [
      `state_dir: ${path.join(dir, 'state')}`,
      'audit: {allow_local_key: true}',
      'servers:',
      '  - name: ehr',
      '    base_url: http://127.0.0.1:9/fhir',
      '    auth: {type: none}',
      '    cohort: {type: group, group: Group/painwatch-cohort}',
      'sink: {type: fhir-flag}',
      'rules:',
      '  bowel-regimen-missing: {min_opioid_h: 11}',
      '  methadone-conversion-review: {max_gap_h: 5, window_h: 100}',
      '  opioid-rotation-without-reduction: {max_gap_h: 7, window_h: 50}',
      '  opioid-sedation-risk: {window_h: 40}',
      '  pain-not-assessed-at-visit: {grace_h: 2.5, lookback_days: 4}',
      '  pain-uncontrolled-no-titration: {min_span_h: 9, window_h: 30, no_increase_h: 20}',
      '  reassessment-overdue-after-dose-change: {overdue_h: 7.25, lookback_days: 3}',
      '  reassessment-overdue-after-high-score: {overdue_h: 1.5, lookback_days: 2}',
      '  rescue-dose-missing: {grace_h: 0.5}',
      '  titration-step-too-large: {score_max_age_h: 50, window_h: 60, conversion_window_h: 13}',
      '  titration-step-too-small: {window_h: 55, conversion_window_h: 14}',
      '  titration-too-soon: {min_interval_h: 13, min_interval_h_transdermal_fentanyl: 61, min_interval_h_methadone: 100, window_h: 65, conversion_window_h: 15}',
      '  palliative-referral-suggested: {window_days: 3}',
    ].join('\n') + '\n',
  );
  return file;
}

test('rule cases: the same episodes with and without --exhaustive', { skip, timeout: 900000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-skip-'));
  const [files, firing] = caseInputs(dir);
  assert.ok(files.length >= 100, `rule cases found: ${files.length}`);
  const period = ['--scope', 'cohort', '--from', '2026-02-25T00:00:00Z', '--to', '2026-03-20T00:00:00Z', '--step', '10m', '--lookback', '0'];
  const dflt = sameAsExhaustive([...period, ...files]);
  // Not vacuous: the stories raise episodes of most rules, opened and closed over the period.
  assert.ok(dflt.patients >= files.length * 0.9, `patients ${dflt.patients} of ${files.length}`);
  assert.ok(dflt.episodes >= firing, `episodes ${dflt.episodes}, firing cases ${firing}`);
  assert.ok(dflt.rules.filter((r) => r.episodes > 0).length >= 12, 'episodes of most rules');
  const site = sameAsExhaustive(['--config', siteConfig(dir), ...period, ...files]);
  assert.notDeepEqual(site.rules, dflt.rules, 'the site thresholds change the episodes');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('demo cohort and Synthea patients: the same with and without --exhaustive', { skip, timeout: 900000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-skip-'));
  const list = generate({ patients: ARCHETYPES.length * 2, seed: 'backtest-skip', anchor: new Date('2026-11-30T12:00:00Z') });
  const files = list.map((p, i) => {
    const file = path.join(dir, `p${String(i).padStart(3, '0')}.json`);
    fs.writeFileSync(file, JSON.stringify(p.bundle));
    return file;
  });
  const doc = sameAsExhaustive(['--from', '2026-11-23T00:00:00Z', '--to', '2026-12-01T00:00:00Z', '--step', '15m', ...files]);
  assert.ok(doc.episodes >= 5, `episodes ${doc.episodes}`);
  const sdir = path.join(E2E_DIR, 'synthea');
  const synthea = fs.readdirSync(sdir).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(sdir, f));
  const s = sameAsExhaustive(['--lookback', '0', ...synthea]);
  assert.ok(s.episodes > 0, 'the Synthea patients have episodes');
  fs.rmSync(dir, { recursive: true, force: true });
});
