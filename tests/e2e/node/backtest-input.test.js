// SPDX-License-Identifier: Apache-2.0
// Issue 22 (session 8): `painwatch backtest --jobs N` parses the input once in all, each worker
// its part (NDJSON files cut at line boundaries, documents whole), then replays its patients from
// every part. The same bytes for any N when versions of a resource sit in parts read by
// different workers; an error in the second half of a split file names its line; the temporary
// files are gone after a failure and after SIGTERM.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const PAINWATCH = process.env.PAINWATCH;
const skip = !PAINWATCH && 'PAINWATCH not set';

function painwatch(args, tmpdir) {
  return spawnSync(PAINWATCH, args, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, TMPDIR: tmpdir },
  });
}

const DAY = 86400 * 1000;
const T0 = Date.parse('2026-11-20T00:00:00Z');
const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

function score(id, patient, value, at, meta) {
  return JSON.stringify({
    resourceType: 'Observation',
    id,
    ...(meta ? { meta } : {}),
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
    subject: { reference: `Patient/${patient}` },
    effectiveDateTime: iso(at),
    valueQuantity: { value, unit: '{score}', system: 'http://unitsofmeasure.org', code: '{score}' },
  });
}

/**
 * A large NDJSON file (scores of 200 patients, each resource twice: the second version later in
 * the file, so in another worker's part) and a Bundle after it with a third, unversioned version
 * of some of them (the later input wins).
 */
function inputs(dir) {
  const lines = [];
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 1200; i++) {
      const meta = i % 3 === 0 ? { versionId: String(round + 1) } : undefined;
      lines.push(score(`s${i}`, `p${i % 200}`, round === 0 ? 2 : 8, T0 + (i % 9) * DAY + round * 3600e3, meta));
    }
  }
  const big = path.join(dir, 'big.ndjson');
  fs.writeFileSync(big, lines.join('\n') + '\n');
  const later = path.join(dir, 'later.json');
  const entry = [];
  for (let i = 1; i < 1200; i += 7) entry.push({ resource: JSON.parse(score(`s${i}`, `p${i % 200}`, 9, T0 + 5 * DAY)) });
  fs.writeFileSync(later, JSON.stringify({ resourceType: 'Bundle', type: 'searchset', entry }));
  return [big, later];
}

test('the same output for --jobs 1, 2, 3 with versions in different workers\' parts', { skip, timeout: 600000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-input-'));
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const files = inputs(dir);
  const args = ['--scope', 'cohort', '--from', iso(T0), '--to', iso(T0 + 10 * DAY), '--format', 'json', ...files];
  const outs = [1, 2, 3].map((n) => {
    const r = painwatch(['backtest', '--jobs', String(n), ...args], tmp);
    assert.equal(r.status, 0, `--jobs ${n}: ${r.stderr}`);
    return r.stdout;
  });
  assert.equal(outs[1], outs[0], '--jobs 2 differs from --jobs 1');
  assert.equal(outs[2], outs[0], '--jobs 3 differs from --jobs 1');
  assert.equal(JSON.parse(outs[0]).patients, 200);
  assert.deepEqual(fs.readdirSync(tmp), [], 'temporary files left behind');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an error in the second half of a split file: its line, no files left', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-input-'));
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const lines = [];
  for (let i = 0; i < 3000; i++) lines.push(i === 2700 ? '{"resourceType":"Observation",' : score(`o${i}`, `p${i % 50}`, 3, T0));
  const bad = path.join(dir, 'bad.ndjson');
  fs.writeFileSync(bad, lines.join('\n') + '\n');
  for (const n of ['1', '2', '3']) {
    const r = painwatch(['backtest', '--jobs', n, bad], tmp);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /bad\.ndjson:2701:/, `--jobs ${n}`);
    assert.deepEqual(fs.readdirSync(tmp), [], `--jobs ${n}: temporary files left behind`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('SIGTERM while the workers run: the temporary directory is removed', { skip, timeout: 600000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-backtest-input-'));
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const lines = [];
  for (let i = 0; i < 60000; i++) lines.push(score(`o${i}`, `p${i % 5000}`, i % 4, T0 + (i % 9) * DAY));
  const big = path.join(dir, 'big.ndjson');
  fs.writeFileSync(big, lines.join('\n') + '\n');
  const child = spawn(PAINWATCH, ['backtest', '--jobs', '2', '--format', 'json', big], {
    env: { ...process.env, TMPDIR: tmp },
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let done = null;
  exited.then((r) => { done = r; });
  // Wait for the workers' directory (polling, no timing assumption), then stop the run.
  while (!done && !fs.readdirSync(tmp).some((f) => f.startsWith('painwatch-backtest-'))) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(done, null, 'the run ended before its temporary directory was seen (input too small)');
  child.kill('SIGTERM');
  const r = await exited;
  assert.equal(r.signal, 'SIGTERM');
  assert.deepEqual(fs.readdirSync(tmp), [], 'temporary files left behind');
  fs.rmSync(dir, { recursive: true, force: true });
});
