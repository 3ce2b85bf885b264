// SPDX-License-Identifier: Apache-2.0
// Helpers for the daemon-level tests: a cohort anchored at now, painwatchd configurations and
// processes (every one started is killed at the end), a gate proxy in front of the reference
// server that can hold, release or intercept requests, and Prometheus text parsing.
'use strict';

const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { E2E_DIR, fhir, searchAll } = require('./support.js');
const { generate } = require(path.join(E2E_DIR, 'cohort/generate.js'));
const { loadCohort } = require(path.join(E2E_DIR, 'cohort/load.js'));

const PAINWATCHD = process.env.PAINWATCHD;
const PAINWATCH = process.env.PAINWATCH;
const EPISODE_SYSTEM = 'urn:painwatch:flag-episode';
// A bound on any wait for the daemon, so a broken daemon fails the test instead of hanging it.
const WAIT_MAX_MS = 45000;

if (!PAINWATCHD || !PAINWATCH) {
  throw new Error('PAINWATCHD and PAINWATCH must be set: run through ctest');
}

/** mulberry32: the seeded PRNG of the kill schedule (the seed is printed, and can be forced). */
function prng(seed) {
  let h = seed >>> 0;
  const next = () => {
    h = (h + 0x6d2b79f5) >>> 0;
    let t = h;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)) };
}

function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `pw-${prefix}-`));
}

/**
 * Reset the server and generate @p patients patients anchored at now, split into @p waves
 * directories of bundles. Returns {list, load(i)}: load(i) loads wave i into the server.
 */
async function freshCohort(base, dir, { patients, seed, waves = 1 }) {
  assert.equal((await fhir(base, 'POST', '/_admin/reset')).status, 200);
  const list = generate({ patients, seed, anchor: new Date() });
  const dirs = [];
  for (let w = 0; w < waves; w++) {
    dirs.push(path.join(dir, `cohort-${w}`));
    fs.mkdirSync(dirs[w], { recursive: true });
  }
  list.forEach((p, i) => {
    fs.writeFileSync(path.join(dirs[i % waves], `${p.id}.bundle.json`), JSON.stringify(p.bundle));
  });
  return { list, load: (w) => loadCohort(base, dirs[w]) };
}

/** Reset the server, generate @p patients patients anchored at now, load them. */
async function loadFreshCohort(base, dir, { patients, seed }) {
  const c = await freshCohort(base, dir, { patients, seed });
  await c.load(0);
  return c.list;
}

/** A daemon configuration under @p dir (state, audit trail) for the server at @p base. */
function writeConfig(dir, base, opts = {}) {
  const file = path.join(dir, opts.name || 'painwatch.yaml');
  const state = path.join(dir, 'state');
  const lines = [
    `state_dir: ${state}`,
    `log_level: ${opts.logLevel || 'info'}`,
    `shadow_mode: ${opts.shadow ? 'true' : 'false'}`,
    'reevaluate_interval: 10s',
    `shutdown_timeout: ${opts.shutdownTimeout || '20s'}`,
    'health:',
    `  enabled: ${opts.health ? 'true' : 'false'}`,
    '  listen: "127.0.0.1:0"',
    'audit:',
    `  path: ${path.join(state, 'audit', 'trail.jsonl')}`,
    '  allow_local_key: true', // the test's key lives beside the trail (issue 19: demo only)
    'outbox: {retry_base: 1s, retry_cap: 2s}',
    'sink:',
    `  type: ${opts.sinkType || 'fhir-flag'}`,
    `  file: ${path.join(dir, 'shadow-flags.ndjson')}`,
    ...(opts.sinkLines || []).map((l) => `  ${l}`),
    'servers:',
    '  - name: ehr',
    `    base_url: ${base}`,
    '    auth: {type: none}',
    '    cohort: {type: server-wide}',
    `    resources: [Observation, MedicationRequest, MedicationAdministration, Condition, ServiceRequest, Encounter${opts.noFlagReadBack ? '' : ', Flag'}${opts.readBack ? `, ${opts.readBack}` : ''}]`,
    `    poll_interval: ${opts.pollInterval || '10s'}`,
    '    timeout: 30s',
  ];
  if (opts.rules) {
    lines.push('rules:');
    for (const [rule, params] of Object.entries(opts.rules)) {
      lines.push(`  ${rule}:`);
      for (const [k, v] of Object.entries(params)) lines.push(`    ${k}: ${v}`);
    }
  }
  if (opts.extra) lines.push(opts.extra);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return { file, state, trail: path.join(state, 'audit', 'trail.jsonl') };
}

const live = new Set();

/**
 * Start painwatchd. Returns {child, log(), waitFor(re, from), exited}: log() is the stderr so far,
 * waitFor resolves with the match of @p re in stderr past offset @p from, exited with
 * {code, signal}.
 */
function startDaemon(config, args = []) {
  const env = { ...process.env };
  delete env.PAINWATCH_LOG_LEVEL; // the configuration's log_level applies
  delete env.JOURNAL_STREAM;
  const child = spawn(PAINWATCHD, ['--config', config, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  live.add(child);
  let err = '';
  const waiters = [];
  const check = () => {
    for (const w of [...waiters]) {
      const m = err.slice(w.from).match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  };
  child.stderr.on('data', (d) => {
    err += d.toString();
    check();
  });
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`painwatchd exited (${code ?? signal}) before ${w.re}; log:\n${err.slice(-3000)}`));
      }
      resolve({ code, signal });
    });
  });
  const waitFor = (re, from = 0) =>
    new Promise((resolve, reject) => {
      const w = { re, from, resolve, reject };
      w.timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(new Error(`no ${re} from painwatchd within ${WAIT_MAX_MS} ms; log:\n${err.slice(-3000)}`));
      }, WAIT_MAX_MS);
      waiters.push(w);
      if (child.exitCode !== null || child.signalCode !== null) {
        w.reject(new Error(`painwatchd already exited; log:\n${err.slice(-3000)}`));
      }
      check();
    });
  // exited, but bounded: a daemon that does not stop is killed and reported as such.
  const stopped = async () => {
    const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MAX_MS);
    const r = await exited;
    clearTimeout(timer);
    return r;
  };
  return { child, log: () => err, waitFor, exited, stopped };
}

/** painwatchd --once to the end; returns {code, signal, log}. */
async function runOnce(config) {
  const d = startDaemon(config, ['--once']);
  const timer = setTimeout(() => d.child.kill('SIGKILL'), WAIT_MAX_MS);
  const r = await d.exited;
  clearTimeout(timer);
  return { ...r, log: d.log() };
}

/** Kill whatever is still running (test cleanup). */
function killAll() {
  for (const c of live) c.kill('SIGKILL');
}

/** The CLI, synchronously: {status, stdout, stderr}. */
function cli(args) {
  const r = spawnSync(PAINWATCH, args, { encoding: 'utf8', timeout: WAIT_MAX_MS });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every Flag on the server as {id, key, status, subject, rule}. */
async function serverFlags(base) {
  const { entries } = await searchAll(base, '/Flag?_count=1000');
  return entries.map((e) => {
    const r = e.resource;
    const ident = (r.identifier || []).find((i) => i.system === EPISODE_SYSTEM);
    return {
      id: r.id,
      key: ident ? ident.value : null,
      status: r.status,
      subject: r.subject && r.subject.reference,
      rule: r.code && r.code.coding && r.code.coding[0] && r.code.coding[0].code,
    };
  });
}

/** Search one episode key; returns the number of Flags the server holds for it. */
async function countByIdentifier(base, key) {
  const r = await fhir(base, 'GET', `/Flag?identifier=${encodeURIComponent(`${EPISODE_SYSTEM}|${key}`)}`);
  assert.equal(r.status, 200);
  return (r.body.entry || []).length;
}

/** The writes the server logged ({method, url, status}) since the log was last cleared. */
async function serverWrites(base) {
  const log = (await fhir(base, 'GET', '/_admin/requests')).body;
  return log.filter((e) => e.method !== 'GET' && !/\/_search(\?|$)/.test(e.url));
}

/**
 * A loopback proxy in front of the reference server. Requests matching hold(pred) wait until
 * released; onRequest / onResponse hooks see every request before it is forwarded and every
 * answer before it is relayed (a hook may kill the daemon there: the crash points).
 */
class Gate {
  constructor(target) {
    this.target = new URL(target);
    this.held = [];
    this.holdPred = null;
    this.onRequest = null;
    this.onResponse = null;
    this.seen = [];
    this.heldWaiters = [];
    this.agent = new http.Agent({ keepAlive: true });
  }

  async start() {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 30000;
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${this.server.address().port}`;
    return this.base;
  }

  hold(pred) {
    this.holdPred = pred;
  }

  /** Resolves once @p n requests are held. */
  waitHeld(n) {
    return new Promise((resolve, reject) => {
      const w = { n, resolve };
      w.timer = setTimeout(() => reject(new Error(`fewer than ${n} requests held in ${WAIT_MAX_MS} ms`)), WAIT_MAX_MS);
      this.heldWaiters.push(w);
      this.notifyHeld();
    });
  }

  notifyHeld() {
    for (const w of [...this.heldWaiters]) {
      if (this.held.length >= w.n) {
        this.heldWaiters.splice(this.heldWaiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(this.held.length);
      }
    }
  }

  /** Forward every held request (their answers go to whoever still listens); stop holding. */
  releaseAll() {
    this.holdPred = null;
    const held = this.held.splice(0);
    return Promise.all(held.map((h) => h.release()));
  }

  handle(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const info = { method: req.method, url: req.url, body: Buffer.concat(chunks) };
      this.seen.push(info);
      res.on('error', () => {});
      const forward = () => this.forward(info, req, res);
      if (this.onRequest && this.onRequest(info) === 'drop') {
        req.socket.destroy();
        return;
      }
      if (this.holdPred && this.holdPred(info)) {
        let done;
        const p = new Promise((r) => (done = r));
        this.held.push({ info, release: () => forward().then(done, done) });
        this.notifyHeld();
        return p;
      }
      return forward();
    });
  }

  forward(info, req, res) {
    return new Promise((resolve) => {
      const headers = { ...req.headers, host: this.target.host };
      const up = http.request(
        { host: this.target.hostname, port: this.target.port, method: info.method, path: info.url, headers, agent: this.agent },
        (ur) => {
          const body = [];
          ur.on('data', (c) => body.push(c));
          ur.on('end', () => {
            const out = { status: ur.statusCode, headers: ur.headers, body: Buffer.concat(body) };
            if (this.onResponse && this.onResponse(info, out) === 'drop') {
              req.socket.destroy();
              resolve();
              return;
            }
            if (!res.destroyed) {
              // Paging links and Location name the real server: point them at the gate.
              const text = out.body.toString('utf8').split(this.target.origin).join(this.base);
              const headers = { ...out.headers };
              delete headers['content-length'];
              delete headers['transfer-encoding'];
              if (headers.location) headers.location = headers.location.replace(this.target.origin, this.base);
              headers['content-length'] = Buffer.byteLength(text);
              res.writeHead(out.status, headers);
              res.end(text);
            }
            resolve();
          });
        },
      );
      up.on('error', () => {
        req.socket.destroy();
        resolve();
      });
      up.end(info.body);
    });
  }

  async close() {
    for (const w of this.heldWaiters.splice(0)) clearTimeout(w.timer);
    this.held.splice(0);
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
    this.agent.destroy();
  }
}

/**
 * Parse Prometheus text format 0.0.4 strictly: every line is a comment (# HELP / # TYPE with a
 * known type) or a sample `name{label="value",...} number`, each sample's family declared by a
 * preceding # TYPE. Returns Map "name{labels}" -> number. Throws on the first bad line.
 */
function parsePrometheus(text) {
  const samples = new Map();
  const types = new Map();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(`^(${NAME})(\\{(.*)\\})? (\\S+)( -?[0-9]+)?$`);
  const labelRe = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/;
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith('#')) {
      const m = line.match(new RegExp(`^# (HELP|TYPE) (${NAME}) ?(.*)$`));
      assert.ok(m, `bad comment, ${where}`);
      if (m[1] === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]), `bad type, ${where}`);
        assert.ok(!types.has(m[2]), `family typed twice, ${where}`);
        types.set(m[2], m[3]);
      }
      return;
    }
    const m = line.match(sampleRe);
    assert.ok(m, `bad sample, ${where}`);
    const family = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]) || types.has(family), `sample before its # TYPE, ${where}`);
    let rest = m[3] || '';
    const labels = [];
    while (rest.length > 0) {
      const l = rest.match(labelRe);
      assert.ok(l, `bad label list, ${where}`);
      labels.push(`${l[1]}="${l[2]}"`);
      rest = rest.slice(l[0].length);
    }
    const value = m[4];
    assert.ok(/^([-+]?([0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?)|[-+]?Inf|NaN)$/.test(value), `bad value, ${where}`);
    const key = `${m[1]}{${labels.join(',')}}`;
    assert.ok(!samples.has(key), `duplicate series, ${where}`);
    samples.set(key, Number(value.replace('Inf', 'Infinity')));
  });
  return { samples, types };
}

/** Sum of every series of @p name whose labels include all of @p want ({label: value}). */
function metricSum(samples, name, want = {}) {
  let sum = 0;
  for (const [key, v] of samples) {
    if (!key.startsWith(`${name}{`)) continue;
    if (Object.entries(want).every(([k, val]) => key.includes(`${k}="${val}"`))) sum += v;
  }
  return sum;
}

/** The health listener's port, from the daemon's log (it listens on 127.0.0.1:0). */
async function healthPort(d) {
  const m = await d.waitFor(/serving \/healthz \/readyz \/metrics on \S+ \(port ([0-9]+)\)/);
  return Number(m[1]);
}

/** Poll @p fn (async, truthy when done) every 200 ms, at most WAIT_MAX_MS; returns its value. */
async function until(what, fn) {
  const end = Date.now() + WAIT_MAX_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The audit trail's records (JSON objects) from @p file. */
function trailRecords(file) {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));
}

/** The Flags a clean shadow-mode run on fresh state would create: sorted episode keys. */
async function expectedKeys(dir, base) {
  fs.mkdirSync(dir, { recursive: true });
  const ref = writeConfig(dir, base, { shadow: true, noFlagReadBack: true });
  const r = await runOnce(ref.file);
  assert.equal(r.code, 0, r.log);
  return trailOr(path.join(dir, 'shadow-flags.ndjson'))
    .filter((x) => x.op === 'create')
    .map((x) => x.key)
    .sort();
}

function trailOr(file) {
  return fs.existsSync(file) ? trailRecords(file) : [];
}

/** GET on the daemon's health listener: {status, text}. */
async function healthGet(port, p) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: r.status, text: await r.text(), type: r.headers.get('content-type') };
}

module.exports = {
  EPISODE_SYSTEM,
  PAINWATCH,
  prng,
  tmpdir,
  freshCohort,
  loadFreshCohort,
  writeConfig,
  startDaemon,
  runOnce,
  killAll,
  cli,
  serverFlags,
  countByIdentifier,
  serverWrites,
  Gate,
  parsePrometheus,
  metricSum,
  healthGet,
  healthPort,
  until,
  trailRecords,
  expectedKeys,
};
