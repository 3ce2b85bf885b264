#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# painwatch benchmark: a synthetic population written as FHIR searchset pages (Python 3 stdlib).
"""Writes N patients as Observation and MedicationRequest search-result pages.

Layout under OUT: p<COUNT>/Observation-<i>.json and p<COUNT>/MedicationRequest-<i>.json for
every page size, each a Bundle searchset whose link[next] is the absolute URL of the next file
under BASE; qualifying.ndjson (the resources of the qualifying patients, for the ground truth);
sample-clean.ndjson (a sample of the others, which must give no finding); meta.json.

The population is designed so that the expected Flags do not depend on the order in which the
daemon sees the pages (server-wide mode evaluates a patient after every page that touches it):
- every pain score is 0-3 (below every score threshold of the rules), so no subset of the scores
  raises anything; Observation pages interleave patients in _lastUpdated order like a real server;
- a patient's MedicationRequests are consecutive in _lastUpdated order (an order set signed
  together) and never split across a page, so the daemon sees all of them or none;
- orders of scored patients were written 2-12 h ago (under every 24 h rule threshold): a clean
  patient (scheduled opioid + PRN rescue at 10-20 % of the 24 h dose + scheduled laxative) raises
  nothing; a qualifying one lacks the rescue order (rescue-dose-missing);
- a qualifying patient of the second kind has no pain score at all and orders from 3 days ago
  without a laxative (bowel-regimen-missing and reassessment-overdue-after-dose-change): its
  findings depend on its orders alone.
"""
import argparse
import json
import os
import random
import time

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

# (baseline rxcui, display, tablets, every h) + (rescue rxcui, display, tablets, every h):
# rescue = 10-20 % of the 24 h baseline (from config/terminology/opioid-drugs.csv).
REGIMENS = [
    (("891878", "12 HR morphine sulfate 15 MG Extended Release Oral Tablet", 2, 8),
     ("892582", "morphine sulfate 15 MG Oral Tablet", 1, 2)),
    (("1049543", "12 HR oxycodone hydrochloride 15 MG Extended Release Oral Tablet", 1, 12),
     ("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", 1, 4)),
    (("902729", "24 HR hydromorphone hydrochloride 12 MG Extended Release Oral Tablet", 1, 24),
     ("897696", "hydromorphone hydrochloride 2 MG Oral Tablet", 1, 4)),
]
LAXATIVES = [
    ("Senna 8.6 mg tablet", "BID"),
    ("Polyethylene glycol 3350 17 g powder", "QD"),
]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def med(pid, mid, t, display, rxcui, tablets, every_h, prn):
    di = {
        "text": f"{tablets} tablet(s) every {every_h} h" + (" as needed for pain" if prn else ""),
        "timing": {"repeat": {"frequency": 1, "period": every_h, "periodUnit": "h"}},
        "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet",
                                          "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                                          "code": "TAB"}}],
    }
    if prn:
        di["asNeededBoolean"] = True
    return {"resourceType": "MedicationRequest", "id": mid,
            "meta": {"versionId": "1", "lastUpdated": iso(t)},
            "status": "active", "intent": "order", "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": iso(t),
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui,
                                                      "display": display}], "text": display},
            "dosageInstruction": [di]}


def laxative(pid, mid, t, text, code):
    return {"resourceType": "MedicationRequest", "id": mid,
            "meta": {"versionId": "1", "lastUpdated": iso(t)},
            "status": "active", "intent": "order", "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": iso(t), "medicationCodeableConcept": {"text": text},
            "dosageInstruction": [{"text": f"{text} {code}", "timing": {"code": {"text": code}}}]}


def score(pid, oid, t, value):
    return {"resourceType": "Observation", "id": oid,
            "meta": {"versionId": "1", "lastUpdated": iso(t)}, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3",
                                 "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": iso(t),
            "valueQuantity": {"value": value, "unit": "{score}", "system": "http://unitsofmeasure.org",
                              "code": "{score}"}}


def population(n, k, now, rng, days=None):
    """Yields (patient id, kind, [scores], [orders]); kind: clean, rescue, bowel.

    days: None, scores over the last 10 days (the daemon benchmark); else over the last DAYS days
    with the first one in the period's first 12 h, so every scored patient is on record for the
    whole period (the backtest benchmark's patient-days)."""
    n_scores = max(1, k - 3)
    for i in range(n):
        pid = f"bp{i:07d}"
        r = rng.random()
        kind = "clean" if r >= 0.10 else ("rescue" if r < 0.07 else "bowel")
        base, resc = REGIMENS[i % len(REGIMENS)]
        lax = LAXATIVES[i % len(LAXATIVES)]
        scores, orders = [], []
        if kind == "bowel":
            t0 = now - 3 * 86400 - rng.randrange(0, 3600)
            orders.append(med(pid, f"{pid}-m1", t0, base[1], base[0], base[2], base[3], False))
            orders.append(med(pid, f"{pid}-m2", t0 + 1, resc[1], resc[0], resc[2], resc[3], True))
        else:
            t0 = now - 12 * 3600 + rng.randrange(0, 10 * 3600)
            orders.append(med(pid, f"{pid}-m1", t0, base[1], base[0], base[2], base[3], False))
            if kind == "clean":
                orders.append(med(pid, f"{pid}-m2", t0 + 1, resc[1], resc[0], resc[2], resc[3], True))
            orders.append(laxative(pid, f"{pid}-m3", t0 + 2, lax[0], lax[1]))
            for j in range(n_scores):
                if days is None:
                    t = now - 10 * 86400 + rng.randrange(0, 10 * 86400 - 600)
                elif j == 0:
                    t = now - days * 86400 + rng.randrange(0, 12 * 3600)
                else:
                    t = now - days * 86400 + rng.randrange(0, days * 86400 - 600)
                scores.append(score(pid, f"{pid}-o{j}", t, rng.randrange(0, 4)))
        yield pid, kind, scores, orders


def write_pages(outdir, base, count, typ, resources, patient_whole):
    """resources: list of (sortkey, id, patient, json text). Returns the number of pages."""
    os.makedirs(outdir, exist_ok=True)
    pages, cur, cur_pid_start = [], [], 0
    i = 0
    while i < len(resources):
        if patient_whole:
            # take the whole run of this patient's resources; start a new page if it does not fit
            j = i
            while j < len(resources) and resources[j][2] == resources[i][2]:
                j += 1
            if len(cur) + (j - i) > count and cur:
                pages.append(cur)
                cur = []
            cur.extend(resources[i:j])
            i = j
        else:
            cur.append(resources[i])
            i += 1
            if len(cur) == count:
                pages.append(cur)
                cur = []
    if cur or not pages:
        pages.append(cur)
    total = len(pages)
    for p, page in enumerate(pages, 1):
        links = [{"relation": "self", "url": f"{base}/p{count}/{typ}-{p}.json"}]
        if p < total:
            links.append({"relation": "next", "url": f"{base}/p{count}/{typ}-{p + 1}.json"})
        head = json.dumps({"resourceType": "Bundle", "type": "searchset", "link": links},
                          separators=(",", ":"))
        body = ",".join('{"fullUrl":"%s/%s/%s","resource":%s,"search":{"mode":"match"}}'
                        % (base, typ, rid, text) for _, rid, _pid, text in page)
        with open(os.path.join(outdir, f"{typ}-{p}.json"), "w") as f:
            f.write(head[:-1] + ',"entry":[' + body + "]}")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, required=True)
    ap.add_argument("--resources", type=int, default=10, help="per scored patient (>= 4)")
    ap.add_argument("--counts", default="100,1000")
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--days", type=int, default=None,
                    help="spread scores over the last DAYS days, the first in the first 12 h "
                         "(the backtest benchmark; default: the last 10 days)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    now = int(time.time())
    obs, meds = [], []
    kinds = {"clean": 0, "rescue": 0, "bowel": 0}
    os.makedirs(a.out, exist_ok=True)
    qual = open(os.path.join(a.out, "qualifying.ndjson"), "w")
    clean = open(os.path.join(a.out, "sample-clean.ndjson"), "w")
    n_clean_sample = 0
    dump = lambda r: json.dumps(r, separators=(",", ":"))
    for pid, kind, scores, orders in population(a.patients, a.resources, now, rng, a.days):
        kinds[kind] += 1
        for s in scores:
            obs.append((s["meta"]["lastUpdated"], s["id"], pid, dump(s)))
        for o in orders:
            meds.append((orders[0]["meta"]["lastUpdated"], o["id"], pid, dump(o)))
        sink = qual if kind != "clean" else (clean if n_clean_sample < 300 else None)
        if kind == "clean" and sink:
            n_clean_sample += 1
        if sink:
            for r in scores + orders:
                sink.write(dump(r) + "\n")
    qual.close()
    clean.close()
    obs.sort(key=lambda x: (x[0], x[1]))
    meds.sort(key=lambda x: (x[0], x[2], x[1]))
    meta = {"patients": a.patients, "kinds": kinds, "observations": len(obs),
            "medication_requests": len(meds), "generated_at": iso(now), "pages": {}}
    for c in [int(x) for x in a.counts.split(",")]:
        d = os.path.join(a.out, f"p{c}")
        meta["pages"][str(c)] = {
            "Observation": write_pages(d, a.base, c, "Observation", obs, False),
            "MedicationRequest": write_pages(d, a.base, c, "MedicationRequest", meds, True),
        }
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
