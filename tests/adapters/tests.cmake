# SPDX-License-Identifier: Apache-2.0
# Flags made by the fhir-flag sink are checked by the FHIR R4 validator of tests/e2e/server
# (Medplum's validateResource + the official R4 JSON schema): the sink test writes its sample Flags
# (created and resolved) into a directory, then validate.js checks every file there.
find_program(PW_NODE NAMES node nodejs DOC "Node.js >= 20.19 for the e2e reference FHIR server")
if(NOT PW_NODE)
  set(PW_NODE node)
endif()
set(PW_FLAG_OUT_DIR ${PROJECT_BINARY_DIR}/tests/flags-out)
# test_flag_every_rule runs every firing rule case through normalize + engine + sink, so every
# registered rule is represented.
foreach(t adapters_test_sink_fhir_flag adapters_test_flag_every_rule adapters_test_sink_detected_issue)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "PW_FLAG_OUT_DIR=${PW_FLAG_OUT_DIR}")
  set_property(TEST ${t} PROPERTY FIXTURES_SETUP flag_samples)
endforeach()

add_test(NAME adapters_flag_schema_valid COMMAND sh -c
  "set -e; ls '${PW_FLAG_OUT_DIR}'/*.json '${PW_FLAG_OUT_DIR}'/rules/*.json >/dev/null; '${PW_NODE}' '${PROJECT_SOURCE_DIR}/tests/e2e/server/validate.js' '${PW_FLAG_OUT_DIR}'/*.json '${PW_FLAG_OUT_DIR}'/rules/*.json")
set_tests_properties(adapters_flag_schema_valid PROPERTIES LABELS e2e TIMEOUT 300
  FIXTURES_REQUIRED "flag_samples;e2e_node")

# Issue 20: adapters declared in the tests (tests/adapters/<kind>_<name>.c beside the test_*.c
# files) join test_adapter_registry, which registers each with one line.
file(GLOB PW_TEST_ADAPTERS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/auth_*.c
  ${CMAKE_CURRENT_LIST_DIR}/cohort_*.c ${CMAKE_CURRENT_LIST_DIR}/sink_*.c
  ${CMAKE_CURRENT_LIST_DIR}/store_*.c)
target_sources(adapters_test_adapter_registry PRIVATE ${PW_TEST_ADAPTERS})
