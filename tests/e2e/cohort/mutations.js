// SPDX-License-Identifier: Apache-2.0
// Changes to a generated patient for "the data changed, run again" tests: each returns a FHIR
// transaction Bundle (PUT with stable ids) to POST to the server, in the generator's shapes, so
// cohort/oracle.js can also read the changed patient (apply() merges a change into its bundle).
'use strict';

const C = require('./catalog.js');

const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');

function transaction(resources) {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: resources.map((r) => ({ resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } })),
  };
}

/** A scheduled laxative (senna 2 tablets at night) started at `atMs`. */
function addLaxative(patientId, atMs) {
  const d = C.DRUGS.SENNA_8_6;
  return transaction([
    {
      resourceType: 'MedicationRequest',
      id: `${patientId}-mr-lax-added`,
      status: 'active',
      intent: 'order',
      medicationCodeableConcept: { coding: [{ system: C.RXNORM, code: d.rxcui, display: d.name }], text: d.name },
      subject: { reference: `Patient/${patientId}` },
      authoredOn: iso(atMs),
      dosageInstruction: [
        {
          sequence: 1,
          text: '2 tablets by mouth at bedtime',
          timing: { repeat: { when: ['HS'], frequency: 1, period: 1, periodUnit: 'd' } },
          doseAndRate: [
            {
              type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/dose-rate-type', code: 'ordered' }] },
              doseQuantity: { value: 2, unit: 'tablet', system: C.DRUG_FORM, code: 'TAB' },
            },
          ],
        },
      ],
      dispenseRequest: { validityPeriod: { start: iso(atMs) } },
    },
  ]);
}

/** A pain score (NRS 0-10) taken at `atMs`; `n` keeps several additions apart. */
function addPainScore(patientId, value, atMs, n = 1) {
  return transaction([
    {
      resourceType: 'Observation',
      id: `${patientId}-pain-added-${n}`,
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
      code: { coding: [{ system: C.LOINC, code: C.PAIN_LOINC[0], display: C.PAIN_LOINC[1] }], text: 'Pain score (NRS 0-10)' },
      subject: { reference: `Patient/${patientId}` },
      effectiveDateTime: iso(atMs),
      valueQuantity: { value, unit: '{score}', system: C.UCUM, code: '{score}' },
    },
  ]);
}

/** Stops an order (a MedicationRequest as generated or read back) at `atMs`. */
function stopOrder(order, atMs) {
  const r = structuredClone(order);
  delete r.meta;
  r.status = 'stopped';
  r.dispenseRequest = r.dispenseRequest || {};
  r.dispenseRequest.validityPeriod = { ...(r.dispenseRequest.validityPeriod || {}), end: iso(atMs) };
  return transaction([r]);
}

/** The patient's bundle with a change merged in (same ids replaced), for the oracle. */
function apply(bundle, change) {
  const out = structuredClone(bundle);
  for (const e of change.entry) {
    const i = out.entry.findIndex((x) => x.resource.resourceType === e.resource.resourceType && x.resource.id === e.resource.id);
    const entry = { resource: structuredClone(e.resource), request: e.request };
    if (i >= 0) out.entry[i] = entry;
    else out.entry.push(entry);
  }
  return out;
}

module.exports = { addLaxative, addPainScore, stopOrder, apply };
