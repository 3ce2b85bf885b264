# SPDX-License-Identifier: Apache-2.0
# End-to-end wiring: install the reference FHIR server's npm packages (fixture e2e_node), start it on
# a free loopback port (fixture e2e_server, port in ${PW_E2E_PORT_FILE}) and stop it even when tests
# fail. Tests that talk to the server call pw_e2e_use_server(<test>...): they then run one at a time.
find_program(PW_NODE NAMES node nodejs DOC "Node.js >= 20.19 for the e2e reference FHIR server")
if(NOT PW_NODE)
  set(PW_NODE node) # setup.sh then fails with instructions instead of configure failing
endif()
set(PW_E2E_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PW_E2E_RUN_DIR ${PROJECT_BINARY_DIR}/tests/e2e/run)
set(PW_E2E_PORT_FILE ${PW_E2E_RUN_DIR}/fhir-server.port)
set(PW_E2E_PID_FILE ${PW_E2E_RUN_DIR}/fhir-server.pid)
set(PW_E2E_LOG_FILE ${PW_E2E_RUN_DIR}/fhir-server.log)
set(PW_E2E_ENV "PW_NODE=${PW_NODE}" "PW_E2E_DIR=${PW_E2E_DIR}" "PW_E2E_PORT_FILE=${PW_E2E_PORT_FILE}"
  "PW_E2E_RUN_DIR=${PW_E2E_RUN_DIR}" "PW_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
  "PW_BINARY_DIR=${PROJECT_BINARY_DIR}")

add_test(NAME e2e_node_setup COMMAND sh ${PW_E2E_DIR}/server/setup.sh ${PW_NODE})
set_tests_properties(e2e_node_setup PROPERTIES LABELS e2e FIXTURES_SETUP e2e_node TIMEOUT 600
  RESOURCE_LOCK e2e_node_modules)

# The server lives at most an hour whatever happens to ctest (--max-lifetime in start.sh).
# A server left by an interrupted run (its pid file still there) is stopped first.
add_test(NAME e2e_server_start COMMAND sh -c
  "mkdir -p '${PW_E2E_RUN_DIR}' && sh '${PW_E2E_DIR}/server/stop.sh' --pidfile '${PW_E2E_PID_FILE}' --if-ours && rm -f '${PW_E2E_PID_FILE}' && pid=$(sh '${PW_E2E_DIR}/server/start.sh' '${PW_E2E_PORT_FILE}' '${PW_E2E_LOG_FILE}' 3600) && echo $pid > '${PW_E2E_PID_FILE}' && echo \"server pid $pid port $(cat '${PW_E2E_PORT_FILE}')\"")
set_tests_properties(e2e_server_start PROPERTIES LABELS e2e FIXTURES_SETUP e2e_server
  FIXTURES_REQUIRED e2e_node TIMEOUT 120 ENVIRONMENT "${PW_E2E_ENV}")

add_test(NAME e2e_server_stop COMMAND sh ${PW_E2E_DIR}/server/stop.sh --pidfile ${PW_E2E_PID_FILE})
set_tests_properties(e2e_server_stop PROPERTIES LABELS e2e FIXTURES_CLEANUP e2e_server TIMEOUT 60)

# pw_e2e_use_server(<test>...): needs the running server, gets its env, runs alone against it.
function(pw_e2e_use_server)
  foreach(t IN LISTS ARGN)
    set_property(TEST ${t} APPEND PROPERTY FIXTURES_REQUIRED e2e_server)
    set_property(TEST ${t} APPEND PROPERTY RESOURCE_LOCK e2e_fhir_server)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT ${PW_E2E_ENV})
    set_property(TEST ${t} PROPERTY LABELS e2e)
  endforeach()
endfunction()

# pw_e2e_node_test(<name> <file.test.js> [SERVER]): a node:test file as one ctest.
function(pw_e2e_node_test name file)
  add_test(NAME ${name} COMMAND ${PW_NODE} --test ${PW_E2E_DIR}/node/${file})
  set_tests_properties(${name} PROPERTIES LABELS e2e TIMEOUT 900 FIXTURES_REQUIRED e2e_node
    ENVIRONMENT "${PW_E2E_ENV}")
  if("SERVER" IN_LIST ARGN)
    pw_e2e_use_server(${name})
  endif()
endfunction()

pw_e2e_node_test(e2e_server_http server.test.js SERVER)
pw_e2e_node_test(e2e_cohort_generator cohort.test.js)
pw_e2e_node_test(e2e_cohort_load cohort-load.test.js SERVER)
# painwatch check over the cohort: the clinical core must agree with every sidecar.
pw_e2e_node_test(e2e_cohort_check check.test.js)
set_property(TEST e2e_cohort_check APPEND PROPERTY ENVIRONMENT "PAINWATCH=$<TARGET_FILE:painwatch>"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

# painwatchd end to end (issue 8): cohort -> --once -> Flags compared with the sidecars, changed
# data, unchanged data (zero writes), shadow mode.
pw_e2e_node_test(e2e_daemon_once daemon.test.js SERVER)
set_property(TEST e2e_daemon_once APPEND PROPERTY ENVIRONMENT "PAINWATCHD=$<TARGET_FILE:painwatchd>")
set_property(TEST e2e_daemon_once PROPERTY TIMEOUT 1500)

# Daemon-level tests (issues 5, 6, 7): painwatchd and the CLI against the reference server.
function(pw_e2e_daemon_test name file)
  pw_e2e_node_test(${name} ${file} SERVER)
  set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT "PAINWATCHD=$<TARGET_FILE:painwatchd>"
    "PAINWATCH=$<TARGET_FILE:painwatch>" "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endfunction()
pw_e2e_daemon_test(e2e_daemon_crash daemon-crash.test.js)
pw_e2e_daemon_test(e2e_daemon_ops daemon-ops.test.js)
# Issue 21: Flag fidelity (priority system, summary, narrative, encounter, severity filter, audit
# carrier) and the rule CodeSystem, validated by the reference server and the R4 JSON schema.
pw_e2e_daemon_test(e2e_flag_fidelity flag-fidelity.test.js)
# issue 21: the detected-issue sink (write, idempotency, reconcile, clinician acknowledgement)
# and `sink.type: auto` choosing by /metadata, against the reference server.
pw_e2e_daemon_test(e2e_detected_issue detected-issue.test.js)

# Issue 21: the CDS Hooks service from a scripted client (JWTs signed with keys made by the test).
add_executable(pw_cds_server ${PW_E2E_DIR}/cds/cds_server.c)
target_link_libraries(pw_cds_server PRIVATE pwcore)
pw_e2e_node_test(e2e_cds_hooks cds-hooks.test.js)
set_property(TEST e2e_cds_hooks APPEND PROPERTY ENVIRONMENT "PW_CDS_SERVER=$<TARGET_FILE:pw_cds_server>"
  "PAINWATCHD=$<TARGET_FILE:painwatchd>" "PAINWATCH=$<TARGET_FILE:painwatch>"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

# Issue 22: painwatch backtest against painwatchd over the same data and period (demo cohort,
# trimmed Synthea patients): the same episodes; painwatch report over a shadow-mode run.
pw_e2e_daemon_test(e2e_backtest_daemon backtest.test.js)
set_property(TEST e2e_backtest_daemon PROPERTY TIMEOUT 1800)
# Issue 22: the backtest's HTML report in headless Chromium (Debian's chromium; skipped without
# it): no console messages, SVG charts and table rows against the JSON output, the screenshot
# kept as build/.../backtest-report.png. Bad input named by file:line / resource id.
pw_e2e_node_test(e2e_backtest_html backtest-html.test.js)
set_property(TEST e2e_backtest_html APPEND PROPERTY ENVIRONMENT "PAINWATCH=$<TARGET_FILE:painwatch>"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
set_property(TEST e2e_backtest_html PROPERTY LABELS "e2e;browser")
# Issue 22: backtest --jobs N gives the same bytes for any N (demo cohort, Synthea patients).
pw_e2e_node_test(e2e_backtest_jobs backtest-jobs.test.js)
set_property(TEST e2e_backtest_jobs APPEND PROPERTY ENVIRONMENT "PAINWATCH=$<TARGET_FILE:painwatch>"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
# Issue 22: skipping instants where no rule's outcome can change gives what --exhaustive gives
# (every rule case at a 10-minute step, default and site thresholds; demo cohort; Synthea).
pw_e2e_node_test(e2e_backtest_skip backtest-skip.test.js)
set_property(TEST e2e_backtest_skip APPEND PROPERTY ENVIRONMENT "PAINWATCH=$<TARGET_FILE:painwatch>"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
# Data-quality events in the audit trail, once per episode, and their counter by code.
pw_e2e_daemon_test(e2e_data_quality data-quality.test.js)
# Issue 22 (session 8): backtest --jobs parses the input once in all (parts cut at NDJSON lines):
# the same bytes for any N with versions in different parts, the line of an error in a later
# part, no temporary files left after a failure or SIGTERM.
pw_e2e_node_test(e2e_backtest_input backtest-input.test.js)
set_property(TEST e2e_backtest_input APPEND PROPERTY ENVIRONMENT "PAINWATCH=$<TARGET_FILE:painwatch>"
  "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
