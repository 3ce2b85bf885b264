// SPDX-License-Identifier: Apache-2.0
// Patient archetypes of the synthetic cohort: each is a timeline (hours before the anchor) and the
// findings issue 3's rules must produce for it at the anchor, with the reason in clinical words.
'use strict';

/** Rule ids and default severities of issue 3 (the order of its table). */
const RULES = {
  'titration-step-too-large': 'medium',
  'titration-too-soon': 'medium',
  'titration-step-too-small': 'low',
  'pain-uncontrolled-no-titration': 'high',
  'rescue-dose-missing': 'medium',
  'rescue-dose-out-of-range': 'medium|low',
  'bowel-regimen-missing': 'medium|low',
  'neuropathic-pain-no-adjuvant': 'low',
  'pain-type-undocumented': 'info',
  'reassessment-overdue-after-dose-change': 'medium',
  'reassessment-overdue-after-high-score': 'medium',
  'palliative-referral-suggested': 'low',
  'opioid-rotation-without-reduction': 'medium',
  'opioid-benzodiazepine-concurrent': 'medium',
  // issue 17
  'opioid-sedation-risk': 'high',
  'rescue-use-frequent': 'medium',
  'pain-not-assessed-at-visit': 'low',
};

const D = 24; // hours per day: times below are hours relative to the anchor (negative = past)

// Sig shorthands.
const q = (h) => ({ period: h }); // every h hours
const PRN = true;

/** Baseline + rescue regimens used as the well-managed background (baseline MME/day, rescue %). */
const REGIMENS = {
  // 30 mg q12h = 60 MME; rescue 10 mg = 16.7 %
  MORPH60: { base: ['MORPHINE_ER_30', { mg: 30 }, q(12)], rescue: ['MORPHINE_IR_10', { mg: 10 }, q(4)] },
  // 20 mg q12h x 1.5 = 60 MME; rescue 5 mg x 1.5 = 7.5 MME = 12.5 %
  OXY60: { base: ['OXYCODONE_ER_20', { mg: 20 }, q(12)], rescue: ['OXYCODONE_IR_5', { mg: 5 }, q(4)] },
  // 25 mcg/h x 2.4 = 60 MME; rescue morphine 10 mg = 16.7 %
  FENT60: { base: ['FENTANYL_PATCH_25', { units: 1 }, q(72)], rescue: ['MORPHINE_IR_10', { mg: 10 }, q(4)] },
  // 2 mg q4h x 5 = 60 MME (cdc2022); rescue 2 mg x 5 = 10 MME = 16.7 %
  HYDRO60: { base: ['HYDROMORPHONE_IR_2', { mg: 2 }, q(4)], rescue: ['HYDROMORPHONE_IR_2', { mg: 2 }, q(2)] },
  // 60 mg q12h = 120 MME; rescue 15 mg = 12.5 %
  MORPH120: { base: ['MORPHINE_ER_60', { mg: 60 }, q(12)], rescue: ['MORPHINE_IR_15', { mg: 15 }, q(4)] },
};

/**
 * The background every archetype starts from: a cancer patient on a stable, well-managed regimen
 * for 10 days (baseline, rescue in range, scheduled laxative), neuropathic pain documented and
 * treated with duloxetine, pain scores 2-6 up to 6 h ago. It fires no rule.
 */
function background(opt = {}) {
  const o = {
    regimen: 'MORPH60',
    painType: true,
    adjuvant: true,
    laxative: 'senna',
    rescue: true,
    ...opt,
  };
  // issue 17: admins [hour, order key], respRate [hour, /min], encounters [start, end|null, class,
  // hospice?], cancer on the problem list (false: none, out of scope)
  const plan = { scores: [], orders: [], painType: o.painType, referral: null, admins: [], respRate: [], encounters: [], cancer: true };
  if (o.regimen) {
    const r = REGIMENS[o.regimen];
    plan.orders.push({ key: 'base', drug: r.base[0], dose: r.base[1], timing: r.base[2], start: -10 * D });
    if (o.rescue) {
      plan.orders.push({ key: 'resc', drug: r.rescue[0], dose: r.rescue[1], timing: r.rescue[2], prn: PRN, start: -10 * D });
    }
  }
  if (o.laxative === 'senna') {
    plan.orders.push({ key: 'lax', drug: 'SENNA_8_6', dose: { units: 2 }, timing: { when: ['HS'] }, start: -10 * D });
  } else if (o.laxative === 'peg') {
    plan.orders.push({ key: 'lax', drug: 'PEG_3350', dose: { g: 17 }, timing: q(24), start: -10 * D });
  }
  if (o.adjuvant) {
    plan.orders.push({ key: 'adj', drug: 'DULOXETINE_30', dose: { mg: 30 }, timing: q(24), start: -9 * D });
  }
  if (o.scores !== false) {
    plan.scores = [
      [-8 * D, 4, 6],
      [-6 * D, 4, 6],
      [-4 * D, 3, 5.5],
      [-2 * D, 3, 5],
      [-20, 2, 4],
      [-6, 2, 4],
    ];
  }
  return plan;
}

/**
 * Replaces the current order `key` at hour `at` by a new one linked by priorPrescription: the old
 * one is stopped at that very instant, so the regimen never overlaps or gaps. Returns the new key.
 */
function change(plan, key, at, next) {
  const old = plan.orders.find((o) => o.key === key && o.end === undefined);
  if (!old) throw new Error(`no current order ${key}`);
  old.end = at;
  const newKey = `${key.replace(/-\d+$/, '')}-${plan.orders.length}`;
  plan.orders.push({ ...old, ...next, key: newKey, start: at, end: undefined, prior: old.key });
  return newKey;
}

function scoresBefore(plan, hour) {
  plan.scores = plan.scores.filter((s) => s[0] < hour);
}

/**
 * Each archetype: id, expected [[rule, severity]], near_miss (rules it is a designed negative
 * for), why, build() -> plan. Times with no jitter-sensitive boundary keep >= 4 h of margin to
 * every threshold, so evaluating within 2 h of the anchor gives the same findings.
 */
const ARCHETYPES = [
  {
    id: 'clean-morphine',
    expected: [],
    near_miss: ['rescue-dose-missing', 'bowel-regimen-missing', 'neuropathic-pain-no-adjuvant', 'pain-type-undocumented'],
    why: 'Morphine ER 30 mg q12h (60 MME/day) for 10 days, rescue morphine 10 mg PRN (16.7%), senna at night, neuropathic pain on duloxetine, scores 2-6: well managed.',
    build: () => background(),
  },
  {
    id: 'clean-oxycodone-dose-range',
    expected: [],
    near_miss: ['rescue-dose-out-of-range'],
    why: 'Oxycodone ER 40 mg q12h (120 MME/day); rescue oxycodone 5 mg tablets, 2-3 tablets PRN q4h (15-22.5 MME per dose = 12.5-18.75%, both ends in 10-20%).',
    build: () => {
      const p = background({ regimen: null });
      p.orders.push({ key: 'base', drug: 'OXYCODONE_ER_40', dose: { mg: 40 }, timing: q(12), start: -10 * D });
      p.orders.push({ key: 'resc', drug: 'OXYCODONE_IR_5', dose: { unitsRange: [2, 3] }, timing: q(4), prn: PRN, start: -10 * D });
      return p;
    },
  },
  {
    id: 'clean-fentanyl-patch',
    expected: [],
    near_miss: ['rescue-dose-out-of-range', 'bowel-regimen-missing'],
    why: 'Fentanyl 25 mcg/h patch every 72 h (60 MME/day), rescue morphine 10 mg PRN (16.7%), polyethylene glycol daily.',
    build: () => background({ regimen: 'FENT60', laxative: 'peg' }),
  },
  {
    id: 'clean-hydromorphone',
    expected: [],
    near_miss: ['rescue-dose-out-of-range'],
    why: 'Hydromorphone 2 mg q4h scheduled (60 MME/day at factor 5), hydromorphone 2 mg q2h PRN (10 MME = 16.7%).',
    build: () => background({ regimen: 'HYDRO60' }),
  },
  {
    id: 'clean-oral-solution-rescue',
    expected: [],
    near_miss: ['rescue-dose-out-of-range', 'rescue-dose-missing'],
    why: 'Morphine ER 30 mg q12h (60 MME/day); rescue morphine 2 mg/mL oral solution 5 mL PRN q4h = 10 mg (16.7%).',
    build: () => {
      const p = background();
      p.orders = p.orders.filter((o) => o.key !== 'resc');
      p.orders.push({ key: 'resc', drug: 'MORPHINE_SOL_2', dose: { ml: 5 }, timing: q(4), prn: PRN, start: -10 * D });
      return p;
    },
  },
  {
    id: 'clean-low-pain-untyped',
    expected: [],
    near_miss: ['pain-type-undocumented'],
    why: 'Pain scores all below 4 and no pain type documented: nothing to document yet.',
    build: () => {
      const p = background({ painType: false, adjuvant: false });
      p.scores = [[-8 * D, 1, 3.9], [-5 * D, 1, 3.9], [-2 * D, 0, 3], [-6, 0, 3]];
      return p;
    },
  },
  {
    id: 'clean-no-opioid',
    expected: [],
    near_miss: ['rescue-dose-missing', 'bowel-regimen-missing', 'pain-uncontrolled-no-titration'],
    why: 'No opioid and low pain (scores 1-3.9): no opioid rule applies.',
    build: () => {
      const p = background({ regimen: null, laxative: null });
      p.scores = [[-6 * D, 1, 3.9], [-3 * D, 1, 3.9], [-10, 1, 3.9]];
      return p;
    },
  },
  {
    id: 'titration-too-large',
    expected: [['titration-step-too-large', 'medium']],
    near_miss: ['titration-too-soon'],
    why: 'Morphine ER 30 -> 60 mg q12h 50 h ago (60 -> 120 MME/day, +100%) while the last pain score before it was 4-6 (< 7): more than +50%.',
    build: () => {
      const p = background();
      scoresBefore(p, -50);
      p.scores.push([-56, 4, 6.5], [-40, 3, 5], [-20, 2, 4], [-5, 2, 4]);
      change(p, 'base', -50, { drug: 'MORPHINE_ER_60', dose: { mg: 60 } });
      change(p, 'resc', -50, { drug: 'MORPHINE_IR_15', dose: { mg: 15 } });
      return p;
    },
  },
  {
    id: 'titration-too-large-high-pain',
    expected: [['titration-step-too-large', 'medium']],
    near_miss: ['pain-uncontrolled-no-titration', 'reassessment-overdue-after-high-score'],
    why: 'Oxycodone ER 10 -> 30 mg q12h 50 h ago (30 -> 90 MME/day, +200%) after a pain score of 8: more than +100% whatever the pain. Rescue oxycodone 10 mg = 15 MME (16.7% of 90).',
    build: () => {
      const p = background({ regimen: null });
      p.orders.push({ key: 'base', drug: 'OXYCODONE_ER_10', dose: { mg: 10 }, timing: q(12), start: -10 * D });
      p.orders.push({ key: 'resc', drug: 'OXYCODONE_IR_10', dose: { mg: 10 }, timing: q(4), prn: PRN, start: -10 * D });
      scoresBefore(p, -54);
      p.scores.push([-54, 8, 9], [-40, 4, 6], [-20, 3, 5], [-4, 2, 4]);
      change(p, 'base', -50, { drug: 'OXYCODONE_ER_30', dose: { mg: 30 } });
      return p;
    },
  },
  {
    id: 'titration-exactly-50pct',
    expected: [],
    near_miss: ['titration-step-too-large', 'titration-step-too-small'],
    why: 'Morphine ER 30 mg q12h -> q8h 50 h ago (60 -> 90 MME/day, exactly +50%) with pain 4-6 before: exactly 50% does not fire; rescue 10 mg = 11.1%.',
    build: () => {
      const p = background();
      scoresBefore(p, -50);
      p.scores.push([-56, 4.5, 6.5], [-40, 3, 5], [-20, 2, 4], [-5, 2, 4]);
      change(p, 'base', -50, { timing: q(8) });
      return p;
    },
  },
  {
    id: 'titration-too-soon',
    expected: [['titration-too-soon', 'medium']],
    near_miss: ['titration-step-too-large', 'titration-step-too-small'],
    why: 'Morphine ER 60 -> 90 MME/day 60 h ago (+50%), then -> 120 MME/day 46 h ago (+33%): the second increase came 14 h after the first (< 24 h). Pain 5-6.9 before each.',
    build: () => {
      const p = background();
      scoresBefore(p, -64);
      p.scores.push([-64, 5, 6.9], [-50, 5, 6.9], [-36, 3, 5], [-20, 2, 4], [-5, 2, 4]);
      const k = change(p, 'base', -60, { timing: q(8) });
      change(p, k, -46, { drug: 'MORPHINE_ER_60', dose: { mg: 60 }, timing: q(12) });
      change(p, 'resc', -46, { drug: 'MORPHINE_IR_15', dose: { mg: 15 } });
      return p;
    },
  },
  {
    id: 'titration-too-soon-fentanyl',
    expected: [['titration-too-soon', 'medium']],
    near_miss: ['titration-step-too-large', 'pain-uncontrolled-no-titration'],
    why: 'Fentanyl patch 25 -> 37.5 mcg/h 100 h ago (60 -> 90 MME/day, pain 7-8 before) then -> 50 mcg/h 50 h ago (120 MME/day, +33%): 50 h after the previous change, under the 72 h minimum for transdermal fentanyl.',
    build: () => {
      const p = background({ regimen: 'FENT60' });
      scoresBefore(p, -104);
      p.scores.push([-104, 7.1, 8], [-80, 4, 6.5], [-56, 4, 6.5], [-40, 3, 5], [-18, 2, 4], [-4, 2, 4]);
      const k = change(p, 'base', -100, { drug: 'FENTANYL_PATCH_37' });
      change(p, k, -50, { drug: 'FENTANYL_PATCH_50' });
      change(p, 'resc', -50, { drug: 'MORPHINE_IR_15', dose: { mg: 15 } });
      return p;
    },
  },
  {
    id: 'titration-exactly-24h-apart',
    expected: [],
    near_miss: ['titration-too-soon'],
    why: 'Morphine 60 -> 90 MME/day 74 h ago, then -> 120 MME/day exactly 24 h later (50 h ago): exactly 24 h is not too soon.',
    build: () => {
      const p = background();
      scoresBefore(p, -78);
      p.scores.push([-78, 4.5, 6.5], [-56, 4.5, 6.5], [-36, 3, 5], [-20, 2, 4], [-5, 2, 4]);
      const k = change(p, 'base', -74, { timing: q(8) });
      change(p, k, -50, { drug: 'MORPHINE_ER_60', dose: { mg: 60 }, timing: q(12) });
      change(p, 'resc', -50, { drug: 'MORPHINE_IR_15', dose: { mg: 15 } });
      return p;
    },
  },
  {
    id: 'titration-too-small',
    expected: [['titration-step-too-small', 'low']],
    near_miss: ['titration-step-too-large'],
    why: 'Morphine ER 60 mg q8h (180 MME/day) -> 100 mg q12h (200 MME/day) 50 h ago: +11% (< 25%) while the last pain score before it was 5-6.9 (>= 4). Rescue morphine 30 mg = 15% of 200.',
    build: () => {
      const p = background({ regimen: null });
      p.orders.push({ key: 'base', drug: 'MORPHINE_ER_60', dose: { mg: 60 }, timing: q(8), start: -10 * D });
      p.orders.push({ key: 'resc', drug: 'MORPHINE_IR_30', dose: { mg: 30 }, timing: q(4), prn: PRN, start: -10 * D });
      scoresBefore(p, -54);
      p.scores.push([-54, 5, 6.9], [-30, 4, 6], [-6, 3, 5]);
      change(p, 'base', -50, { drug: 'MORPHINE_ER_100', dose: { mg: 100 }, timing: q(12) });
      return p;
    },
  },
  {
    id: 'titration-small-low-pain',
    expected: [],
    near_miss: ['titration-step-too-small'],
    why: 'The same +11% step (180 -> 200 MME/day) but the last pain score before it was below 4: a small step is right.',
    build: () => {
      const p = background({ regimen: null });
      p.orders.push({ key: 'base', drug: 'MORPHINE_ER_60', dose: { mg: 60 }, timing: q(8), start: -10 * D });
      p.orders.push({ key: 'resc', drug: 'MORPHINE_IR_30', dose: { mg: 30 }, timing: q(4), prn: PRN, start: -10 * D });
      scoresBefore(p, -54);
      p.scores.push([-54, 1, 3.5], [-30, 1, 3.5], [-6, 1, 3.5]);
      change(p, 'base', -50, { drug: 'MORPHINE_ER_100', dose: { mg: 100 }, timing: q(12) });
      return p;
    },
  },
  {
    id: 'pain-uncontrolled',
    expected: [['pain-uncontrolled-no-titration', 'high']],
    near_miss: ['palliative-referral-suggested', 'reassessment-overdue-after-high-score'],
    why: 'Pain 7-9 at 60 h, 38 h and 6 h ago (span 54 h, latest >= 7) on morphine 60 MME/day unchanged for 10 days. A palliative referral exists, so no referral finding; the latest high score is only 6 h old.',
    build: () => {
      const p = background();
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-60, 7.2, 9], [-38, 7.2, 9], [-6, 7.2, 9]];
      p.referral = { kind: 'ServiceRequest', at: -7 * D };
      return p;
    },
  },
  {
    id: 'pain-uncontrolled-no-opioid',
    expected: [['pain-uncontrolled-no-titration', 'high']],
    near_miss: ['rescue-dose-missing', 'bowel-regimen-missing'],
    why: 'No opioid at all, pain 7-9 at 34 h and 4 h ago (span 30 h): suggest starting a baseline opioid.',
    build: () => {
      const p = background({ regimen: null, laxative: null });
      p.scores = [[-5 * D, 4, 6], [-34, 7.2, 9], [-4, 7.2, 9]];
      return p;
    },
  },
  {
    id: 'pain-high-but-titrated',
    expected: [],
    near_miss: ['pain-uncontrolled-no-titration', 'titration-step-too-large'],
    why: 'Pain 7-9 at 60 h, 30 h and 3 h ago, but morphine was raised 60 -> 90 MME/day 26 h ago (< 48 h; +50% after a score >= 7). Palliative care encounter on record.',
    build: () => {
      const p = background();
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-60, 7.2, 9], [-30, 7.2, 9], [-3, 7.2, 9]];
      change(p, 'base', -26, { timing: q(8) });
      p.referral = { kind: 'Encounter', at: -5 * D };
      return p;
    },
  },
  {
    id: 'pain-high-short-span',
    expected: [],
    near_miss: ['pain-uncontrolled-no-titration'],
    why: 'Two pain scores >= 7 only 19 h apart (22 h and 3 h ago): they do not span 24 h.',
    build: () => {
      const p = background();
      p.scores = [[-6 * D, 3, 5], [-3 * D, 3, 5], [-22, 7.2, 9], [-3, 7.2, 9]];
      return p;
    },
  },
  {
    id: 'rescue-missing',
    expected: [['rescue-dose-missing', 'medium']],
    near_miss: [],
    why: 'Morphine ER 30 mg q12h active for 10 days and no PRN rescue opioid ordered.',
    build: () => background({ rescue: false }),
  },
  {
    id: 'rescue-too-low',
    expected: [['rescue-dose-out-of-range', 'low']],
    near_miss: ['rescue-dose-missing'],
    why: 'Morphine ER 60 mg q12h (120 MME/day) with morphine oral solution 5 mg PRN: 4.2% of baseline, below 10% (right range 12-24 mg).',
    build: () => {
      const p = background({ regimen: 'MORPH120', rescue: false });
      p.orders.push({ key: 'resc', drug: 'MORPHINE_SOL_2', dose: { mg: 5 }, timing: q(4), prn: PRN, start: -10 * D });
      return p;
    },
  },
  {
    id: 'rescue-too-high',
    expected: [['rescue-dose-out-of-range', 'medium']],
    near_miss: ['rescue-dose-missing'],
    why: 'Morphine ER 60 mg q12h (120 MME/day) with morphine 30 mg PRN: 25% of baseline, above 20% (right range 12-24 mg).',
    build: () => {
      const p = background({ regimen: 'MORPH120', rescue: false });
      p.orders.push({ key: 'resc', drug: 'MORPHINE_IR_30', dose: { mg: 30 }, timing: q(4), prn: PRN, start: -10 * D });
      return p;
    },
  },
  {
    id: 'rescue-too-high-cross-drug',
    expected: [['rescue-dose-out-of-range', 'medium']],
    near_miss: [],
    why: 'Fentanyl 25 mcg/h patch (60 MME/day) with oxycodone 10 mg PRN = 15 MME per dose: 25% of baseline (right range 4-8 mg oxycodone).',
    build: () => {
      const p = background({ regimen: 'FENT60', rescue: false });
      p.orders.push({ key: 'resc', drug: 'OXYCODONE_IR_10', dose: { mg: 10 }, timing: q(4), prn: PRN, start: -10 * D });
      return p;
    },
  },
  {
    id: 'bowel-regimen-missing',
    expected: [['bowel-regimen-missing', 'medium']],
    near_miss: [],
    why: 'Oxycodone ER 20 mg q12h for 10 days and no laxative ordered.',
    build: () => background({ regimen: 'OXY60', laxative: null }),
  },
  {
    id: 'bowel-prn-laxative-only',
    expected: [['bowel-regimen-missing', 'low']],
    near_miss: [],
    why: 'Morphine ER for 10 days; the only laxative is bisacodyl 10 mg PRN (not scheduled).',
    build: () => {
      const p = background({ laxative: null });
      p.orders.push({ key: 'lax', drug: 'BISACODYL_5', dose: { units: 2 }, timing: q(24), prn: PRN, start: -10 * D });
      return p;
    },
  },
  {
    id: 'bowel-opioid-started-12h-ago',
    expected: [],
    near_miss: ['bowel-regimen-missing', 'reassessment-overdue-after-dose-change'],
    why: 'Morphine ER and rescue started 12 h ago (< 24 h), no laxative yet; pain reassessed 2 h ago.',
    build: () => {
      const p = background({ laxative: null });
      for (const o of p.orders) if (o.key === 'base' || o.key === 'resc') o.start = -12;
      p.scores = [[-5 * D, 4, 6], [-2 * D, 4, 6], [-16, 5, 6.9], [-2, 3, 5]];
      return p;
    },
  },
  {
    id: 'neuropathic-no-adjuvant',
    expected: [['neuropathic-pain-no-adjuvant', 'low']],
    near_miss: ['pain-type-undocumented'],
    why: 'Neuropathic pain (SNOMED 247398009) on the problem list and no adjuvant analgesic ordered.',
    build: () => background({ adjuvant: false }),
  },
  {
    id: 'neuropathic-adjuvant-epic',
    expected: [],
    near_miss: ['neuropathic-pain-no-adjuvant'],
    why: 'Neuropathic pain with duloxetine ordered Epic-style (SCD + ingredient + local codings, text-only sig): the adjuvant is recognised.',
    build: () => {
      const p = background();
      const adj = p.orders.find((o) => o.key === 'adj');
      adj.style = 'epic';
      adj.textOnly = true;
      return p;
    },
  },
  {
    id: 'pain-type-undocumented',
    expected: [['pain-type-undocumented', 'info']],
    near_miss: ['neuropathic-pain-no-adjuvant'],
    why: 'Pain scores up to 6 and no pain type (neuropathic, somatic, visceral, mixed) ever documented.',
    build: () => background({ painType: false, adjuvant: false }),
  },
  {
    id: 'reassess-after-dose-change',
    expected: [['reassessment-overdue-after-dose-change', 'medium']],
    near_miss: ['titration-step-too-small', 'titration-step-too-large'],
    why: 'Morphine ER 30 mg q8h -> 60 mg q12h 40 h ago (90 -> 120 MME/day, +33%) and no pain score since (last one 44 h ago).',
    build: () => {
      const p = background();
      p.orders.find((o) => o.key === 'base').timing = q(8);
      p.orders.find((o) => o.key === 'resc').drug = 'MORPHINE_IR_15';
      p.orders.find((o) => o.key === 'resc').dose = { mg: 15 };
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-3 * D, 4, 6], [-44, 4.5, 6.9]];
      change(p, 'base', -40, { drug: 'MORPHINE_ER_60', dose: { mg: 60 }, timing: q(12) });
      return p;
    },
  },
  {
    id: 'reassess-after-new-rescue',
    expected: [['reassessment-overdue-after-dose-change', 'medium']],
    near_miss: ['rescue-dose-missing'],
    why: 'A rescue order (morphine 10 mg PRN) was added 30 h ago and no pain score since (last one 36 h ago).',
    build: () => {
      const p = background();
      p.orders.find((o) => o.key === 'resc').start = -30;
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-3 * D, 4, 6], [-36, 4, 6]];
      return p;
    },
  },
  {
    id: 'reassess-change-not-due',
    expected: [],
    near_miss: ['reassessment-overdue-after-dose-change'],
    why: 'Morphine 90 -> 120 MME/day 10 h ago and no pain score since: not yet 24 h.',
    build: () => {
      const p = background();
      p.orders.find((o) => o.key === 'base').timing = q(8);
      p.orders.find((o) => o.key === 'resc').drug = 'MORPHINE_IR_15';
      p.orders.find((o) => o.key === 'resc').dose = { mg: 15 };
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-2 * D, 4, 6], [-14, 4.5, 6.9]];
      change(p, 'base', -10, { drug: 'MORPHINE_ER_60', dose: { mg: 60 }, timing: q(12) });
      return p;
    },
  },
  {
    id: 'reassess-after-high-score',
    expected: [['reassessment-overdue-after-high-score', 'medium']],
    near_miss: ['pain-uncontrolled-no-titration'],
    why: 'Pain score 7.5-9 30 h ago, the only high one, and no pain score since.',
    build: () => {
      const p = background();
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-3 * D, 4, 6], [-30, 7.5, 9]];
      return p;
    },
  },
  {
    id: 'reassess-high-score-not-due',
    expected: [],
    near_miss: ['reassessment-overdue-after-high-score'],
    why: 'Pain score 7.5-9 8 h ago and no pain score since: not yet 24 h.',
    build: () => {
      const p = background();
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-3 * D, 4, 6], [-8, 7.5, 9]];
      return p;
    },
  },
  {
    id: 'palliative-suggested',
    expected: [['palliative-referral-suggested', 'low']],
    near_miss: ['pain-uncontrolled-no-titration'],
    why: 'Pain >= 7 on 3 distinct days (6, 4 and 2 days ago), lower since, and no palliative referral or encounter.',
    build: () => {
      const p = background();
      p.scores = [[-6 * D, 7.2, 9], [-4 * D, 7.2, 9], [-2 * D, 7.2, 9], [-30, 4, 6], [-4, 3, 5]];
      return p;
    },
  },
  {
    id: 'palliative-already-referred',
    expected: [],
    near_miss: ['palliative-referral-suggested'],
    why: 'Pain >= 7 on 3 distinct days but a palliative care referral (ServiceRequest, SNOMED 103735009) is active.',
    build: () => {
      const p = background();
      p.scores = [[-6 * D, 7.2, 9], [-4 * D, 7.2, 9], [-2 * D, 7.2, 9], [-30, 4, 6], [-4, 3, 5]];
      p.referral = { kind: 'ServiceRequest', at: -3 * D };
      return p;
    },
  },
  {
    id: 'palliative-two-days',
    expected: [],
    near_miss: ['palliative-referral-suggested'],
    why: 'Pain >= 7 on only 2 distinct days (5 and 3 days ago).',
    build: () => {
      const p = background();
      p.scores = [[-6 * D, 4, 6], [-5 * D, 7.2, 9], [-3 * D, 7.2, 9], [-30, 4, 6], [-4, 3, 5]];
      return p;
    },
  },
  {
    id: 'rotation-without-reduction',
    expected: [['opioid-rotation-without-reduction', 'medium']],
    near_miss: ['titration-step-too-large'],
    why: 'Oxycodone ER 40 mg q12h (120 MME/day) stopped 70 h ago and morphine ER 60 mg q12h (120 MME/day) started at the same time: 100% of the old dose (> 75%), no reduction for incomplete cross-tolerance.',
    build: () => {
      const p = background({ regimen: null });
      p.orders.push({ key: 'base', drug: 'OXYCODONE_ER_40', dose: { mg: 40 }, timing: q(12), start: -10 * D });
      p.orders.push({ key: 'resc', drug: 'OXYCODONE_IR_10', dose: { mg: 10 }, timing: q(4), prn: PRN, start: -10 * D });
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-74, 4, 6], [-50, 3, 5], [-26, 2, 4], [-5, 2, 4]];
      change(p, 'base', -70, { drug: 'MORPHINE_ER_60', dose: { mg: 60 } });
      change(p, 'resc', -70, { drug: 'MORPHINE_IR_15', dose: { mg: 15 } });
      return p;
    },
  },
  {
    id: 'rotation-with-reduction',
    expected: [],
    near_miss: ['opioid-rotation-without-reduction'],
    why: 'Oxycodone ER 40 mg q12h (120 MME/day) rotated 70 h ago to morphine ER 30 mg q12h (60 MME/day): 50% of the old dose.',
    build: () => {
      const p = background({ regimen: null });
      p.orders.push({ key: 'base', drug: 'OXYCODONE_ER_40', dose: { mg: 40 }, timing: q(12), start: -10 * D });
      p.orders.push({ key: 'resc', drug: 'OXYCODONE_IR_10', dose: { mg: 10 }, timing: q(4), prn: PRN, start: -10 * D });
      p.scores = [[-8 * D, 4, 6], [-5 * D, 4, 6], [-74, 4, 6], [-50, 3, 5], [-26, 2, 4], [-5, 2, 4]];
      change(p, 'base', -70, { drug: 'MORPHINE_ER_30', dose: { mg: 30 } });
      change(p, 'resc', -70, { drug: 'MORPHINE_IR_10', dose: { mg: 10 } });
      return p;
    },
  },
  {
    id: 'opioid-benzodiazepine',
    expected: [['opioid-benzodiazepine-concurrent', 'medium']],
    near_miss: [],
    why: 'Morphine ER active and lorazepam 1 mg at night PRN active for 4 days.',
    build: () => {
      const p = background();
      p.orders.push({ key: 'benzo', drug: 'LORAZEPAM_1', dose: { mg: 1 }, timing: { when: ['HS'] }, prn: PRN, start: -4 * D });
      return p;
    },
  },
  {
    id: 'benzodiazepine-stopped',
    expected: [],
    near_miss: ['opioid-benzodiazepine-concurrent'],
    why: 'Lorazepam was given days 10-5 before the anchor and stopped (validityPeriod.end 5 days ago).',
    build: () => {
      const p = background();
      p.orders.push({ key: 'benzo', drug: 'LORAZEPAM_1', dose: { mg: 1 }, timing: { when: ['HS'] }, start: -10 * D, end: -5 * D });
      return p;
    },
  },
  {
    id: 'dq-text-only-rescue-sig',
    expected: [],
    near_miss: ['rescue-dose-out-of-range', 'rescue-dose-missing'],
    why: 'The rescue morphine order is PRN but its sig is free text only ("1/2 to 1 tablet every 4 hours if needed"): a data-quality event, not a finding.',
    build: () => {
      const p = background();
      p.orders.find((o) => o.key === 'resc').textOnly = true;
      return p;
    },
  },
  {
    id: 'dq-unknown-drug',
    expected: [],
    near_miss: [],
    why: 'An extra order for a drug in no painwatch table (acetaminophen, plus a local-only compounded mixture): data-quality events only.',
    build: () => {
      const p = background();
      p.orders.push({ key: 'apap', drug: 'ACETAMINOPHEN_500', dose: { units: 2 }, timing: q(8), start: -6 * D });
      p.orders.push({ key: 'local', drug: null, local: 'Compounded oral analgesic mixture (pharmacy)', dose: { ml: 10 }, timing: q(12), start: -5 * D });
      return p;
    },
  },
  {
    id: 'dq-epic-style-orders',
    expected: [],
    near_miss: ['rescue-dose-out-of-range', 'rescue-dose-missing', 'bowel-regimen-missing'],
    why: 'Epic-style orders: morphine ER via a contained Medication with SBD+SCD+IN+local codings, timing.code BID, two doseAndRate entries (calculated 1 tablet, ordered 30 mg); rescue via a Medication resource in the bundle, ordered 10 mg. 60 MME/day, rescue 16.7%.',
    build: () => {
      const p = background();
      const base = p.orders.find((o) => o.key === 'base');
      base.style = 'epic-contained';
      base.timing = { code: 'BID' };
      p.orders.find((o) => o.key === 'resc').style = 'epic-reference';
      p.orders.find((o) => o.key === 'lax').style = 'epic';
      return p;
    },
  },
  // ---- issue 17: rescue use, sedation, visits, scope, end of life ----
  {
    id: 'rescue-use-frequent',
    expected: [['rescue-use-frequent', 'medium']],
    near_miss: [],
    why: 'Rescue morphine 10 mg given 3 times in each of the last two days (MedicationAdministration) on morphine ER 60 MME/day unchanged: raise the baseline by the average daily rescue total (30 MME) to about 90 MME/day.',
    build: () => {
      const p = background();
      p.admins = [[-40, 'resc'], [-36, 'resc'], [-30, 'resc'], [-16, 'resc'], [-12, 'resc'], [-8, 'resc']];
      return p;
    },
  },
  {
    id: 'rescue-use-occasional',
    expected: [],
    near_miss: ['rescue-use-frequent'],
    why: 'Rescue morphine given twice a day for two days: occasional breakthrough pain, the baseline holds.',
    build: () => {
      const p = background();
      p.admins = [[-40, 'resc'], [-30, 'resc'], [-16, 'resc'], [-8, 'resc']];
      return p;
    },
  },
  {
    id: 'sedation-after-increase',
    expected: [['opioid-sedation-risk', 'high']],
    near_miss: ['titration-step-too-large'],
    why: 'Morphine raised 60 -> 90 MME/day (+50%) 30 h ago; respiratory rate 8/min 10 h ago: assess now, hold or reduce the next dose.',
    build: () => {
      const p = background();
      change(p, 'base', -30, { timing: q(8) });
      p.respRate = [[-10, 8]];
      return p;
    },
  },
  {
    id: 'sedation-tolerable-after-increase',
    expected: [],
    near_miss: ['opioid-sedation-risk'],
    why: 'Morphine raised 60 -> 90 MME/day 30 h ago; respiratory rate 12/min is not slow (threshold: below 10).',
    build: () => {
      const p = background();
      change(p, 'base', -30, { timing: q(8) });
      p.respRate = [[-10, 12]];
      return p;
    },
  },
  {
    id: 'visit-without-pain-score',
    expected: [['pain-not-assessed-at-visit', 'low']],
    near_miss: [],
    why: 'A clinic visit 30 h ago (on morphine) finished with no pain score charted: assess pain at every visit.',
    build: () => {
      const p = background();
      p.encounters = [[-30, -29.5, 'AMB', false]];
      return p;
    },
  },
  {
    id: 'visit-with-pain-score',
    expected: [],
    near_miss: ['pain-not-assessed-at-visit'],
    why: 'A clinic visit 20 h ago with a pain score charted during it.',
    build: () => {
      const p = background();
      p.encounters = [[-20.5, -19.5, 'AMB', false]];
      return p;
    },
  },
  {
    id: 'out-of-scope-no-cancer',
    expected: [],
    near_miss: ['bowel-regimen-missing', 'pain-type-undocumented'],
    why: 'No malignant neoplasm, palliative or hospice context on the problem list (scope problem-list): the cancer-pain rules do not apply, even to an opioid without a laxative.',
    build: () => {
      // no pain type either: "neuropathic cancer pain" on the problem list would say cancer
      const p = background({ laxative: null, painType: false, adjuvant: false });
      p.cancer = false;
      return p;
    },
  },
  {
    id: 'hospice-benzodiazepine',
    expected: [],
    near_miss: ['opioid-benzodiazepine-concurrent', 'pain-not-assessed-at-visit'],
    why: 'Hospice care (encounter in progress for 3 days) with lorazepam and morphine: the combination is part of comfort care, no opioid-benzodiazepine Flag.',
    build: () => {
      const p = background();
      p.orders.push({ key: 'benzo', drug: 'LORAZEPAM_1', dose: { mg: 1 }, timing: q(8), start: -3 * D });
      p.encounters = [[-3 * D, null, 'HH', true]];
      return p;
    },
  },
];

module.exports = { RULES, ARCHETYPES, REGIMENS, D };
