// SPDX-License-Identifier: Apache-2.0
// A full file system under the state directory, and under the audit trail alone (issue 18):
// each on its own size-limited tmpfs (needs root and mount(8); skipped with a message
// otherwise). While full, painwatchd must fail closed: no crash, a clear log line, no Flag sent
// that it could not record, the trail still verifies and the store passes integrity_check; once
// space returns, the next run delivers exactly the Flags of a clean run.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { serverBase, fhir } = require(path.join(process.env.PW_E2E_DIR, 'node/support.js'));
const D = require(path.join(process.env.PW_E2E_DIR, 'node/daemon-support.js'));
const H = require('./hostile-support.js');

const base = serverBase();

// Found by this suite, not numbered in issue 18 (the lead flips the line when fixed): SQLite
// reports a full disk while opening the WAL as SQLITE_IOERR, and the store logs "disk I/O error"
// without the errno (sqlite3_system_errno() would say ENOSPC).
const EXPECTED_FAIL = {
};

function mountTmpfs(dir, size) {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? null : (r.stderr || r.error || 'mount failed').toString().trim();
}

function umount(dir) {
  spawnSync('umount', ['-l', dir]);
}

/** Fill the file system holding @p dir to the last byte; returns the filler's path. */
function fill(dir) {
  const file = path.join(dir, 'filler');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x55);
  try {
    for (let n = chunk.length; n >= 1; ) {
      try {
        fs.writeSync(fd, chunk, 0, n);
      } catch (e) {
        if (e.code !== 'ENOSPC') throw e;
        n = Math.floor(n / 2);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

function integrityCheck(db) {
  const r = spawnSync('python3', ['-c', 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])', db], { encoding: 'utf8' });
  return (r.stdout || r.stderr).trim();
}

const canMount = (() => {
  if (process.getuid() !== 0) return 'not root: cannot mount a size-limited tmpfs';
  const probe = D.tmpdir('enospc-probe');
  const err = mountTmpfs(probe, '64k');
  if (!err) umount(probe);
  fs.rmSync(probe, { recursive: true, force: true });
  return err ? `cannot mount a tmpfs here (${err})` : null;
})();

async function fullDisk(t, which, running = false) {
  if (canMount) {
    console.log(`# SKIPPED: ${canMount}`);
    t.skip(canMount);
    return;
  }
  const dir = D.tmpdir(`enospc-${which}`);
  const gate = new H.HostileGate(base);
  await gate.start();
  const state = path.join(dir, 'state');
  const mnt = which === 'state' ? state : path.join(state, 'audit');
  let mounted = false;
  let fullLog = '';
  try {
    const cohort = await D.freshCohort(base, dir, { patients: 16, seed: `enospc-${which}`, waves: 2 });
    fs.mkdirSync(state, { recursive: true, mode: 0o700 });
    assert.equal(mountTmpfs(mnt, '8m'), null);
    mounted = true;
    const conf = D.writeConfig(dir, gate.base);
    await cohort.load(0);
    const r0 = await D.runOnce(conf.file);
    assert.equal(r0.code, 0, r0.log);

    // New data arrives while the disk is full.
    await cohort.load(1);
    gate.log = [];
    let filler;
    let r1;
    if (!running) {
      filler = fill(mnt);
      r1 = await H.runOnceSampled(conf.file);
    } else {
      // Full once painwatchd has opened its store and met the server: the writes of the cycle
      // (resources, normalized events, outbox rows, audit records) are the ones that fail.
      const d = H.startSampled(conf.file, ['--once']);
      await d.waitFor(/FHIR 4\.0\.1/);
      filler = fill(mnt);
      const timer = setTimeout(() => d.child.kill('SIGKILL'), 120000);
      const r = await d.exited;
      clearTimeout(timer);
      r1 = { ...r, log: d.log(), hwmKiB: d.hwmKiB() };
    }
    console.log(`# ${which}${running ? ' (while running)' : ''} full: exit ${r1.code ?? r1.signal}; ${r1.log.split('\n').filter((l) => /^(err|crit|alert|emerg)/.test(l)).slice(0, 3).join(' | ')}`);
    H.assertNoCrash(r1, `${which} full`);
    fullLog = r1.log;
    const writes = gate.log.filter((x) => x.method !== 'GET' && x.url.includes('/Flag'));
    assert.deepEqual(writes.map((x) => `${x.method} ${x.url}`), [], 'fail closed: no Flag sent that could not be recorded');
    const v1 = D.cli(['audit', 'verify', '--config', conf.file]);
    // The trail itself verifies. The chain-head check needs the store, which SQLite may not
    // open on a full disk (its WAL index): then verify says so and fails (exit 2) rather than
    // report a check it could not make.
    assert.match(v1.stdout, /^OK: /m, `audit verify while full: ${v1.stdout}${v1.stderr}`);
    assert.ok(v1.status === 0 || (v1.status === 2 && /no space left/i.test(v1.stderr)),
      `audit verify while full: exit ${v1.status}: ${v1.stdout}${v1.stderr}`);

    // Space returns: what the full disk left is sound (SQLite needs a little space to open
    // the store at all), and the next run catches up.
    fs.rmSync(filler);
    assert.equal(integrityCheck(path.join(state, 'painwatch.db')), 'ok', 'integrity_check of what the full disk left');
    const r2 = await H.runOnceSampled(conf.file);
    H.assertNoCrash(r2, `${which} after space returned`);
    assert.equal(r2.code, 0, r2.log.slice(-3000));
    const expected = await D.expectedKeys(path.join(dir, 'ref'), gate.base);
    const flags = await D.serverFlags(base);
    const keys = flags.filter((f) => f.status === 'active').map((f) => f.key).sort();
    assert.deepEqual(keys, expected, 'the Flags of a clean run once space returned');
    assert.equal(new Set(flags.map((f) => f.key)).size, flags.length, 'no duplicate');
    const v2 = D.cli(['audit', 'verify', '--config', conf.file]);
    assert.equal(v2.status, 0, `audit verify: ${v2.stdout}${v2.stderr}`);
    assert.equal(integrityCheck(path.join(state, 'painwatch.db')), 'ok');
  } finally {
    D.killAll();
    await gate.close();
    if (mounted) umount(mnt);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const name = `${which}${running ? ' (while running)' : ''}: the log says the disk is full`;
  await t.test(name, () => H.expecting(EXPECTED_FAIL[name], () =>
    assert.match(fullLog, /No space|space left|disk is full|SQLITE_FULL|ENOSPC|disk full/i, `no log line names the full disk:\n${fullLog.slice(-2000)}`)));
}

test('ENOSPC on the state directory: fail closed, recover', { timeout: 600000 }, (t) => fullDisk(t, 'state'));
test('ENOSPC on the state directory while painwatchd runs: fail closed, recover', { timeout: 600000 }, (t) => fullDisk(t, 'state', true));
test('ENOSPC on the audit trail alone: fail closed, recover', { timeout: 600000 }, (t) => fullDisk(t, 'audit'));
