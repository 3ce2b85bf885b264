// SPDX-License-Identifier: Apache-2.0
// Issue 21 benchmark: latency of a CDS Hooks call with N stored patients, as a ratio to a bare
// /healthz round trip on the same listener (tests/bench/README.md "CDS Hooks latency").
//   node tests/bench/cds_hooks.js --server BUILD/tests/pw_cds_server [--patients 10000] [--calls 2000]
// Sequential calls on one keep-alive connection; tokens are signed before the clock starts. Every
// hook call is audited (one fsync) before it is answered, as in the daemon.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const { PV, OS, PA, PB, PC, STORED, MORPHINE_ER, med, rsaToken, writeSetup, startServer, stopServer, pvRequest, osRequest, draft } =
  require('../e2e/cds/support.js');

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function timed(n, make) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const { url, init } = make(i);
    const t0 = performance.now();
    const r = await fetch(url, init);
    await r.arrayBuffer();
    ms.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status}`);
  }
  return ms.sort((a, b) => a - b);
}

async function main() {
  const server = arg('server');
  const patients = Number(arg('patients', '10000'));
  const calls = Number(arg('calls', '2000'));
  const stored = new Set(STORED.map((r) => (r.subject || {}).reference)).size; // patients per copy
  const copies = Math.ceil(patients / stored);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pw-cds-bench-'));
  writeSetup(dir);
  const t0 = performance.now();
  const srv = await startServer(server, dir, ['--clone', String(copies - 1)]);
  const loadS = (performance.now() - t0) / 1000;
  const post = (service, body) => ({
    url: `${srv.base}/cds-services/${service}`,
    init: { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${rsaToken(service)}` }, body: JSON.stringify(body) },
  });
  const who = (p, i) => (i % copies === 0 ? p : `${p}-c${i % copies}`);
  // Requests (and their tokens) are built before timing; the warm-up touches the code paths.
  const osReqs = Array.from({ length: calls }, (_, i) => post(OS, osRequest(who(PA, i), [draft(med(who(PA, i), 'draft-er', { ...MORPHINE_ER, mg: 60, everyH: 12 }))])));
  const pvReqs = Array.from({ length: calls }, (_, i) => post(PV, pvRequest(who(i % 2 ? PB : PC, i))));
  // Correctness first: the doubling draft gets its titration card on a cloned patient too.
  const check = await fetch(osReqs[1].url, { ...osReqs[1].init, headers: { ...osReqs[1].init.headers, authorization: `Bearer ${rsaToken(OS)}` } });
  const cards = (await check.json()).cards || [];
  if (!cards.some((c) => c.source.topic.code === 'titration-step-too-large')) throw new Error('CORRECTNESS: FAIL (no titration card)');
  await timed(50, () => ({ url: `${srv.base}/healthz`, init: {} }));
  await timed(50, (i) => post(PV, pvRequest(who(PC, i))));
  const health = await timed(calls, () => ({ url: `${srv.base}/healthz`, init: {} }));
  const os_ = await timed(calls, (i) => osReqs[i]);
  const pv = await timed(calls, (i) => pvReqs[i]);
  const code = await stopServer(srv.child);
  fs.rmSync(dir, { recursive: true, force: true });
  const row = (name, ms) => `| ${name} | ${pct(ms, 50).toFixed(2)} | ${pct(ms, 99).toFixed(2)} | ${(pct(ms, 99) / pct(health, 99)).toFixed(1)} |`;
  console.log(`CDS Hooks latency: ${copies * stored} stored patients (loaded in ${loadS.toFixed(1)} s), ${calls} sequential calls each, node ${process.version}, ${os.cpus().length} CPUs`);
  console.log('| call | p50 ms | p99 ms | p99 / healthz p99 |');
  console.log('|---|---|---|---|');
  console.log(row('GET /healthz (same listener)', health));
  console.log(row('order-sign (doubling draft)', os_));
  console.log(row('patient-view', pv));
  if (code !== 0) {
    console.error(`pw_cds_server exited ${code}: ${srv.stderr()}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
