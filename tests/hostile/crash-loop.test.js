// SPDX-License-Identifier: Apache-2.0
// Crash loop (issue 18): painwatchd killed with SIGKILL at seeded random instants across sync
// (a search request or its answer), evaluation (just after the log says it began) and delivery
// (a Flag write or its answer, or a random delay), restarted on the same state each time, with
// new data arriving in waves and then as changes (new pain scores) between kills; once with the
// server's conditional create, once with a server that has none (the gate hides it in /metadata
// and strips If-None-Exist). In the end: the Flags are exactly those of a clean run (0 lost),
// each episode once (0 duplicated), a further run writes nothing, `painwatch audit verify`
// passes and the store's PRAGMA integrity_check is ok.
//   PW_CRASH_KILLS   kills per variant (default 15: 30 in all); the long form runs 1000
//   PW_CRASH_SEED    replays a schedule (printed at the start)
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { serverBase, fhir } = require(path.join(process.env.PW_E2E_DIR, 'node/support.js'));
const D = require(path.join(process.env.PW_E2E_DIR, 'node/daemon-support.js'));
const M = require(path.join(process.env.PW_E2E_DIR, 'cohort/mutations.js'));
const H = require('./hostile-support.js');

const base = serverBase();
const KILLS = Number.parseInt(process.env.PW_CRASH_KILLS || '15', 10);
const PATIENTS = 25; // the archetypes up to two bowel-regimen-missing patients (ids 023, 024)
const WAVES = 5;

function integrityCheck(db) {
  const r = spawnSync('python3', ['-c', 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])', db], {
    encoding: 'utf8',
  });
  return (r.stdout || r.stderr).trim();
}

async function crashLoop(t, conditional) {
  const seed = Number.parseInt(process.env.PW_CRASH_SEED || String(Date.now() % 2147483647), 10);
  const label = conditional ? 'conditional create' : 'no conditional create';
  console.log(`# ${label}: seed ${seed} (PW_CRASH_SEED=${seed} replays it), ${KILLS} kills`);
  const rng = D.prng(seed);
  const dir = D.tmpdir('crashloop');
  const gate = new H.HostileGate(base);
  await gate.start();
  const stats = { sync: 0, evaluation: 0, delivery: 0, time: 0, completed: 0 };
  try {
    const cohort = await D.freshCohort(base, dir, { patients: PATIENTS, seed: 'crashloop', waves: WAVES });
    fs.mkdirSync(path.join(dir, 'crash'));
    const conf = D.writeConfig(path.join(dir, 'crash'), gate.base);
    if (!conditional) {
      // A server without conditional create: /metadata says so and If-None-Exist is ignored.
      gate.act = (info) => {
        if (info.method === 'GET' && /\/metadata(\?|$)/.test(info.url)) {
          return async (req, res, i, upstream) => {
            const up = await upstream();
            const cap = JSON.parse(up.body.toString('utf8'));
            for (const rest of cap.rest || []) for (const r of rest.resource || []) r.conditionalCreate = false;
            H.send(res, up.status, { 'content-type': 'application/fhir+json' }, JSON.stringify(cap));
          };
        }
        if (info.headers['if-none-exist']) delete info.headers['if-none-exist'];
        return undefined;
      };
      // forward() copies req.headers: strip the header there too.
      const forward = gate.forward.bind(gate);
      gate.forward = (info, req, res) => {
        delete req.headers['if-none-exist'];
        return forward(info, req, res);
      };
    }
    const isFlagWrite = (i) => i.method !== 'GET' && i.url.includes('/Flag');
    let kills = 0;
    let runs = 0;
    let change = 0;
    const runsMax = KILLS * 3 + 20;
    // After the waves, data keeps changing so that Flags keep being written: a laxative started
    // then stopped again for a bowel-regimen-missing patient (each change resolves its Flag or
    // opens a new episode), and a new pain score for another patient.
    const bowel = cohort.list.filter((p) => p.expected.expected.some((x) => x.rule === 'bowel-regimen-missing'));
    assert.ok(bowel.length >= 1, 'the cohort has a bowel-regimen-missing patient');
    const laxOn = new Map();
    for (let wave = 0; wave < WAVES || kills < KILLS; wave++) {
      if (wave < WAVES) {
        await cohort.load(wave);
      } else {
        const b = bowel[change % bowel.length];
        const at = Date.now() - 60000;
        const lax = M.addLaxative(b.id, at);
        const toggle = laxOn.get(b.id) ? M.stopOrder(lax.entry[0].resource, at) : lax;
        laxOn.set(b.id, !laxOn.get(b.id));
        assert.equal((await fhir(base, 'POST', '/', toggle)).status, 200);
        const p = cohort.list[rng.int(0, cohort.list.length - 1)];
        assert.equal((await fhir(base, 'POST', '/', M.addPainScore(p.id, rng.int(0, 10), at, ++change))).status, 200);
      }
      const until = wave < WAVES ? Math.ceil((KILLS * (wave + 1)) / (WAVES + 1)) : kills + 2;
      let fresh = true;
      while (kills < Math.min(until, KILLS) && runs < runsMax) {
        runs++;
        const d = D.startDaemon(conf.file, ['--once']);
        const kill = () => {
          if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
        };
        const modes = fresh
          ? ['flag-request', 'flag-response', 'evaluation']
          : ['request', 'response', 'evaluation', 'time', 'flag-request', 'flag-response'];
        const mode = modes[rng.int(0, modes.length - 1)];
        const nth = mode.startsWith('flag') ? rng.int(1, 3) : rng.int(1, 7);
        const delay = rng.int(0, mode === 'evaluation' ? 40 : 1500);
        let n = 0;
        const hit = (info) => (mode.startsWith('flag') ? isFlagWrite(info) : true) && ++n === nth;
        let timer = null;
        if (mode.endsWith('request')) {
          gate.onRequest = (info) => (hit(info) ? (kill(), 'drop') : undefined);
        } else if (mode.endsWith('response')) {
          gate.onResponse = (info) => (hit(info) ? (kill(), 'drop') : undefined);
        } else if (mode === 'evaluation') {
          d.waitFor(/evaluation after a sync cycle|evaluat/).then(() => (timer = setTimeout(kill, delay)), () => {});
        } else {
          timer = setTimeout(kill, delay);
        }
        const r = await d.exited;
        clearTimeout(timer);
        gate.onRequest = gate.onResponse = null;
        H.assertNoCrash({ code: r.signal === 'SIGKILL' ? 0 : r.code, signal: r.signal === 'SIGKILL' ? null : r.signal, log: d.log() }, `run ${runs}`);
        if (r.signal === 'SIGKILL') {
          kills++;
          fresh = false;
          stats[mode.startsWith('flag') ? 'delivery' : mode === 'request' || mode === 'response' ? 'sync' : mode]++;
        } else {
          assert.equal(r.code, 0, `run ${runs} ended by itself and must succeed; log:\n${d.log().slice(-3000)}`);
          stats.completed++;
          fresh = false;
        }
      }
      if (runs >= runsMax) break;
    }
    const writes = gate.seen.filter(isFlagWrite).length;
    console.log(`# ${label}: ${runs} runs, ${kills} kills (${JSON.stringify(stats)}), ${writes} Flag writes reached the gate`);
    assert.ok(kills >= KILLS, `${kills} kills in ${runs} runs`);

    const last = await D.runOnce(conf.file);
    assert.equal(last.code, 0, last.log);
    assert.match(last.log, conditional ? /conditional create yes/ : /conditional create no/, 'the server variant was seen');
    await fhir(base, 'DELETE', '/_admin/requests');
    const again = await D.runOnce(conf.file);
    assert.equal(again.code, 0, again.log);
    assert.deepEqual(await D.serverWrites(base), [], 'no write after a completed cycle');

    // The reference: a clean shadow run on fresh state over the same final data.
    const expected = await D.expectedKeys(path.join(dir, 'ref'), gate.base);
    assert.ok(expected.length >= 5, `a clean run raises Flags (${expected.length})`);
    const flags = await D.serverFlags(base);
    const byKey = new Map();
    for (const f of flags) byKey.set(f.key, (byKey.get(f.key) || 0) + 1);
    const dups = [...byKey].filter(([, c]) => c > 1);
    const active = flags.filter((f) => f.status === 'active').map((f) => f.key).sort();
    const lost = expected.filter((k) => !active.includes(k));
    const extra = active.filter((k) => !expected.includes(k));
    console.log(`# ${label}: ${expected.length} expected, ${flags.length} on the server, ${lost.length} lost, ${dups.length} duplicated, ${extra.length} active beyond a clean run`);
    assert.deepEqual(dups, [], '0 duplicated');
    assert.deepEqual(lost, [], '0 lost');
    assert.deepEqual(extra, [], 'no active Flag a clean run would not raise');
    for (const key of expected) assert.equal(await D.countByIdentifier(base, key), 1, `Flag?identifier=...|${key}`);

    const v = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
    assert.equal(integrityCheck(path.join(conf.state, 'painwatch.db')), 'ok', 'PRAGMA integrity_check');
  } finally {
    D.killAll();
    await gate.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('SIGKILL loop, server with conditional create', { timeout: 14400000 }, (t) => crashLoop(t, true));
test('SIGKILL loop, server without conditional create', { timeout: 14400000 }, (t) => crashLoop(t, false));
