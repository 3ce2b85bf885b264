# SPDX-License-Identifier: Apache-2.0
# Standing suites of issue 18 against the e2e reference server (fixture e2e_server, one at a time):
#   hostile_matrix  the hostile-server matrix, short form (label hostile)
#   hostile_crash   SIGKILL loop, short form (label hostile)
#   hostile_enospc  a full state / audit file system (label hostile; skips without root)
# Long forms: tests/hostile/run.sh (see tests/hostile/README.md).
set(PW_HOSTILE_DIR ${CMAKE_CURRENT_LIST_DIR})
function(pw_hostile_test name file)
  add_test(NAME ${name} COMMAND ${PW_NODE} --test ${PW_HOSTILE_DIR}/${file})
  pw_e2e_use_server(${name})
  set_tests_properties(${name} PROPERTIES LABELS hostile TIMEOUT 1500)
  set_property(TEST ${name} APPEND PROPERTY FIXTURES_REQUIRED e2e_node)
  set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT "PAINWATCHD=$<TARGET_FILE:painwatchd>"
    "PAINWATCH=$<TARGET_FILE:painwatch>" "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endfunction()
pw_hostile_test(hostile_matrix hostile.test.js)
pw_hostile_test(hostile_crash crash-loop.test.js)
pw_hostile_test(hostile_enospc enospc.test.js)
