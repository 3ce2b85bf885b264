#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Loads a generated cohort into a FHIR server: POSTs every DIR/*.bundle.json transaction to BASE.
// usage: node load.js --base http://127.0.0.1:PORT DIR   (exit 1 on the first rejected bundle)
'use strict';

const fs = require('node:fs');
const path = require('node:path');

async function loadCohort(base, dir) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.bundle.json')).sort();
  if (files.length === 0) {
    throw new Error(`${dir}: no *.bundle.json files`);
  }
  let resources = 0;
  for (const f of files) {
    const body = fs.readFileSync(path.join(dir, f), 'utf8');
    const res = await fetch(base.replace(/\/+$/, '') + '/', {
      method: 'POST',
      headers: { 'Content-Type': 'application/fhir+json', Accept: 'application/fhir+json' },
      body,
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(`${f}: HTTP ${res.status}: ${text.slice(0, 2000)}`);
    }
    const reply = JSON.parse(text);
    for (const e of reply.entry || []) {
      if (!/^20[01]/.test(String(e.response && e.response.status))) {
        throw new Error(`${f}: entry answered ${e.response && e.response.status}`);
      }
      resources++;
    }
  }
  return { bundles: files.length, resources };
}

async function main(argv) {
  let base = null;
  let dir = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--base' && i + 1 < argv.length) base = argv[++i];
    else if (!dir && !argv[i].startsWith('--')) dir = argv[i];
    else {
      console.error(`load.js: unexpected argument ${argv[i]}`);
      return 2;
    }
  }
  if (!base || !dir) {
    console.error('usage: node load.js --base URL DIR');
    return 2;
  }
  try {
    const r = await loadCohort(base, dir);
    console.log(`load.js: ${r.bundles} bundles, ${r.resources} resources loaded into ${base}`);
    return 0;
  } catch (err) {
    console.error(`load.js: ${err.message}`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((rc) => {
    process.exitCode = rc;
  });
}

module.exports = { loadCohort };
