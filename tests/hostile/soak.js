#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Soak (issue 18): painwatchd as a service at the highest poll rate the configuration allows
// (poll_interval 10s, reevaluate_interval 10s) against the reference server, with new pain
// scores arriving every few seconds (so every cycle syncs, evaluates and writes Flags) and the
// health endpoints read every second. Samples VmRSS and the open fd count every 10 s into a CSV
// and prints the least-squares slope over the second half of the run (after warm-up).
//   PW_SOAK_MINUTES  duration (default 60)     PW_SOAK_OUT  CSV path (default: printed only)
//   PW_SOAK_MAX_RSS_SLOPE / PW_SOAK_MAX_FD_SLOPE  fail (exit 1) above these (KiB/h, fds/h)
// Run it through tests/hostile/run.sh soak [--minutes M] [--out CSV]; use a build without
// sanitizers for RSS figures (BUILD=build/soak: ASan's quarantine grows RSS by design).
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { serverBase, fhir } = require(path.join(process.env.PW_E2E_DIR, 'node/support.js'));
const D = require(path.join(process.env.PW_E2E_DIR, 'node/daemon-support.js'));
const M = require(path.join(process.env.PW_E2E_DIR, 'cohort/mutations.js'));

const MINUTES = Number(process.env.PW_SOAK_MINUTES || '60');
const SAMPLE_MS = 10000;

function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) * (x - mx);
  }
  return den === 0 ? 0 : num / den;
}

function sample(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number((status.match(/VmRSS:\s+([0-9]+) kB/) || [0, 0])[1]);
  const hwm = Number((status.match(/VmHWM:\s+([0-9]+) kB/) || [0, 0])[1]);
  const fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  return { rss, hwm, fds };
}

async function main() {
  const base = serverBase();
  const dir = D.tmpdir('soak');
  const cohort = await D.freshCohort(base, dir, { patients: 30, seed: 'soak' });
  await cohort.load(0);
  const conf = D.writeConfig(dir, base, { health: true });
  const d = D.startDaemon(conf.file, []);
  const port = await D.healthPort(d);
  const start = Date.now();
  const end = start + MINUTES * 60000;
  const rows = [];
  let change = 0;
  let healthOk = 0;
  let healthFail = 0;
  const out = process.env.PW_SOAK_OUT;
  if (out) fs.writeFileSync(out, 't_s,rss_kib,hwm_kib,fds,changes\n');
  let nextSample = start;
  let nextChange = start;
  try {
    while (Date.now() < end) {
      assert.equal(d.child.exitCode, null, `painwatchd exited; log:\n${d.log().slice(-3000)}`);
      const now = Date.now();
      if (now >= nextChange) {
        const p = cohort.list[change % cohort.list.length];
        const r = await fhir(base, 'POST', '/', M.addPainScore(p.id, change % 11, now - 30000, ++change));
        assert.equal(r.status, 200);
        nextChange = now + 3000;
      }
      try {
        for (const p of ['/healthz', '/readyz', '/metrics']) {
          const r = await D.healthGet(port, p);
          if (r.status === 200) healthOk++;
          else healthFail++;
        }
      } catch {
        healthFail++;
      }
      if (now >= nextSample) {
        const s = sample(d.child.pid);
        const row = [Math.round((now - start) / 1000), s.rss, s.hwm, s.fds, change];
        rows.push(row);
        if (out) fs.appendFileSync(out, `${row.join(',')}\n`);
        nextSample = now + SAMPLE_MS;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    d.child.kill('SIGTERM');
    await d.stopped();
  }
  const half = rows.slice(Math.floor(rows.length / 2));
  const rssSlope = slope(half.map((r) => [r[0] / 3600, r[1]])); // KiB per hour
  const fdSlope = slope(half.map((r) => [r[0] / 3600, r[3]])); // fds per hour
  const first = rows[0];
  const last = rows[rows.length - 1];
  const flags = (await D.serverFlags(base)).length;
  console.log(`soak: ${MINUTES} min, ${rows.length} samples, ${change} data changes, ${flags} Flags on the server, health ${healthOk} ok / ${healthFail} not`);
  console.log(`soak: RSS ${first[1]} -> ${last[1]} KiB (max ${Math.max(...rows.map((r) => r[1]))}, HWM ${last[2]}), fds ${first[3]} -> ${last[3]} (max ${Math.max(...rows.map((r) => r[3]))})`);
  console.log(`soak: slope over the second half: RSS ${rssSlope.toFixed(1)} KiB/h, fds ${fdSlope.toFixed(2)} /h`);
  fs.rmSync(dir, { recursive: true, force: true });
  const maxRss = process.env.PW_SOAK_MAX_RSS_SLOPE;
  const maxFd = process.env.PW_SOAK_MAX_FD_SLOPE;
  if ((maxRss && rssSlope > Number(maxRss)) || (maxFd && fdSlope > Number(maxFd))) {
    console.error('soak: slope over the limit');
    process.exit(1);
  }
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  D.killAll();
  process.exit(1);
});
