#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Validates FHIR R4 JSON files with Medplum's validateResource and the official R4 JSON schema.
// usage: node validate.js [--quiet] FILE...   (a resource, a Bundle, or NDJSON; exit 1 on any error)
'use strict';

const fs = require('node:fs');
const { validateFhir } = require('./fhirvalidate.js');

const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** Yields [place, resource] for a file holding one resource, a Bundle, or NDJSON. */
function* resourcesIn(file, text) {
  const trimmed = text.trim();
  let docs;
  try {
    docs = [[file, JSON.parse(trimmed)]];
  } catch (err) {
    // Not one JSON document: NDJSON, one resource per non-empty line.
    const lines = text.split('\n');
    if (lines.filter((l) => l.trim()).length < 2) {
      throw new Error(`${file}: not JSON: ${err.message}`);
    }
    docs = [];
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      try {
        docs.push([`${file}:${i + 1}`, JSON.parse(line)]);
      } catch (e) {
        throw new Error(`${file}:${i + 1}: not JSON: ${e.message}`);
      }
    });
  }
  for (const [place, doc] of docs) {
    yield [place, doc];
  }
}

function main(argv) {
  const quiet = argv.includes('--quiet');
  const files = argv.filter((a) => a !== '--quiet');
  if (files.length === 0) {
    console.error('usage: node validate.js [--quiet] FILE...');
    return 2;
  }
  let bad = 0;
  let total = 0;
  for (const file of files) {
    let text;
    try {
      if (fs.statSync(file).size > MAX_FILE_BYTES) throw new Error('file larger than 64 MiB');
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      console.error(`${file}: ${err.message}`);
      return 2;
    }
    try {
      for (const [place, resource] of resourcesIn(file, text)) {
        const id = `${resource.resourceType}/${resource.id || '(no id)'}`;
        total++;
        // A Bundle: Medplum checks it whole (nested resources included); the R4 JSON schema checks
        // each entry's resource on its own, so its Bundle schema (a oneOf over every resource
        // type, slow to compile) is never needed and errors name the resource.
        const isBundle = resource.resourceType === 'Bundle';
        const errors = validateFhir(resource, { schema: !isBundle });
        if (isBundle) {
          (resource.entry || []).forEach((e, i) => {
            if (e.resource) {
              total++;
              for (const err of validateFhir(e.resource, { medplum: false })) {
                errors.push({ ...err, expression: `entry[${i}] ${e.resource.resourceType}/${e.resource.id || ''} ${err.expression}` });
              }
            }
          });
        }
        const unique = [...new Map(errors.map((e) => [`${e.expression}|${e.message}`, e])).values()];
        for (const e of unique) {
          bad++;
          console.error(`${place}: ${id}: ${e.expression}: ${e.message} [${e.validator}]`);
        }
      }
    } catch (err) {
      console.error(err.message);
      return 2;
    }
  }
  if (!quiet) {
    console.log(`validate.js: ${total} resources checked, ${bad} errors`);
  }
  return bad > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
