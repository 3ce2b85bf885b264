// SPDX-License-Identifier: Apache-2.0
// The hostile-server matrix (issue 18): painwatchd against the e2e reference server behind a
// gate that misbehaves as a broken or hostile FHIR server would. Every scenario asserts:
//   no crash     painwatchd ends by itself, no sanitizer report;
//   bounded      VmHWM stays under MEM_MAX_KIB (the acceptance bound: 512 MB);
//   clear log    the operational log names what went wrong;
//   nothing lost once the server behaves again (or around a poison resource), the Flags are
//                exactly those of a clean run, each once;
//   readiness    (the scenarios marked so) /readyz says not ready while it lasts, ready after.
// Short form under ctest (label hostile); PW_HOSTILE_LONG=1 makes storms longer and pages
// bigger; PW_HOSTILE_ONLY=<regex> runs the matching scenarios. Loopback only.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { serverBase, fhir } = require(path.join(process.env.PW_E2E_DIR, 'node/support.js'));
const D = require(path.join(process.env.PW_E2E_DIR, 'node/daemon-support.js'));
const { loadCohort } = require(path.join(process.env.PW_E2E_DIR, 'cohort/load.js'));
const H = require('./hostile-support.js');

const LONG = process.env.PW_HOSTILE_LONG === '1';
const ONLY = process.env.PW_HOSTILE_ONLY ? new RegExp(process.env.PW_HOSTILE_ONLY) : null;
const MEM_MAX_KIB = 512 * 1024;
const PATIENTS = 12;

// Scenarios that fail on main until another branch's fix merges (issue 18 finding numbers).
// They run inverted: they must still fail, and fail the suite once they pass, so the lead
// removes the line when the fix merges.
const EXPECTED_FAIL = {
};

const base = serverBase();
let work;
let cohortDir;
let expected;
let gate;

/** A fresh server holding the cohort, a fresh state directory, the gate in front. */
async function fresh(name, opts = {}) {
  assert.equal((await fhir(base, 'POST', '/_admin/reset')).status, 200);
  await loadCohort(base, cohortDir);
  const dir = path.join(work, name.replace(/[^a-z0-9]+/gi, '-'));
  fs.mkdirSync(dir, { recursive: true });
  gate.act = null;
  // Loading gives the resources new server ids, and episode keys name them: the Flags to
  // expect come from a clean shadow run on this load.
  expected = await D.expectedKeys(path.join(dir, 'reference'), gate.base);
  assert.ok(expected.length >= 3, `a clean run raises Flags (${expected.length})`);
  gate.log = [];
  return D.writeConfig(dir, gate.base, opts);
}

/**
 * Nothing lost, nothing duplicated: every Flag of a clean run is on the server and active, no
 * episode twice. Returns the Flags a clean run does not raise (checked separately: a Flag raised
 * on partial data is another fault than a lost one).
 */
async function assertNothingLost(what) {
  const flags = await D.serverFlags(base);
  if (process.env.PW_HOSTILE_DEBUG) console.log(flags.map((f) => `# ${f.status} ${f.rule} ${f.subject}`).join('\n'));
  const keys = flags.map((f) => f.key).sort();
  const dup = keys.filter((k, i) => i > 0 && keys[i - 1] === k);
  assert.deepEqual(dup, [], `${what}: duplicated Flags`);
  const active = new Set(flags.filter((f) => f.status === 'active').map((f) => f.key));
  assert.deepEqual(expected.filter((k) => !active.has(k)), [], `${what}: Flags of a clean run missing or not active`);
  // The poison resource's own (invented) patient may rightly get a data-quality Flag.
  return flags
    .filter((f) => !expected.includes(f.key) && f.subject !== 'Patient/poison-p')
    .map((f) => `${f.status} ${f.rule} ${f.subject}`);
}

function assertBounded(r, what) {
  assert.ok(r.hwmKiB > 0, `${what}: VmHWM was sampled`);
  assert.ok(r.hwmKiB < MEM_MAX_KIB, `${what}: VmHWM ${r.hwmKiB} KiB over ${MEM_MAX_KIB} KiB`);
}

/**
 * The common shape: a hostile run, then (unless the hostility is data that stays) a run against
 * a well-behaved server; the checks above after each. @p s: {act, log (RegExp the hostile run's
 * log must match), persistent, config, check(r)}.
 */
async function scenario(name, s) {
  const conf = await fresh(name, s.config || {});
  if (s.edit) fs.writeFileSync(conf.file, s.edit(fs.readFileSync(conf.file, 'utf8')));
  gate.act = s.act;
  const r = await H.runOnceSampled(conf.file);
  const hostile = gate.log.filter((x) => x.hostile).length;
  console.log(`# ${name}: exit ${r.code ?? r.signal}, VmHWM ${Math.round(r.hwmKiB / 1024)} MiB, ${hostile} hostile answers, ${r.log.split('\n').length} log lines`);
  if (process.env.PW_HOSTILE_DEBUG) console.log(r.log.replace(/^/gm, '# | '));
  H.assertNoCrash(r, name);
  assertBounded(r, name);
  assert.ok(hostile > 0, `${name}: the hostile server was met`);
  if (s.log) assert.match(r.log, s.log, `${name}: no clear log line; log:\n${r.log.slice(-3000)}`);
  if (s.check) await s.check(r, conf);
  if (!s.persistent) gate.act = null;
  const again = await H.runOnceSampled(conf.file);
  H.assertNoCrash(again, `${name} (after)`);
  assert.equal(again.code, 0, `${name}: the run after must succeed; log:\n${again.log.slice(-3000)}`);
  const spurious = await assertNothingLost(name);
  return { r, again, conf, spurious };
}

/** A search page Bundle with @p extra appended to the server's real entries (raw JSON text). */
function withExtraEntry(up, extraJson) {
  const text = up.body.toString('utf8');
  const b = JSON.parse(text);
  const entries = (b.entry || []).map((e) => JSON.stringify(e));
  entries.push(extraJson);
  delete b.entry;
  const head = JSON.stringify(b).slice(0, -1);
  return Buffer.concat([Buffer.from(`${head},"entry":[${entries.join(',')}]}`)]);
}

/** An Observation for an unknown patient whose value (raw JSON text) is poison. */
function poisonObservation(valueText, id = 'poison-1') {
  return `{"fullUrl":"${gate.base}/Observation/${id}","search":{"mode":"match"},"resource":{"resourceType":"Observation","id":"${id}","meta":{"versionId":"1","lastUpdated":"${new Date(Date.now() - 60000).toISOString()}"},"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"72514-3"}]},"subject":{"reference":"Patient/poison-p"},"effectiveDateTime":"${new Date(Date.now() - 120000).toISOString()}","valueQuantity":{"value":${valueText},"unit":"{score}"}}}`;
}

/** Hostility limited to the first @p n matching requests. */
function firstN(n, pred, fn) {
  let seen = 0;
  return (info) => (pred(info) && seen++ < n ? fn : undefined);
}

const storm = LONG ? 40 : 6;
const SCENARIOS = [
  ['429 storm with Retry-After', {
    act: firstN(storm, (i) => H.isSearch(i), async (req, res) => H.send(res, 429, { 'retry-after': '1' }, H.outcome('slow down'))),
    log: /\b429\b/,
  }],
  ['503 storm with an HTTP-date Retry-After', {
    act: firstN(storm, (i) => H.isSearch(i), async (req, res) =>
      H.send(res, 503, { 'retry-after': new Date(Date.now() + 1000).toUTCString() }, H.outcome('maintenance'))),
    log: /\b503\b/,
  }],
  ['connection reset mid-body', {
    act: firstN(3, (i) => H.isSearch(i, 'Observation'), async (req, res, info, upstream) => {
      const up = await upstream();
      res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': up.body.length });
      res.write(up.body.subarray(0, Math.floor(up.body.length / 2)));
      setTimeout(() => req.socket.destroy(), 50);
    }),
    log: /Observation\/.*(transfer (failed|closed))/,
  }],
  ['truncated JSON with a consistent length', {
    act: firstN(3, (i) => H.isSearch(i, 'MedicationRequest'), async (req, res, info, upstream) => {
      const up = await upstream();
      H.send(res, 200, {}, up.body.subarray(0, Math.max(1, Math.floor(up.body.length * 0.7))));
    }),
    log: /MedicationRequest\/.*(not JSON|malformed JSON)/,
  }],
  ['slow body past the timeout', {
    edit: (text) => text.replace('    timeout: 30s', '    timeout: 4s'),
    act: firstN(1, (i) => H.isSearch(i, 'Observation'), async (req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+json', 'content-length': 100000 });
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(' ')), 500);
      req.socket.on('close', () => clearInterval(t));
    }),
    log: /tim(e|ed) ?out/i,
  }],
  ['wrong Content-Type (HTML error page)', {
    act: firstN(2, (i) => H.isSearch(i, 'Condition'), async (req, res) =>
      H.send(res, 200, { 'content-type': 'text/html' }, '<html><body>Login required</body></html>')),
    log: /Condition\/.*(not JSON|Content-Type)/,
  }],
  ['3xx loop on a search', {
    act: firstN(50, (i) => H.isSearch(i, 'Encounter'), async (req, res, info) =>
      H.send(res, 302, { location: `${gate.base}${info.url}` }, '')),
    log: /redirect/i,
  }],
  ['3xx to another origin', {
    act: firstN(2, (i) => H.isSearch(i, 'ServiceRequest'), async (req, res, info) =>
      H.send(res, 302, { location: `http://127.0.0.2:${gate.server.address().port}${info.url}` }, '')),
    log: /redirect|origin/i,
  }],
  ['huge page of empty entries', {
    act: firstN(1, (i) => H.isSearch(i, 'Observation'), async (req, res) => {
      const n = LONG ? 8000000 : 1500000; // 3 MB (long: 16 MB) of {}
      const body = Buffer.alloc(70 + n * 3, ',');
      const head = '{"resourceType":"Bundle","type":"searchset","entry":[';
      body.write(head);
      for (let i = 0, o = head.length; i < n; i++, o += 3) body.write(i ? ',{}' : ' {}', o);
      const tail = ']}';
      const end = head.length + n * 3;
      H.send(res, 200, {}, Buffer.concat([body.subarray(0, end), Buffer.from(tail)]));
    }),
    log: /entr(y|ies).*(cap|limit|too many|over)|(cap|limit).*entr|over the parse budget/i,
  }],
  ...(LONG ? [['few huge entries', {
    // Four Observations of 6 MB each (one component array): an entry cap does not bound this.
    act: firstN(1, (i) => H.isSearch(i, 'Observation'), async (req, res) => {
      const comp = '{"code":{"text":"c"},"valueInteger":1}';
      const one = (k) => `{"resource":{"resourceType":"Observation","id":"huge-${k}","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/huge"},"component":[${Array(150000).fill(comp).join(',')}]}}`;
      H.send(res, 200, {}, `{"resourceType":"Bundle","type":"searchset","entry":[${[0, 1, 2, 3].map(one).join(',')}]}`);
    }),
    log: /memory|budget|too large|refus/i,
  }]] : []),
  ['log flood: a page of bad entries', {
    act: firstN(1, (i) => H.isSearch(i, 'Observation'), async (req, res) => {
      const n = LONG ? 700000 : 100000; // 44 bytes each: the long form stays under the 32 MiB cap
      const one = '{"resource":{"resourceType":"Observation"}}';
      H.send(res, 200, {}, `{"resourceType":"Bundle","type":"searchset","entry":[${Array(n).fill(one).join(',')}]}`);
    }),
    check: async (r) => {
      const lines = r.log.split('\n').length;
      assert.ok(lines < 2000, `${lines} log lines for one page: not rate-limited by template`);
      // Either the page is refused whole by the entry cap (asked again smaller) or its bad
      // entries are summed up in one line: never one line per entry.
      assert.match(r.log, /rejected|over the entry cap/i, 'a per-page summary of rejected entries');
    },
  }],
  ['poison decimal 1e400 beside good data', {
    persistent: true,
    act: (i) => (H.isSearch(i, 'Observation') ? async (req, res, info, upstream) => {
      const up = await upstream();
      H.send(res, 200, {}, withExtraEntry(up, poisonObservation('1e400')));
    } : undefined),
    log: /poison-1|unreadable|skipp/i,
  }],
  ['poison 30-digit integer beside good data', {
    persistent: true,
    act: (i) => (H.isSearch(i, 'Observation') ? async (req, res, info, upstream) => {
      const up = await upstream();
      H.send(res, 200, {}, withExtraEntry(up, poisonObservation('123456789012345678901234567890')));
    } : undefined),
    log: /poison-1|unreadable|skipp/i,
  }],
  ['invalid UTF-8 in one resource', {
    persistent: true,
    act: (i) => (H.isSearch(i, 'Observation') ? async (req, res, info, upstream) => {
      const up = await upstream();
      const bad = Buffer.from(poisonObservation('5').replace('"unit":"{score}"', '"unit":"@@@@"'));
      const at = bad.indexOf('@@@@');
      bad[at] = 0xff;
      bad[at + 1] = 0xfe;
      const page = withExtraEntry(up, '"@PLACEHOLDER@"');
      const cut = page.indexOf('"@PLACEHOLDER@"');
      H.send(res, 200, {}, Buffer.concat([page.subarray(0, cut), bad, page.subarray(cut + 15)]));
    } : undefined),
    log: /poison-1|unreadable|skipp|UTF/i,
  }],
];

test('hostile-server matrix', { timeout: LONG ? 7200000 : 1500000 }, async (t) => {
  work = D.tmpdir('hostile');
  gate = new H.HostileGate(base);
  await gate.start();
  try {
    const c = await D.freshCohort(base, work, { patients: PATIENTS, seed: 'hostile' });
    cohortDir = path.join(work, 'cohort-0');
    await c.load(0);
    console.log(`# ${c.list.length} patients`);

    for (const [name, s] of SCENARIOS) {
      if (ONLY && !ONLY.test(name)) continue;
      let out = null;
      await t.test(name, () => H.expecting(EXPECTED_FAIL[name], async () => (out = await scenario(name, s))));
      const extra = `${name}: no Flag beyond a clean run's`;
      if (out) await t.test(extra, () => H.expecting(EXPECTED_FAIL[extra], () => assert.deepEqual(out.spurious, [], 'Flags raised on data painwatch did not manage to read')));
    }

    if (!ONLY || ONLY.test('readiness')) {
      await t.test('503 storm: readiness reflects it', () => H.expecting(EXPECTED_FAIL['503 storm: readiness reflects it'], () =>
        readiness('503-ready', (i) => (H.isSearch(i) ? async (req, res) => H.send(res, 503, {}, H.outcome('down')) : undefined))));
      // A poison value skips its resource and the stream goes on (no failure, the server stays
      // ready: the scenarios above); a page that is not JSON at any _count fails every cycle.
      await t.test('malformed page: readiness reflects it', () => H.expecting(EXPECTED_FAIL['malformed page: readiness reflects it'], () =>
        readiness('malformed-ready', (i) => (H.isSearch(i, 'Observation') ? async (req, res) => {
          H.send(res, 200, {}, '{"resourceType":"Bundle","type":"searchset","entry":[{"resource":');
        } : undefined))));
    }

    for (const [name] of [['traversal id in a Flag POST response'], ['foreign token endpoint from discovery']]) {
      if (ONLY && !ONLY.test(name)) continue;
      await t.test(name, () => H.expecting(EXPECTED_FAIL[name], () => (name.startsWith('traversal') ? traversal(name) : foreignToken(name))));
    }
  } finally {
    D.killAll();
    await gate.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});

/**
 * painwatchd as a service (health listener on): not ready while every cycle fails (or, with
 * opts.poison, while a poison resource stalls a stream), ready again once the server behaves
 * (poison: once it is skipped), and the Flags of a clean run in the end.
 */
async function readiness(name, act, opts = {}) {
  const conf = await fresh(name, { health: true });
  gate.act = act;
  const d = H.startSampled(conf.file, []);
  try {
    const port = await D.healthPort(d);
    await H.untilLong('readyz to say not ready', async () => (await D.healthGet(port, '/readyz')).status === 503);
    await H.untilLong('painwatch_server_up to be 0', async () =>
      D.metricSum(D.parsePrometheus((await D.healthGet(port, '/metrics')).text).samples, 'painwatch_server_up') === 0);
    if (!opts.poison) gate.act = null;
    await H.untilLong('readyz to say ready again', async () => (await D.healthGet(port, '/readyz')).status === 200);
    assert.ok(d.hwmKiB() < MEM_MAX_KIB, `VmHWM ${d.hwmKiB()} KiB`);
    await H.untilLong('the Flags of a clean run', async () => {
      const keys = (await D.serverFlags(base)).map((f) => f.key).sort();
      return JSON.stringify(keys) === JSON.stringify(expected);
    });
  } finally {
    d.child.kill('SIGTERM');
    const r = await d.stopped();
    H.assertNoCrash({ ...r, log: d.log() }, name);
  }
  gate.act = null;
  await assertNothingLost(name);
}

/**
 * A server that answers a Flag POST with a path-traversal id (Location and body): the later
 * update of that Flag must not go anywhere but /Flag/<a valid id> (finding 7). The writes the
 * gate refuses never reach the reference server.
 */
async function traversal(name) {
  // Its own small cohort: patients whose Flag resolves when a laxative is added.
  assert.equal((await fhir(base, 'POST', '/_admin/reset')).status, 200);
  const { generate } = require(path.join(process.env.PW_E2E_DIR, 'cohort/generate.js'));
  const M = require(path.join(process.env.PW_E2E_DIR, 'cohort/mutations.js'));
  const dir = path.join(work, 'traversal');
  const cdir = path.join(dir, 'cohort');
  fs.mkdirSync(cdir, { recursive: true });
  const list = generate({ patients: 25, seed: 'hostile-traversal', anchor: new Date() }).filter((p) =>
    p.expected.expected.some((x) => x.rule === 'bowel-regimen-missing'));
  assert.ok(list.length >= 1, 'the cohort has a bowel-regimen-missing patient');
  for (const p of list) fs.writeFileSync(path.join(cdir, `${p.id}.bundle.json`), JSON.stringify(p.bundle));
  await loadCohort(base, cdir);
  const conf = D.writeConfig(dir, gate.base);
  gate.log = [];
  const bad = [];
  gate.act = (info) => {
    if (info.method === 'POST' && /\/Flag$/.test(info.url.split('?')[0])) {
      return async (req, res, i, upstream) => {
        const up = await upstream();
        const body = JSON.parse(up.body.toString('utf8'));
        const evil = `../../../Patient/${((body.subject && body.subject.reference) || 'Patient/x').split('/')[1]}`;
        body.id = evil;
        H.send(res, up.status, { location: `${gate.base}/Flag/${evil}/_history/1`, etag: 'W/"1"' }, JSON.stringify(body));
      };
    }
    if (info.method !== 'GET' && !/^\/Flag(\/[A-Za-z0-9\-.]{1,64})?(\?|$)/.test(info.url)) {
      bad.push(`${info.method} ${info.url}`);
      return async (req, res) => H.send(res, 400, {}, H.outcome('refused by the test gate'));
    }
    return undefined;
  };
  const r1 = await H.runOnceSampled(conf.file);
  H.assertNoCrash(r1, name);
  assert.ok(gate.log.some((x) => x.method === 'POST' && x.hostile), 'a Flag was created (and its id answered hostile)');
  const now = Date.now() - 30000;
  for (const p of list) assert.equal((await fhir(base, 'POST', '/', M.addLaxative(p.id, now))).status, 200);
  const r2 = await H.runOnceSampled(conf.file);
  H.assertNoCrash(r2, name);
  const updates = gate.log.filter((x) => ['PUT', 'PATCH', 'DELETE'].includes(x.method));
  console.log(`# ${name}: ${updates.length} update(s): ${updates.slice(0, 4).map((x) => `${x.method} ${x.url}`).join(', ')}`);
  assert.deepEqual(bad, [], 'writes outside /Flag/<valid id>');
  // Not vacuous: either the resolution was written (to a valid id) or the hostile id was refused
  // in words.
  assert.ok(updates.length > 0 || /not a (valid )?(FHIR )?id|invalid id|refus/i.test(r1.log + r2.log),
    `neither an update nor a refusal of the id; logs:\n${(r1.log + r2.log).slice(-3000)}`);
}

/**
 * client-secret auth without token_url: the discovery document names a token endpoint on another
 * origin (loopback, another port). The secret must never reach it; the log says why (finding 1).
 */
async function foreignToken(name) {
  const received = [];
  const foreign = http.createServer((req, res) => {
    let b = '';
    req.on('data', (c) => (b += c));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, auth: req.headers.authorization || '', body: b });
      H.send(res, 200, { 'content-type': 'application/json' }, '{"access_token":"stolen","token_type":"Bearer","expires_in":300}');
    });
  });
  await new Promise((r) => foreign.listen(0, '127.0.0.1', r));
  try {
    const dir = path.join(work, 'foreign-token');
    fs.mkdirSync(dir, { recursive: true });
    const secret = path.join(dir, 'client.secret');
    fs.writeFileSync(secret, 'the-client-secret', { mode: 0o600 });
    const conf = await fresh(name);
    const text = fs.readFileSync(conf.file, 'utf8').replace('    auth: {type: none}',
      `    auth: {type: client-secret, client_id: painwatch, client_secret_file: ${secret}}`);
    fs.writeFileSync(conf.file, text);
    gate.act = (info) =>
      info.url.startsWith('/.well-known/smart-configuration')
        ? async (req, res) => H.send(res, 200, { 'content-type': 'application/json' },
          JSON.stringify({ token_endpoint: `http://127.0.0.1:${foreign.address().port}/token`, capabilities: ['client-confidential-symmetric'] }))
        : undefined;
    const r = await H.runOnceSampled(conf.file);
    H.assertNoCrash(r, name);
    console.log(`# ${name}: foreign endpoint received ${received.length} requests`);
    assert.deepEqual(received.map((x) => `${x.method} ${x.url} auth=${x.auth ? 'yes' : 'no'} secret=${x.body.includes('secret') || x.auth !== ''}`), [],
      'the client secret went to a token endpoint on another origin');
    assert.match(r.log, /token.*(origin|refus)|(origin|refus).*token/i, 'a clear refusal in the log');
  } finally {
    foreign.closeAllConnections();
    await new Promise((r) => foreign.close(r));
  }
}
