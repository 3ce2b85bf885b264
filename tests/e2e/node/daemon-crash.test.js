// SPDX-License-Identifier: Apache-2.0
// Crash safety (issue 5): painwatchd is killed with SIGKILL at seeded random points of a sync and
// delivery against the reference server (on a request, after the server answered but before
// painwatchd heard it, or after a random delay) and restarted on the same state each time; in the
// end the server holds exactly the Flags a clean run makes, each identifier once, a further
// restart writes nothing, and the audit trail still verifies.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { serverBase, fhir } = require('./support.js');
const D = require('./daemon-support.js');

const base = serverBase();
const KILLS = 20;
const RUNS_MAX = 45;
const PATIENTS = 20;
const WAVES = 4;

function shadowCreates(file) {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l))
    .filter((r) => r.op === 'create');
}

test('kill -9 at random points: every expected Flag exactly once; a restart writes nothing', async () => {
  const seed = Number.parseInt(process.env.PW_CRASH_SEED || String(Date.now() % 2147483647), 10);
  console.log(`# crash schedule seed ${seed} (PW_CRASH_SEED=${seed} replays it)`);
  const rng = D.prng(seed);
  const dir = D.tmpdir('crash');
  const gate = new D.Gate(base);
  await gate.start();
  try {
    // The patients arrive in waves, so that every few kills there is new sync and delivery work.
    const cohort = await D.freshCohort(base, dir, { patients: PATIENTS, seed: 'crash', waves: WAVES });
    fs.mkdirSync(path.join(dir, 'crash'));
    const conf = D.writeConfig(path.join(dir, 'crash'), gate.base);
    const isFlagWrite = (i) => i.method !== 'GET' && i.url.includes('/Flag');
    let kills = 0;
    let runs = 0;
    const schedule = [];
    for (let wave = 0; wave < WAVES; wave++) {
      await cohort.load(wave);
      schedule.push(`[wave ${wave}]`);
      const until = Math.ceil((KILLS * (wave + 1)) / WAVES);
      while (kills < until && runs < RUNS_MAX) {
        runs++;
        const d = D.startDaemon(conf.file, ['--once']);
        const kill = () => {
          if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
        };
        // A new wave's first runs die around its Flag writes; later ones anywhere in a cycle
        // (a cycle with nothing new makes about 8 requests and lasts a second or two).
        const fresh = schedule[schedule.length - 1].startsWith('[') || schedule[schedule.length - 1].startsWith('flag');
        const modes = fresh ? ['flag-request', 'flag-response'] : ['request', 'response', 'time'];
        const mode = modes[rng.int(0, modes.length - 1)];
        const nth = mode.startsWith('flag') ? rng.int(1, 2) : rng.int(1, 7);
        const delay = rng.int(0, 1500);
        let n = 0;
        const hit = (info) => (mode.startsWith('flag') ? isFlagWrite(info) : true) && ++n === nth;
        let timer = null;
        if (mode.endsWith('request')) {
          // Killed as the request reaches the server's door: the server never sees it.
          gate.onRequest = (info) => (hit(info) ? (kill(), 'drop') : undefined);
        } else if (mode.endsWith('response')) {
          // Killed after the server applied it, before painwatchd learns the outcome.
          gate.onResponse = (info) => (hit(info) ? (kill(), 'drop') : undefined);
        } else {
          timer = setTimeout(kill, delay);
        }
        const r = await d.exited;
        clearTimeout(timer);
        gate.onRequest = gate.onResponse = null;
        if (r.signal === 'SIGKILL') {
          kills++;
          schedule.push(mode === 'time' ? `time+${delay}ms` : `${mode}#${nth}`);
        } else {
          assert.equal(r.code, 0, `run ${runs} ended by itself and must succeed; log:\n${d.log().slice(-3000)}`);
          schedule.push('completed');
        }
      }
    }
    console.log(`# ${runs} runs, ${kills} kills: ${schedule.join(' ')}`);
    assert.ok(kills >= KILLS, `${kills} kills in ${runs} runs`);

    const last = await D.runOnce(conf.file);
    assert.equal(last.code, 0, last.log);

    // Restarting after a completed cycle writes nothing to the EHR.
    await fhir(base, 'DELETE', '/_admin/requests');
    const again = await D.runOnce(conf.file);
    assert.equal(again.code, 0, again.log);
    assert.deepEqual(await D.serverWrites(base), [], 'no POST/PUT/PATCH/DELETE after a completed cycle');

    // Reference: a clean run in shadow mode on fresh state (not reading Flags back, so it does
    // not see the crash run's) lists the Flags to expect, and writes nothing to the EHR.
    fs.mkdirSync(path.join(dir, 'ref'));
    const ref = D.writeConfig(path.join(dir, 'ref'), base, { shadow: true, noFlagReadBack: true });
    const r0 = await D.runOnce(ref.file);
    assert.equal(r0.code, 0, r0.log);
    assert.deepEqual(await D.serverWrites(base), [], 'shadow mode writes nothing to the EHR');
    const expected = shadowCreates(path.join(dir, 'ref', 'shadow-flags.ndjson')).map((r) => r.key).sort();
    assert.ok(expected.length >= 5, `a clean run raises Flags (${expected.length})`);
    assert.equal(new Set(expected).size, expected.length, 'one create per episode in a clean run');

    const flags = await D.serverFlags(base);
    const byKey = new Map();
    for (const f of flags) byKey.set(f.key, (byKey.get(f.key) || 0) + 1);
    assert.deepEqual([...byKey].filter(([, c]) => c > 1), [], 'no episode has two Flags');
    assert.deepEqual([...byKey.keys()].sort(), expected, 'exactly the Flags of the clean run');
    assert.deepEqual(flags.filter((f) => f.status !== 'active'), [], 'nothing was resolved');
    for (const key of expected) {
      assert.equal(await D.countByIdentifier(base, key), 1, `Flag?identifier=...|${key}`);
    }

    // Twenty kills later the audit trail still verifies.
    const v = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
  } finally {
    D.killAll();
    await gate.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
