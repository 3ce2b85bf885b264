#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/seeds.py [--cohort DIR]

Sources (all in this repository; no patient data): the HL7 R4 examples and the audit and sync
fixtures under tests/fixtures, config/painwatch.yaml, and the synthetic e2e cohort
(tests/e2e/cohort/generate.js, run here with a fixed seed and anchor unless --cohort names a
generated directory). Deterministic: the same tree gives the same files. The timeline codec
seeds are made afterwards by the bundle target itself (see tests/fuzz/README.md).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
BASE = "https://ehr.example.org/fhir"


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def page(resources, nxt=None):
    b = {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
         "link": [{"relation": "self", "url": BASE + "/Observation?_count=50"}],
         "entry": [{"fullUrl": "%s/%s/%s" % (BASE, r["resourceType"], r.get("id", "x")),
                    "resource": r, "search": {"mode": "match"}} for r in resources]}
    if nxt:
        b["link"].append({"relation": "next", "url": nxt})
    return b


def server_form(bundle, stamp):
    """A transaction Bundle of the cohort as a server returns it: Type/id references."""
    urn = {}
    res = []
    for e in bundle.get("entry", []):
        r = e["resource"]
        urn[e.get("fullUrl", "")] = "%s/%s" % (r["resourceType"], r.get("id", ""))
    text = dumps([e["resource"] for e in bundle.get("entry", [])])
    for k, v in urn.items():
        if k:
            text = text.replace('"%s"' % k, '"%s"' % v)
    for i, r in enumerate(json.loads(text)):
        r.setdefault("meta", {})["lastUpdated"] = "2026-11-%02dT10:%02d:00.000Z" % (1 + i % 28, i % 60)
        r["meta"]["versionId"] = str(1 + i % 3)
        res.append(r)
    return res


def bundles(cohort):
    files = sorted(glob.glob(os.path.join(cohort, "*.bundle.json")))
    for f in files:
        name = os.path.basename(f).replace(".bundle.json", "")
        if name.startswith("cohort-group"):
            continue
        b = json.load(open(f))
        rs = server_form(b, 0)
        out("bundle", "cohort-%s.json" % name, dumps(page(rs, BASE + "/Observation?_count=50&_page=2")))
        meds = [r for r in rs if r["resourceType"] == "MedicationRequest"]
        for r in meds[:2]:
            out("dosage", "cohort-%s-%s.json" % (name, r["id"]), dumps(r))
    for f in sorted(glob.glob(os.path.join(FIX, "fhir", "r4-examples", "*.json"))):
        r = json.load(open(f))
        name = os.path.basename(f)[:-5]
        if r.get("resourceType") == "Bundle":
            out("bundle", "r4-%s.json" % name, dumps(r))
        elif r.get("resourceType") in ("MedicationRequest", "Observation", "Condition", "Patient",
                                        "Medication", "Flag", "ServiceRequest", "Encounter"):
            out("bundle", "r4-%s.json" % name, dumps(page([r])))
        if r.get("resourceType") == "MedicationRequest":
            out("dosage", "r4-%s.json" % name, dumps(r))
            for i, d in enumerate(r.get("dosageInstruction", [])):
                out("dosage", "r4-%s-dosage%d.json" % (name, i), dumps(d))
    # Poison and hostile shapes (issue 18 findings 2 and 4): valid grammar, hostile values.
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "meta": {"lastUpdated": "2026-11-30T10:00:00Z"},
           "code": {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]},
           "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-30T09:00:00Z",
           "valueQuantity": {"value": 7, "unit": "{score}"}}
    out("bundle", "poison-1e400.json",
        dumps(page([obs])).replace('"value":7', '"value":1e400'))
    out("bundle", "poison-30-digits.json",
        dumps(page([obs])).replace('"value":7', '"value":123456789012345678901234567890'))
    out("bundle", "poison-empty-entries.json",
        '{"resourceType":"Bundle","type":"searchset","entry":[' + ",".join(["{}"] * 200) + "]}")
    out("bundle", "poison-traversal-id.json",
        dumps(page([dict(obs, id="../../../Patient/p1")])))
    out("bundle", "poison-times.json",
        dumps(page([dict(obs, effectiveDateTime="-292277022657-01-27T08:29:52Z",
                         meta={"lastUpdated": "9999-12-31T23:59:59.999Z"})])))
    out("bundle", "foreign-next.json", dumps(page([obs], "https://evil.example.net/fhir/Observation?p=2")))


def dosage_extra():
    d = [{"sequence": 1, "text": "1 tab q4-6h prn",
          "timing": {"repeat": {"frequency": 1, "frequencyMax": 2, "period": 4, "periodMax": 6,
                                "periodUnit": "h", "when": ["MORN", "NIGHT"], "dayOfWeek": ["mon"]},
                     "code": {"coding": [{"code": "Q4H"}]}},
          "asNeededBoolean": True,
          "doseAndRate": [{"type": {"coding": [{"code": "ordered"}]},
                           "doseRange": {"low": {"value": 5, "unit": "mg"},
                                         "high": {"value": 1e308, "unit": "mg"}}}],
          "maxDosePerPeriod": {"numerator": {"value": 60, "unit": "mg"},
                               "denominator": {"value": 0, "unit": "d"}}},
         {"timing": {"repeat": {"frequency": 2147483647, "period": 1e-300, "periodUnit": "s"}},
          "doseAndRate": [{"doseQuantity": {"value": -1, "unit": "mcg/h"}}]}]
    out("dosage", "extreme-array.json", dumps(d))


def configs():
    out("config", "painwatch.yaml", open(os.path.join(ROOT, "config", "painwatch.yaml"), "rb").read())
    y = """state_dir: /var/lib/painwatch
log_level: info
shadow_mode: false
reevaluate_interval: 10s
health:
  enabled: true
  listen: "127.0.0.1:0"
audit:
  path: /var/lib/painwatch/audit/trail.jsonl
outbox: {retry_base: 1s, retry_cap: 2s}
sink:
  type: fhir-flag
servers:
  - name: ehr
    base_url: https://ehr.example.org/fhir
    auth: {type: none}
    cohort: {type: server-wide}
    resources: [Observation, MedicationRequest, Condition, ServiceRequest, Encounter, Flag]
    poll_interval: 10s
    timeout: 30s
rules:
  reassessment_overdue:
    enabled: true
"""
    out("config", "e2e.yaml", y)
    out("config", "anchors.yaml", "a: &x {type: none}\nservers:\n  - name: e\n    base_url: https://e.example/f\n    auth: *x\n")
    for name in ("patients_ok.txt", "patients_bad_type.txt"):
        out("config", name, open(os.path.join(FIX, "sync", name), "rb").read())
    out("config", "json.json", dumps({"state_dir": "/tmp/pw", "servers": [
        {"name": "ehr", "base_url": "https://ehr.example.org/fhir",
         "auth": {"type": "client-secret", "client_id": "pw", "secret_file": "/etc/pw/secret"}}]}))


def audit():
    a = os.path.join(FIX, "audit")
    t0 = open(os.path.join(a, "trail.jsonl.0"), "rb").read()
    t1 = open(os.path.join(a, "trail.jsonl"), "rb").read()
    tam = open(os.path.join(a, "tampered.jsonl"), "rb").read()
    out("audit", "one-file", b"\x00" + t0)
    out("audit", "two-files", b"\x01" + t0 + b"\f" + t1)
    out("audit", "tampered", b"\x00" + tam)
    out("audit", "torn-tail", b"\x00" + t0[: len(t0) - 17])


def capability():
    out("capability", "capability_r4.json", open(os.path.join(FIX, "sync", "capability_r4.json"), "rb").read())
    out("capability", "bench-metadata.json", open(os.path.join(ROOT, "tests", "bench", "metadata.json"), "rb").read())
    out("capability", "minimal.json", dumps({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1",
                                             "rest": [{"mode": "server", "resource": [
                                                 {"type": "Flag", "interaction": [{"code": "create"}],
                                                  "conditionalCreate": True}]}]}))


def http_values():
    vals = [(0, "120"), (0, "Wed, 21 Oct 2026 07:28:00 GMT"), (0, "Wednesday, 21-Oct-26 07:28:00 GMT"),
            (0, "Wed Oct 21 07:28:00 2026"), (0, "99999999999999999999"), (0, "-1"),
            (1, "https://EHR.example.org:443/fhir"), (1, "http://[::1]:8080/x"), (1, "https://u:p@h/"),
            (2, "https://ehr.example.org/fhir/Observation?page=2"), (2, "https://ehr.example.org.evil.net/"),
            (2, "https://ehr.example.org@evil.net/"), (2, "//evil.net/fhir"),
            (3, "2026-11-30T10:00:00.123+01:00"), (3, "2026-11-30T24:00:00Z"),
            (4, "2026-02-30"), (4, "2026"), (4, "2026-11-30T10:00:00-14:00"),
            (5, "https://ehr.example.org/fhir/Patient/p1/_history/3"), (5, "../../Patient/p1"),
            (6, "2026-11-26T22:46:22.123Z"), (7, "1h30m"), (7, "10s"), (8, "a b&c=d/%"),
            (9, "https://ehr.example.org/fhir?_getpages=abc&_getpagesoffset=50"),
            (9, "http://127.0.0.1:8080/fhir/R4/Observation?page=2"),
            (10, dumps({"resourceType": "Group", "type": "person", "actual": True, "member": [
                {"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p2"}, "inactive": True},
                {"entity": {"reference": "Patient/p3"}, "period": {"end": "2020-01-01"}}]}))]
    for i, (sel, v) in enumerate(vals):
        out("http_values", "%02d-%d" % (i, sel), bytes([sel]) + v.encode())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort")
    a = ap.parse_args()
    for t in ("bundle", "dosage", "config", "audit", "capability", "http_values"):
        shutil.rmtree(os.path.join(HERE, "corpus", t), ignore_errors=True)
    tmp = None
    cohort = a.cohort
    if not cohort:
        tmp = tempfile.mkdtemp(prefix="pw-seeds-")
        cohort = tmp
        subprocess.run(["node", os.path.join(ROOT, "tests", "e2e", "cohort", "generate.js"), "--out", cohort,
                        "--patients", "40", "--seed", "7", "--anchor", "2026-11-30T12:00:00Z"],
                       check=True, stdout=subprocess.DEVNULL)
    try:
        bundles(cohort)
        dosage_extra()
        configs()
        audit()
        capability()
        http_values()
    finally:
        if tmp:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    sys.exit(main())
