// SPDX-License-Identifier: Apache-2.0
// A second, independent reading of issue 3's rules over the generated bundles (only the shapes the
// generator writes), used by the tests to check each archetype's hand-written expectations.
// Ambiguous readings (calendar days vs 24-h windows, evaluating a little later) must agree.
'use strict';

const C = require('./catalog.js');

const H = 3600 * 1000;
const BY_RXCUI = new Map(Object.values(C.DRUGS).map((d) => [d.rxcui, d]));
const FACTOR = { 7052: 1, 7804: 1.5, 3423: 5 }; // cdc2022, mg/day; fentanyl patch: 2.4 per mcg/h

function drugOf(mr, bundle) {
  let code = mr.medicationCodeableConcept;
  const ref = mr.medicationReference && mr.medicationReference.reference;
  if (ref && ref.startsWith('#')) code = mr.contained.find((c) => `#${c.id}` === ref).code;
  else if (ref) code = bundle.get(ref).code;
  for (const c of (code && code.coding) || []) {
    if (c.system === C.RXNORM && BY_RXCUI.has(c.code)) return BY_RXCUI.get(c.code);
  }
  return null;
}

function perDay(timing) {
  if (timing.code) return { BID: 2, TID: 3, QID: 4, QD: 1 }[timing.code.coding[0].code];
  const r = timing.repeat;
  const unitH = { h: 1, d: 24 }[r.periodUnit];
  return (r.frequency * 24) / (r.period * unitH);
}

/** mg (or patches) per dose from the 'ordered' doseAndRate; [low, high] for a range. */
function doseMg(dosage, drug) {
  const dr = (dosage.doseAndRate || []).find((d) => d.type.coding[0].code === 'ordered');
  if (!dr) return null;
  const toMg = (q) => {
    if (q.code === 'mg') return q.value;
    if (q.code === 'mL') return q.value * drug.mg;
    if (q.code === '{patch}') return q.value;
    if (q.code === 'TAB' || q.code === 'CAP') return q.value * drug.mg;
    return null;
  };
  if (dr.doseQuantity) {
    const v = toMg(dr.doseQuantity);
    return v === null ? null : [v, v];
  }
  return [toMg(dr.doseRange.low), toMg(dr.doseRange.high)];
}

function normalise(bundleJson) {
  const byRef = new Map(bundleJson.entry.map((e) => [`${e.resource.resourceType}/${e.resource.id}`, e.resource]));
  const scores = [];
  const orders = [];
  let neuropathic = false;
  let referral = false;
  // issue 17
  let cancer = false;
  let hospice = false;
  const admins = [];
  const sedation = [];
  const visits = [];
  const PALL = (cc) => (cc || []).some((t) => (t.coding || []).some((c) => c.code === C.PALLIATIVE[0]));
  for (const { resource: r } of bundleJson.entry) {
    if (r.resourceType === 'Observation' && r.code.coding[0].code === '9279-1') {
      sedation.push({ t: Date.parse(r.effectiveDateTime), v: r.valueQuantity.value });
    } else if (r.resourceType === 'Observation') {
      scores.push({ t: Date.parse(r.effectiveDateTime), v: r.valueQuantity.value });
    } else if (r.resourceType === 'Condition' && r.code.coding.some((c) => c.code === C.NEUROPATHIC[0])) {
      neuropathic = true;
    } else if (r.resourceType === 'Condition' && C.CANCERS.some((k) => r.code.coding.some((c) => c.code === k[0]))) {
      cancer = true;
    } else if (r.resourceType === 'MedicationAdministration') {
      admins.push({ t: Date.parse(r.effectiveDateTime), request: r.request.reference.replace('MedicationRequest/', '') });
    } else if (r.resourceType === 'Encounter' && !PALL(r.type)) {
      if ((r.type || []).some((t) => t.text === 'Hospice care')) hospice = true;
      visits.push({ start: Date.parse(r.period.start), end: r.period.end ? Date.parse(r.period.end) : Infinity, finished: r.status === 'finished' });
    } else if (r.resourceType === 'ServiceRequest' || r.resourceType === 'Encounter') {
      referral = true;
    } else if (r.resourceType === 'MedicationRequest') {
      const drug = drugOf(r, byRef);
      const d = r.dosageInstruction[0];
      const prn = !!(d.asNeededBoolean || d.asNeededCodeableConcept);
      const vp = r.dispenseRequest.validityPeriod;
      const o = {
        id: r.id,
        drug,
        cls: drug ? drug.cls : 'unknown',
        prn,
        start: Date.parse(vp.start),
        end: vp.end ? Date.parse(vp.end) : Infinity,
      };
      if (drug && drug.cls.startsWith('opioid') && d.timing && d.doseAndRate) {
        const mg = doseMg(d, drug);
        if (mg) {
          if (drug.cls === 'opioid-patch') {
            // patches x mcg/h x 2.4, whatever the change interval
            o.mmePerDay = mg[1] * drug.mcgh * 2.4;
          } else {
            o.mmePerDose = mg.map((x) => x * FACTOR[drug.ingredient[0]]);
            o.mmePerDay = o.mmePerDose[1] * perDay(d.timing);
          }
        }
      }
      orders.push(o);
    }
  }
  scores.sort((a, b) => a.t - b.t);
  return { scores, orders, neuropathic, referral, cancer, hospice, admins, sedation, visits };
}

const activeAt = (o, t) => o.start <= t && t < o.end;
const isOpioid = (o) => o.cls.startsWith('opioid');
const isBaseline = (o) => isOpioid(o) && !o.prn;
const isRescue = (o) => isOpioid(o) && o.prn && o.cls === 'opioid-ir';

/** Evaluates at `now` (ms); `days` is 'calendar' (UTC dates) or 'windows' (24-h before now). */
function evaluate(p, now, days) {
  const out = new Map();
  const eol = p.hospice;
  // issue 17: out of scope (no cancer, no palliative context): no findings; end of life: the
  // benzodiazepine rule is silent, bowel and reassessment drop to low
  const fire = (rule, sev) => {
    if (eol && rule === 'opioid-benzodiazepine-concurrent') return;
    const low = eol && (rule === 'bowel-regimen-missing' || rule.startsWith('reassessment-overdue'));
    out.set(rule, low ? 'low' : sev);
  };
  if (!p.cancer && !p.referral && !p.hospice) return out;
  const tdd = (t) => p.orders.filter((o) => isBaseline(o) && activeAt(o, t)).reduce((s, o) => s + o.mmePerDay, 0);
  const lastScoreBefore = (t) => [...p.scores].reverse().find((s) => s.t < t);
  // TDD change points.
  const times = [...new Set(p.orders.filter(isBaseline).flatMap((o) => [o.start, o.end]).filter((t) => t <= now && Number.isFinite(t)))].sort((a, b) => a - b);
  const steps = [];
  for (const t of times) {
    const before = tdd(t - 1);
    const after = tdd(t);
    if (before !== after) steps.push({ t, before, after });
  }
  const increases = steps.filter((s) => s.before > 0 && s.after > s.before);
  const patchOrMeth = (t) => p.orders.some((o) => isBaseline(o) && o.start === t && o.cls === 'opioid-patch');
  if (increases.length) {
    const s = increases.at(-1);
    const pct = ((s.after - s.before) / s.before) * 100;
    const pain = lastScoreBefore(s.t);
    if (pct > 100 || (pct > 50 && pain && pain.v < 7)) fire('titration-step-too-large', 'medium');
  }
  for (const s of increases) {
    const prev = steps.filter((x) => x.t < s.t).at(-1);
    const min = patchOrMeth(s.t) ? 72 : 24;
    if (prev && s.t - prev.t < min * H) fire('titration-too-soon', 'medium');
    const pct = ((s.after - s.before) / s.before) * 100;
    const pain = lastScoreBefore(s.t);
    if (pct < 25 && pain && pain.v >= 4) fire('titration-step-too-small', 'low');
  }
  const recentHigh = p.scores.filter((s) => s.t >= now - 72 * H && s.t <= now && s.v >= 7);
  const latest = p.scores.filter((s) => s.t <= now).at(-1);
  if (recentHigh.length >= 2 && recentHigh.at(-1).t - recentHigh[0].t >= 24 * H && latest.v >= 7 && !increases.some((s) => s.t >= now - 48 * H)) {
    fire('pain-uncontrolled-no-titration', 'high');
  }
  const active = p.orders.filter((o) => activeAt(o, now));
  const base = tdd(now);
  if (active.some(isBaseline) && !active.some(isRescue)) fire('rescue-dose-missing', 'medium');
  for (const r of active.filter(isRescue)) {
    if (!r.mmePerDose || base <= 0) continue;
    const lo = (r.mmePerDose[0] / base) * 100;
    const hi = (r.mmePerDose[1] / base) * 100;
    if (hi > 20) fire('rescue-dose-out-of-range', 'medium');
    else if (lo < 10) fire('rescue-dose-out-of-range', 'low');
  }
  // Opioid exposure covering the last 24 h without a gap.
  const opioidOrders = p.orders.filter(isOpioid);
  let covered = true;
  for (let t = now - 24 * H; t <= now; t += H / 4) {
    if (!opioidOrders.some((o) => activeAt(o, t))) covered = false;
  }
  if (active.some(isOpioid) && covered) {
    const lax = active.filter((o) => o.cls.startsWith('laxative'));
    if (lax.length === 0) fire('bowel-regimen-missing', 'medium');
    else if (lax.every((o) => o.prn)) fire('bowel-regimen-missing', 'low');
  }
  if (p.neuropathic && !active.some((o) => o.cls.startsWith('adjuvant'))) fire('neuropathic-pain-no-adjuvant', 'low');
  if (!p.neuropathic && p.scores.some((s) => s.t <= now && s.v >= 4)) fire('pain-type-undocumented', 'info');
  const events = [...steps.map((s) => s.t), ...p.orders.filter((o) => isRescue(o) && o.start <= now).map((o) => o.start)];
  if (events.length) {
    const e = Math.max(...events);
    // issue 17: older than 7 days is history
    if (!p.scores.some((s) => s.t > e && s.t <= now) && now - e > 24 * H && now - e <= 7 * 24 * H) fire('reassessment-overdue-after-dose-change', 'medium');
  }
  if (latest && latest.v >= 7 && now - latest.t > 24 * H && now - latest.t <= 7 * 24 * H) fire('reassessment-overdue-after-high-score', 'medium');
  // issue 17: rescue doses given (3 + 3 in two 24-h periods, or 4 in 24 h), no increase since
  const byId = new Map(p.orders.map((o) => [o.id, o]));
  const given = p.admins.filter((a) => byId.has(a.request) && isOpioid(byId.get(a.request)) && byId.get(a.request).prn);
  const n1 = given.filter((a) => a.t > now - 24 * H && a.t <= now).length;
  const n2 = given.filter((a) => a.t > now - 48 * H && a.t <= now - 24 * H).length;
  if ((n1 >= 3 && n2 >= 3) || n1 >= 4) {
    const from = n1 >= 3 && n2 >= 3 ? now - 48 * H : now - 24 * H;
    if (!increases.some((s) => s.t > from)) fire('rescue-use-frequent', 'medium');
  }
  // issue 17: respiratory rate < 10/min within 72 h after the last opioid change or start
  const changes = [...steps.filter((s) => s.after > 0).map((s) => s.t), ...p.orders.filter((o) => isOpioid(o) && o.start <= now).map((o) => o.start)];
  if (changes.length) {
    const c = Math.max(...changes);
    if (now - c <= 72 * H && p.sedation.some((x) => x.t > c && x.t <= now && x.v < 10)) fire('opioid-sedation-risk', 'high');
  }
  // issue 17: a finished visit (last 7 days) on opioids without a pain score within 1 h of it
  for (const v of p.visits) {
    if (!v.finished || v.end > now || now - v.end > 7 * 24 * H) continue;
    if (!p.orders.some((o) => isOpioid(o) && activeAt(o, v.start))) continue;
    if (!p.scores.some((s) => s.t >= v.start - H && s.t <= v.end + H)) fire('pain-not-assessed-at-visit', 'low');
  }
  const dayOf = (t) => (days === 'calendar' ? new Date(t).toISOString().slice(0, 10) : Math.floor((now - t) / (24 * H)));
  const highDays = new Set(p.scores.filter((s) => s.t <= now && s.t >= now - 7 * 24 * H && s.v >= 7).map((s) => dayOf(s.t)));
  if (highDays.size >= 3 && !p.referral) fire('palliative-referral-suggested', 'low');
  for (const old of p.orders.filter((o) => isBaseline(o) && Number.isFinite(o.end) && o.end <= now)) {
    const next = p.orders.find((o) => isBaseline(o) && o.drug.ingredient[0] !== old.drug.ingredient[0] && Math.abs(o.start - old.end) <= 24 * H);
    if (next && tdd(next.start) > 0.75 * tdd(old.end - 1)) fire('opioid-rotation-without-reduction', 'medium');
  }
  if (active.some(isOpioid) && active.some((o) => o.cls === 'benzodiazepine')) fire('opioid-benzodiazepine-concurrent', 'medium');
  return out;
}

/**
 * Findings for a bundle at the anchor, or throws when readings disagree: calendar days vs 24-h
 * windows, and evaluating at the anchor vs up to 2 h later.
 */
function oracle(bundleJson, anchorIso) {
  const p = normalise(bundleJson);
  const anchor = Date.parse(anchorIso);
  const results = [];
  for (const later of [0, 1, 2]) {
    for (const days of ['calendar', 'windows']) {
      const r = evaluate(p, anchor + later * H, days);
      results.push([`+${later}h/${days}`, JSON.stringify([...r].sort())]);
    }
  }
  const distinct = new Set(results.map((r) => r[1]));
  if (distinct.size > 1) {
    throw new Error(`readings disagree: ${results.map((r) => r.join(' ')).join('; ')}`);
  }
  return new Map(JSON.parse(results[0][1]));
}

module.exports = { oracle, normalise, evaluate };
