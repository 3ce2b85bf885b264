#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Trims a Synthea R4 transaction Bundle to what painwatch reads (Patient, Condition, pain-score
// Observations, MedicationRequest, Medication) and drops references to resources left out.
// usage: node trim.js IN.json OUT.json   (used once to make the copies in this folder)
'use strict';

const fs = require('node:fs');

const PAIN_CODES = new Set(['72514-3', '38208-5', '38221-8', '38214-3']);
const KEEP = new Set(['Patient', 'Condition', 'MedicationRequest', 'Medication']);

function keep(resource) {
  if (KEEP.has(resource.resourceType)) return true;
  return resource.resourceType === 'Observation' && (resource.code.coding || []).some((c) => PAIN_CODES.has(c.code));
}

/** Removes every Reference to a urn:uuid that is not kept; empties arrays/objects collapse. */
function prune(value, kept) {
  if (Array.isArray(value)) {
    const out = value.map((v) => prune(v, kept)).filter((v) => v !== undefined);
    return out.length ? out : undefined;
  }
  if (value && typeof value === 'object') {
    if (typeof value.reference === 'string' && value.reference.startsWith('urn:uuid:') && !kept.has(value.reference)) {
      return undefined;
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const p = prune(v, kept);
      if (p !== undefined) out[k] = p;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return value;
}

function main([input, output]) {
  if (!input || !output) {
    console.error('usage: node trim.js IN.json OUT.json');
    return 2;
  }
  const bundle = JSON.parse(fs.readFileSync(input, 'utf8'));
  const entries = bundle.entry.filter((e) => keep(e.resource));
  const kept = new Set(entries.map((e) => e.fullUrl));
  const out = { resourceType: 'Bundle', type: 'transaction', entry: entries.map((e) => prune(e, kept)) };
  fs.writeFileSync(output, JSON.stringify(out, null, 1) + '\n');
  console.log(`${output}: ${entries.length} of ${bundle.entry.length} entries`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
