// SPDX-License-Identifier: Apache-2.0
// Shared helpers for the e2e node:test files: where the server is, small FHIR HTTP calls.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const E2E_DIR = process.env.PW_E2E_DIR || path.resolve(__dirname, '..');

/** Base URL of the server started by the e2e_server fixture (port in $PW_E2E_PORT_FILE). */
function serverBase() {
  const file = process.env.PW_E2E_PORT_FILE;
  if (!file) {
    throw new Error('PW_E2E_PORT_FILE is not set: run through ctest (fixture e2e_server)');
  }
  const port = fs.readFileSync(file, 'utf8').trim();
  if (!/^[0-9]+$/.test(port)) {
    throw new Error(`${file}: no port in it`);
  }
  return `http://127.0.0.1:${port}`;
}

/** One request; returns {status, headers, body (parsed JSON or null)}. */
async function fhir(base, method, url, body, headers = {}) {
  const res = await fetch(url.startsWith('http') ? url : base + url, {
    method,
    headers: {
      Accept: 'application/fhir+json',
      ...(body !== undefined ? { 'Content-Type': 'application/fhir+json' } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = null;
  if (text) {
    parsed = JSON.parse(text);
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

/** Follows next links from a search URL; returns every entry and the pages seen. */
async function searchAll(base, url, maxPages = 200) {
  const entries = [];
  const pages = [];
  let next = url;
  while (next) {
    if (pages.length >= maxPages) {
      throw new Error(`more than ${maxPages} pages from ${url}`);
    }
    const r = await fhir(base, 'GET', next);
    if (r.status !== 200) {
      throw new Error(`GET ${next}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    pages.push(r.body);
    entries.push(...(r.body.entry || []));
    const link = (r.body.link || []).find((l) => l.relation === 'next');
    next = link ? link.url : null;
  }
  return { entries, pages };
}

/** A unique token so tests sharing one server never see each other's data. */
function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
}

module.exports = { E2E_DIR, serverBase, fhir, searchAll, unique };
