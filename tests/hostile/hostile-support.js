// SPDX-License-Identifier: Apache-2.0
// The hostile-server matrix's tools (issue 18): a gate in front of the e2e reference server that
// can answer any request itself (status storms, resets mid-body, slow bodies, poison pages,
// redirect loops) or rewrite the server's answer byte for byte; painwatchd runs with VmHWM
// sampled from /proc; and the expected-failure bookkeeping for findings other branches fix.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const D = require(path.join(process.env.PW_E2E_DIR || path.resolve(__dirname, '../e2e'), 'node/daemon-support.js'));

/**
 * A Gate whose hook `act(info)` may take a request over: it returns undefined (forward as
 * usual) or an async function (req, res, info, upstream) that answers on its own; upstream()
 * fetches the real answer {status, headers, body: Buffer} with links pointing at the gate.
 */
class HostileGate extends D.Gate {
  constructor(target) {
    super(target);
    this.act = null;
    this.log = []; // {method, url, status, hostile}
  }

  handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const info = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
      this.seen.push(info);
      res.on('error', () => {});
      const fn = this.act ? this.act(info) : undefined;
      if (fn) {
        this.log.push({ method: info.method, url: info.url, hostile: true });
        try {
          await fn(req, res, info, () => this.upstream(info, req));
        } catch (e) {
          req.socket.destroy();
        }
        return;
      }
      this.log.push({ method: info.method, url: info.url, hostile: false });
      if (this.onRequest && this.onRequest(info) === 'drop') {
        req.socket.destroy();
        return;
      }
      return this.forward(info, req, res);
    });
  }

  /** The reference server's answer to @p info, links rewritten to the gate. */
  upstream(info, req) {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers, host: this.target.host };
      const up = http.request(
        { host: this.target.hostname, port: this.target.port, method: info.method, path: info.url, headers, agent: this.agent },
        (ur) => {
          const body = [];
          ur.on('data', (c) => body.push(c));
          ur.on('end', () => {
            const text = Buffer.concat(body).toString('utf8').split(this.target.origin).join(this.base);
            const h = { ...ur.headers };
            delete h['content-length'];
            delete h['transfer-encoding'];
            if (h.location) h.location = h.location.replace(this.target.origin, this.base);
            resolve({ status: ur.statusCode, headers: h, body: Buffer.from(text) });
          });
        },
      );
      up.on('error', reject);
      up.end(info.body);
    });
  }
}

/** Answer @p status with @p headers and @p body (a Buffer or string). */
function send(res, status, headers, body) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body || '');
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers, 'content-length': b.length });
  res.end(b);
}

const outcome = (text) =>
  JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: text }] });

/** True for a search the sync makes (not a Flag read-back, not /metadata). */
function isSearch(info, type) {
  if (info.method !== 'GET') return false;
  const p = info.url.split('?')[0];
  if (type) return p.endsWith(`/${type}`);
  return /\/(Observation|MedicationRequest|Condition|ServiceRequest|Encounter)$/.test(p);
}

/**
 * Start painwatchd (D.startDaemon) and sample its VmHWM every 20 ms until it exits.
 * Returns the handle plus hwmKiB() (the largest sample, KiB).
 */
function startSampled(config, args) {
  const d = D.startDaemon(config, args);
  let hwm = 0;
  const sample = () => {
    try {
      const s = fs.readFileSync(`/proc/${d.child.pid}/status`, 'utf8');
      const m = s.match(/VmHWM:\s+([0-9]+) kB/);
      if (m) hwm = Math.max(hwm, Number(m[1]));
    } catch {
      /* exited */
    }
  };
  const timer = setInterval(sample, 20);
  d.exited.then(() => clearInterval(timer));
  d.hwmKiB = () => {
    sample();
    return hwm;
  };
  return d;
}

/** painwatchd --once with VmHWM: {code, signal, log, hwmKiB}. Killed after @p maxMs. */
async function runOnceSampled(config, maxMs = 120000) {
  const d = startSampled(config, ['--once']);
  const timer = setTimeout(() => d.child.kill('SIGKILL'), maxMs);
  const r = await d.exited;
  clearTimeout(timer);
  return { ...r, log: d.log(), hwmKiB: d.hwmKiB() };
}

/** No crash: ended by itself (not a signal), no sanitizer report, no assertion failure. */
function assertNoCrash(r, what) {
  assert.equal(r.signal, null, `${what}: painwatchd died of ${r.signal}; log:\n${r.log.slice(-3000)}`);
  assert.doesNotMatch(r.log, /AddressSanitizer|runtime error:|LeakSanitizer|PW_REQUIRE|assertion failed/i, `${what}: sanitizer report`);
  assert.ok(r.code === 0 || r.code === 1, `${what}: exit code ${r.code}; log:\n${r.log.slice(-3000)}`);
}

/**
 * Run @p body; for a scenario listed as an expected failure (@p finding set), invert: the body
 * must fail (the bug is still there) and passing is reported as a failure asking for the entry
 * to be removed, so a merged fix cannot go unnoticed and no scenario is ever unable to fail.
 */
async function expecting(finding, body) {
  if (!finding) return body();
  let error = null;
  try {
    await body();
  } catch (e) {
    error = e;
  }
  if (!error) {
    assert.fail(`passes now: finding ${finding} is fixed; remove this scenario from EXPECTED_FAIL in tests/hostile/hostile.test.js`);
  }
  console.log(`# expected failure (issue 18 finding ${finding}): ${String(error.message).split('\n')[0].slice(0, 300)}`);
}

/**
 * Poll @p fn (async, truthy when done) every 250 ms for at most @p ms (default 120 s: a server
 * marked unhealthy after 3 failed cycles with jittered backoff, and back after one good one,
 * can take longer than the e2e helpers' 45 s on a loaded machine).
 */
async function untilLong(what, fn, ms = 120000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`gave up waiting ${ms / 1000} s for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

module.exports = { untilLong, HostileGate, send, outcome, isSearch, startSampled, runOnceSampled, assertNoCrash, expecting };
