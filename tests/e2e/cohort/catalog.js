// SPDX-License-Identifier: Apache-2.0
// The few codes the synthetic cohort uses, copied from the terminology tables (see README.md):
// RxNorm rows of opioid-drugs.csv, valuesets.csv and ingredient-classes.csv; SNOMED/LOINC/ICD-10.
'use strict';

const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const SNOMED = 'http://snomed.info/sct';
const LOINC = 'http://loinc.org';
const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
const UCUM = 'http://unitsofmeasure.org';
const DRUG_FORM = 'http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm';
const EPIC_ERX = 'urn:oid:1.2.840.114350.1.13.0.1.7.2.698288'; // Epic-style local medication ids

/**
 * Drugs. `mg` is the strength per unit (tablet, capsule, mL, or mcg/h for patches); `ingredient`
 * the RxNorm ingredient (IN). `sbd` is a branded code of the same product where the table has one.
 * class: opioid-er | opioid-ir | opioid-patch | laxative-stimulant | laxative-osmotic | adjuvant-snri
 * | benzodiazepine | other.
 */
const DRUGS = {
  // opioid-drugs.csv (OMTK, RxNorm 2020-10)
  MORPHINE_ER_15: { rxcui: '891881', name: 'morphine sulfate 15 MG Extended Release Oral Tablet', sbd: ['892574', 'morphine sulfate 15 MG Extended Release Oral Tablet [MS Contin]'], ingredient: ['7052', 'Morphine'], mg: 15, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  MORPHINE_ER_30: { rxcui: '891888', name: 'morphine sulfate 30 MG Extended Release Oral Tablet', sbd: ['892660', 'morphine sulfate 30 MG Extended Release Oral Tablet [MS Contin]'], ingredient: ['7052', 'Morphine'], mg: 30, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  MORPHINE_ER_60: { rxcui: '891893', name: 'morphine sulfate 60 MG Extended Release Oral Tablet', sbd: ['894813', 'morphine sulfate 60 MG Extended Release Oral Tablet [MS Contin]'], ingredient: ['7052', 'Morphine'], mg: 60, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  MORPHINE_ER_100: { rxcui: '891874', name: 'morphine sulfate 100 MG Extended Release Oral Tablet', sbd: ['892560', 'morphine sulfate 100 MG Extended Release Oral Tablet [MS Contin]'], ingredient: ['7052', 'Morphine'], mg: 100, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  MORPHINE_IR_10: { rxcui: '895014', name: 'morphine sulfate 10 MG Oral Tablet', ingredient: ['7052', 'Morphine'], mg: 10, unit: 'tablet', form: 'TAB', cls: 'opioid-ir' },
  MORPHINE_IR_15: { rxcui: '892582', name: 'morphine sulfate 15 MG Oral Tablet', ingredient: ['7052', 'Morphine'], mg: 15, unit: 'tablet', form: 'TAB', cls: 'opioid-ir' },
  MORPHINE_IR_30: { rxcui: '892672', name: 'morphine sulfate 30 MG Oral Tablet', ingredient: ['7052', 'Morphine'], mg: 30, unit: 'tablet', form: 'TAB', cls: 'opioid-ir' },
  MORPHINE_SOL_2: { rxcui: '892589', name: 'morphine sulfate 2 MG/ML Oral Solution', ingredient: ['7052', 'Morphine'], mg: 2, unit: 'mL', form: 'ORSOL', cls: 'opioid-ir' },
  OXYCODONE_ER_10: { rxcui: '1049502', name: '12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet', ingredient: ['7804', 'Oxycodone'], mg: 10, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  OXYCODONE_ER_20: { rxcui: '1049563', name: '12 HR oxycodone hydrochloride 20 MG Extended Release Oral Tablet', ingredient: ['7804', 'Oxycodone'], mg: 20, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  OXYCODONE_ER_30: { rxcui: '1049574', name: '12 HR oxycodone hydrochloride 30 MG Extended Release Oral Tablet', ingredient: ['7804', 'Oxycodone'], mg: 30, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  OXYCODONE_ER_40: { rxcui: '1049584', name: '12 HR oxycodone hydrochloride 40 MG Extended Release Oral Tablet', ingredient: ['7804', 'Oxycodone'], mg: 40, unit: 'tablet', form: 'TAB', cls: 'opioid-er' },
  OXYCODONE_IR_5: { rxcui: '1049621', name: 'oxycodone hydrochloride 5 MG Oral Tablet', sbd: ['1049623', 'oxycodone hydrochloride 5 MG Oral Tablet [Roxicodone]'], ingredient: ['7804', 'Oxycodone'], mg: 5, unit: 'tablet', form: 'TAB', cls: 'opioid-ir' },
  OXYCODONE_IR_10: { rxcui: '1049683', name: 'oxycodone hydrochloride 10 MG Oral Tablet', ingredient: ['7804', 'Oxycodone'], mg: 10, unit: 'tablet', form: 'TAB', cls: 'opioid-ir' },
  HYDROMORPHONE_IR_2: { rxcui: '897696', name: 'hydromorphone hydrochloride 2 MG Oral Tablet', sbd: ['897698', 'hydromorphone hydrochloride 2 MG Oral Tablet [Dilaudid]'], ingredient: ['3423', 'Hydromorphone'], mg: 2, unit: 'tablet', form: 'TAB', cls: 'opioid-ir' },
  FENTANYL_PATCH_25: { rxcui: '245134', name: '72 HR fentanyl 0.025 MG/HR Transdermal System', sbd: ['261184', '72 HR fentanyl 0.025 MG/HR Transdermal System [Duragesic]'], ingredient: ['4337', 'Fentanyl'], mcgh: 25, unit: 'patch', cls: 'opioid-patch' },
  FENTANYL_PATCH_37: { rxcui: '1603495', name: '72 HR fentanyl 0.0375 MG/HR Transdermal System', ingredient: ['4337', 'Fentanyl'], mcgh: 37.5, unit: 'patch', cls: 'opioid-patch' },
  FENTANYL_PATCH_50: { rxcui: '245135', name: '72 HR fentanyl 0.05 MG/HR Transdermal System', sbd: ['261185', '72 HR fentanyl 0.05 MG/HR Transdermal System [Duragesic]'], ingredient: ['4337', 'Fentanyl'], mcgh: 50, unit: 'patch', cls: 'opioid-patch' },
  // valuesets.csv, VSAC 2.16.840.1.113762.1.4.1032.44 "Stool softeners and laxatives" (drug-level codes)
  SENNA_8_6: { rxcui: '312935', name: 'sennosides, USP 8.6 MG Oral Tablet', mg: 8.6, unit: 'tablet', form: 'TAB', cls: 'laxative-stimulant' },
  BISACODYL_5: { rxcui: '308753', name: 'bisacodyl 5 MG Delayed Release Oral Tablet', mg: 5, unit: 'tablet', form: 'TAB', cls: 'laxative-stimulant' },
  PEG_3350: { rxcui: '876193', name: 'polyethylene glycol 3350 17000 MG Powder for Oral Solution', mg: 17000, unit: 'g', cls: 'laxative-osmotic' },
  // valuesets.csv 1032.54 "Adjuvant pain medications"; ingredient 72625 in ingredient-classes.csv
  DULOXETINE_30: { rxcui: '596930', name: 'duloxetine 30 MG Delayed Release Oral Capsule', ingredient: ['72625', 'duloxetine'], mg: 30, unit: 'capsule', form: 'CAP', cls: 'adjuvant-snri' },
  // valuesets.csv benzodiazepine-medications and 1032.43
  LORAZEPAM_1: { rxcui: '197901', name: 'lorazepam 1 MG Oral Tablet', mg: 1, unit: 'tablet', form: 'TAB', cls: 'benzodiazepine' },
  // In no painwatch table: an unknown drug for the data-quality path.
  ACETAMINOPHEN_500: { rxcui: '198440', name: 'acetaminophen 500 MG Oral Tablet', mg: 500, unit: 'tablet', form: 'TAB', cls: 'other' },
};

/** Cancer diagnoses: [ICD-10-CM code, SNOMED code, display]. */
const CANCERS = [
  ['C34.90', '254637007', 'Non-small cell lung cancer'],
  ['C50.919', '254837009', 'Malignant neoplasm of breast'],
  ['C61', '399068003', 'Malignant tumor of prostate'],
  ['C25.9', '363418001', 'Malignant tumor of pancreas'],
  ['C18.9', '363406005', 'Malignant tumor of colon'],
  ['C79.51', '94222008', 'Secondary malignant neoplasm of bone'],
];

const PAIN_LOINC = ['72514-3', 'Pain severity - 0-10 verbal numeric rating [Score] - Reported'];
const NEUROPATHIC = ['247398009', 'Neuropathic pain'];
const PALLIATIVE = ['103735009', 'Palliative care'];

const GIVEN = ['Ada', 'Bela', 'Chidi', 'Dana', 'Emil', 'Farah', 'Goran', 'Hana', 'Ines', 'Jonas', 'Kemal', 'Lena', 'Mira', 'Nils', 'Olga', 'Pavel', 'Rosa', 'Sami', 'Tariq', 'Una', 'Vera', 'Wim', 'Yara', 'Zeno'];
const FAMILY = ['Aalto', 'Berger', 'Costa', 'Dimitrov', 'Eriksen', 'Fischer', 'Garcia', 'Horvat', 'Ivanova', 'Jensen', 'Kowalski', 'Lindqvist', 'Moreau', 'Novak', 'Okafor', 'Petrov', 'Rossi', 'Silva', 'Tanaka', 'Varga'];

module.exports = {
  RXNORM, SNOMED, LOINC, ICD10CM, UCUM, DRUG_FORM, EPIC_ERX,
  DRUGS, CANCERS, PAIN_LOINC, NEUROPATHIC, PALLIATIVE, GIVEN, FAMILY,
};
