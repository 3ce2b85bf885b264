/* SPDX-License-Identifier: Apache-2.0 */
/* The typed per-patient timeline that rules read. Rules never see JSON: normalize fills this. */
#ifndef PAINWATCH_TIMELINE_H
#define PAINWATCH_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "painwatch/limits.h"

/* Times are seconds since the epoch, UTC. */
#define PW_TIME_NONE    INT64_MIN /* unknown / absent */
#define PW_TIME_FOREVER INT64_MAX /* an order that is still current has end == PW_TIME_FOREVER */

/** A reference to the resource an event came from (evidence in findings and the audit trail). */
struct pw_ref {
    char type[32];           /* "Observation" */
    char id[PW_ID_MAX];      /* FHIR id */
    char version[PW_ID_MAX]; /* meta.versionId, "" when absent */
};

/** One pain intensity score (NRS 0-10; decimals kept). */
struct pw_pain_score {
    int64_t at;
    double value;
    struct pw_ref src;
};

enum pw_pain_kind {
    PW_PAIN_NEUROPATHIC = 1,
    PW_PAIN_SOMATIC,
    PW_PAIN_VISCERAL,
    PW_PAIN_MIXED,
};

/** Pain type documented by an Observation or a Condition. */
struct pw_pain_type {
    int64_t at;
    enum pw_pain_kind kind;
    struct pw_ref src;
};

/** Medication classes, a bit set (one order can be several, e.g. opioid + long-acting). */
enum pw_med_class {
    PW_MED_OPIOID = 1u << 0,
    PW_MED_LONG_ACTING = 1u << 1,          /* extended-release / long-acting opioid */
    PW_MED_RAPID_ONSET_FENTANYL = 1u << 2, /* transmucosal fentanyl: never a 10-20 % rescue */
    PW_MED_TRANSDERMAL = 1u << 3,          /* patch (fentanyl, buprenorphine) */
    PW_MED_BENZODIAZEPINE = 1u << 4,
    PW_MED_LAXATIVE_STIMULANT = 1u << 5,
    PW_MED_LAXATIVE_OSMOTIC = 1u << 6,
    PW_MED_LAXATIVE_SOFTENER = 1u << 7,
    PW_MED_ADJUVANT_GABAPENTINOID = 1u << 8,
    PW_MED_ADJUVANT_SNRI = 1u << 9,
    PW_MED_ADJUVANT_TCA = 1u << 10,
    PW_MED_ADJUVANT_CORTICOSTEROID = 1u << 11,
    PW_MED_METHADONE = 1u << 12,      /* methadone: its own titration interval */
    PW_MED_LAXATIVE_OTHER = 1u << 13, /* laxative of unknown kind (value set member), PAMORA */
};
#define PW_MED_LAXATIVE                                                               \
    (PW_MED_LAXATIVE_STIMULANT | PW_MED_LAXATIVE_OSMOTIC | PW_MED_LAXATIVE_SOFTENER | \
     PW_MED_LAXATIVE_OTHER)
#define PW_MED_ADJUVANT                                                           \
    (PW_MED_ADJUVANT_GABAPENTINOID | PW_MED_ADJUVANT_SNRI | PW_MED_ADJUVANT_TCA | \
     PW_MED_ADJUVANT_CORTICOSTEROID)

/** Role of an opioid order in the regimen (normalize decides it). */
enum pw_order_role {
    PW_ROLE_OTHER = 0, /* not an opioid, or an opioid that is neither (e.g. rapid-onset PRN) */
    PW_ROLE_BASELINE,  /* opioid, not PRN */
    PW_ROLE_RESCUE,    /* PRN immediate-release opioid, not rapid-onset transmucosal fentanyl */
};

/**
 * One medication order, current or past. Doses are NAN when unknown (a data-quality event says
 * why). For a PRN order, the per-day values are the most its sig allows.
 */
struct pw_med_order {
    struct pw_ref src;
    unsigned classes; /* enum pw_med_class bits */
    enum pw_order_role role;
    bool prn;
    char drug_rxcui[16]; /* the RxNorm code that identified the drug */
    char drug_name[PW_CODE_MAX];
    char ingredient_rxcui[16]; /* the opioid ingredient for combinations */
    char ingredient[48];       /* "Morphine" */
    int64_t start;             /* authoredOn (or validityPeriod.start) */
    int64_t end;               /* PW_TIME_FOREVER while active|on-hold */
    char prior[PW_REF_MAX];    /* priorPrescription ("MedicationRequest/id"), "" when absent */
    double mg_per_dose;        /* ingredient mg per administration (doseRange: low end) */
    double mg_per_dose_high;   /* doseRange high end, equal to mg_per_dose otherwise */
    double mg_per_day;         /* ingredient mg per day (PRN: the most allowed) */
    double mcg_per_hour;       /* transdermal patches: total mcg/h worn */
    double mme_factor;         /* factor used (NAN when none) */
    double mme_per_day;
    double mme_per_dose;
    /* Issue 16 (appended): route, part of the order, factor row, plausibility. */
    char route[16];        /* enum pw_route name: "oral", "parenteral", ... ("" unknown) */
    int part;              /* index of the dosageInstruction (or taper step) this part is */
    char factor_row[48];   /* the factor table row used ("cdc2022:7052:oral"), "" when none */
    unsigned flags;        /* enum pw_order_flag bits */
    char dose_written[48]; /* the dose as written ("25 mg", "1-2 tablet"), for texts */
    double min_dose_mg;    /* smallest practical dose of the product (mg), NAN unknown */
};

/** Order flags (struct pw_med_order.flags). */
enum pw_order_flag {
    PW_ORDER_IMPLAUSIBLE = 1u << 0,   /* dose outside the plausibility table: no MME, no advice */
    PW_ORDER_NO_MME = 1u << 1,        /* MME not computable (buprenorphine, route without factor) */
    PW_ORDER_OUD = 1u << 2,           /* opioid use disorder product: outside cancer-pain rules */
    PW_ORDER_BUPRENORPHINE = 1u << 3, /* buprenorphine: MME not computable, said in words */
};

/** A palliative-care referral (ServiceRequest) or encounter. */
struct pw_referral {
    int64_t at;
    struct pw_ref src;
};

/** What could not be used, and why. Never a clinical finding. */
struct pw_dq_event {
    char
        code[40]; /* "unstructured-sig", "unknown-drug", "unit-not-convertible", "no-factor", ... */
    struct pw_ref src;
    char detail[256]; /* no patient values beyond what the pharmacist needs to fix the order */
};

/*
 * Resource types painwatch reads, as bits (issue 17): rules declare which they read and on the
 * absence of which a finding rests; a timeline says which were synced and readable.
 */
enum pw_res_type {
    PW_RES_OBSERVATION = 1u << 0,
    PW_RES_MEDICATION_REQUEST = 1u << 1,
    PW_RES_MEDICATION_ADMINISTRATION = 1u << 2,
    PW_RES_CONDITION = 1u << 3,
    PW_RES_SERVICE_REQUEST = 1u << 4,
    PW_RES_ENCOUNTER = 1u << 5,
};
#define PW_RES_ALL   0x3fu
#define PW_RES_COUNT 6

/** "Observation" for PW_RES_OBSERVATION, ...; NULL for anything else. */
const char *pw_res_type_name(unsigned bit);
/** The bit of a resource type name, 0 when painwatch does not read that type. */
unsigned pw_res_type_bit(const char *name);

/**
 * Which resource types were synced and readable for a patient. With known false every type
 * counts as synced (a caller that does not know). Otherwise a type is synced when it is in
 * @p synced; @p refused are types the server refused (HTTP 401/403) and @p unadvertised types
 * its CapabilityStatement does not offer (the reason a type is missing); @p unread types whose
 * stream failed before ever completing a run (they could not be read).
 */
struct pw_synced {
    bool known;
    unsigned synced;
    unsigned refused;
    unsigned unadvertised;
    unsigned unread; /* bug N1: types whose stream failed before its first complete read */
};

/**
 * Clinical context (issue 17): problem-list entries, settings, end-of-life signs, vital signs
 * and administrations. One kind per event; @p value and @p end as the kind says.
 */
enum pw_ctx_kind {
    PW_CTX_CANCER = 1,     /* active malignant neoplasm on the problem list */
    PW_CTX_PALLIATIVE,     /* active palliative-care or hospice context (encounter, referral) */
    PW_CTX_END_OF_LIFE,    /* hospice encounter, comfort-care goal or care plan */
    PW_CTX_ENCOUNTER,      /* an encounter: value = enum pw_setting, at..end its period */
    PW_CTX_SEDATION,       /* sedation score: value; detail = scale ("POSS", "RASS") */
    PW_CTX_RESP_RATE,      /* respiratory rate, /min */
    PW_CTX_SPO2,           /* oxygen saturation, % */
    PW_CTX_ADMINISTRATION, /* an opioid dose given: value = MME of the dose (NAN unknown) */
    PW_CTX_BENZO_INFUSION, /* a continuous benzodiazepine infusion (palliative sedation) */
};
#define PW_CTX_KIND_MAX PW_CTX_BENZO_INFUSION

/** Care setting of an encounter (value of a PW_CTX_ENCOUNTER event). */
enum pw_setting {
    PW_SETTING_UNKNOWN = 0,
    PW_SETTING_INPATIENT, /* inpatient, acute, observation stay */
    PW_SETTING_EMERGENCY,
    PW_SETTING_AMBULATORY, /* clinic visit, home health */
    PW_SETTING_VIRTUAL,
};

struct pw_context {
    int64_t at;
    int64_t end; /* PW_TIME_FOREVER while in progress / active; PW_TIME_NONE when unknown */
    enum pw_ctx_kind kind;
    double value;
    bool finished;         /* an encounter that finished */
    bool prn_rescue;       /* an administration linked to a rescue (PRN opioid) order */
    char link[PW_REF_MAX]; /* administration: the order it fulfils ("MedicationRequest/id") */
    char detail[48];       /* scale, drug or setting text */
    struct pw_ref src;
};

#define PW_VEC(T)   \
    struct {        \
        T *v;       \
        size_t n;   \
        size_t cap; \
    }

/** Everything known about one patient. Arrays are sorted by time by pw_timeline_sort(). */
struct pw_timeline {
    char patient[PW_REF_MAX]; /* "Patient/123" */
    PW_VEC(struct pw_pain_score) scores;
    PW_VEC(struct pw_pain_type) pain_types;
    PW_VEC(struct pw_med_order) orders;
    PW_VEC(struct pw_referral) referrals;
    PW_VEC(struct pw_dq_event) dq;
    /* issue 17: what was looked at, and the clinical context (appended) */
    struct pw_synced synced;
    PW_VEC(struct pw_context) context;
};

/** Initialise an empty timeline for @p patient (copied). */
void pw_timeline_init(struct pw_timeline *tl, const char *patient);

/** Release the arrays; the struct can be initialised again. Accepts a zeroed struct. */
void pw_timeline_cleanup(struct pw_timeline *tl);

/*
 * Append a copy of an event. A resource already present (same type and id) is replaced when the
 * new copy has a newer versionId (numeric versionIds compare as numbers, other strings replace
 * when different), so a timeline holds the latest version of each resource; the replaced
 * version's data-quality events are dropped.
 * @return 0, PW_ENOMEM, or PW_E2BIG past PW_RESOURCES_PER_PATIENT_MAX events.
 */
int pw_timeline_add_score(struct pw_timeline *tl, const struct pw_pain_score *ev);
int pw_timeline_add_pain_type(struct pw_timeline *tl, const struct pw_pain_type *ev);
int pw_timeline_add_order(struct pw_timeline *tl, const struct pw_med_order *ev);
int pw_timeline_add_referral(struct pw_timeline *tl, const struct pw_referral *ev);
int pw_timeline_add_dq(struct pw_timeline *tl, const struct pw_dq_event *ev);
int pw_timeline_add_context(struct pw_timeline *tl, const struct pw_context *ev);

/** The data-quality code saying the cap was reached; it is accepted even past the cap. */
#define PW_DQ_TIMELINE_CAP "timeline-cap"

/** Sort every array by time (orders by start), ties by id, so evaluation is deterministic. */
void pw_timeline_sort(struct pw_timeline *tl);

/** Forget every event, keep the arrays' capacity (a scratch timeline reused per resource). */
void pw_timeline_clear(struct pw_timeline *tl);

/*
 * The stored form of a resource's events (daemon/clinical/timeline_codec.c). The pipeline
 * normalizes each resource once, when its page arrives, and keeps these bytes in the store; an
 * evaluation decodes them instead of parsing and normalizing the resource's JSON again. Compact
 * (strings length-prefixed, numbers little-endian), versioned by a magic, checked on decode.
 */
struct pw_bytes {
    unsigned char *v;
    size_t n, cap;
};
void pw_bytes_cleanup(struct pw_bytes *b);

/** Replace @p out's content with the encoding of every event of @p tl. @return 0 or PW_ENOMEM. */
int pw_timeline_encode(const struct pw_timeline *tl, struct pw_bytes *out);

/**
 * Add the events encoded in @p buf to @p tl (pw_timeline_add_* rules: latest version wins, the
 * per-patient cap gives PW_E2BIG). @return 0, PW_E2BIG, PW_ENOMEM, or PW_EJSON when @p buf is
 * not an encoding of this version (nothing is added then).
 */
int pw_timeline_decode(struct pw_timeline *tl, const void *buf, size_t len);

/** Whether @p buf starts like an encoding (a stored resource of an older schema held its JSON). */
bool pw_timeline_is_encoded(const void *buf, size_t len);

/** True when @p o is active at @p t (start <= t < end). */
bool pw_order_active_at(const struct pw_med_order *o, int64_t t);

/**
 * Baseline total daily dose at @p t: sum of mme_per_day of baseline orders active at t; NAN when
 * one of them has an unknown MME (a data-quality event says why), 0 when there is none.
 */
double pw_timeline_baseline_mme_at(const struct pw_timeline *tl, int64_t t);

#endif
