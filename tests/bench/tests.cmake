# SPDX-License-Identifier: Apache-2.0
# Benchmark (issue 9): the baseline tool, the `bench` target (full run, prints the B1-B7 table)
# and a small correctness-only smoke run as a ctest (label bench, no timing asserted).
if(PW_BUILD_BENCH)
  add_executable(pw_bench_base ${CMAKE_CURRENT_LIST_DIR}/pw_bench_base.c)
  # pwcore for the page arena (jarena.h) of the parse-arena figure.
  target_link_libraries(pw_bench_base PRIVATE pwcore)
  set_target_properties(pw_bench_base PROPERTIES RUNTIME_OUTPUT_DIRECTORY
    ${PROJECT_BINARY_DIR}/tests/bench)
  # Issue 18: one page's peak memory on the worst shapes (tests/bench/page_mem.sh prints the table).
  add_executable(pw_bench_page_mem ${CMAKE_CURRENT_LIST_DIR}/pw_bench_page_mem.c)
  target_link_libraries(pw_bench_page_mem PRIVATE pwcore)
  set_target_properties(pw_bench_page_mem PROPERTIES RUNTIME_OUTPUT_DIRECTORY
    ${PROJECT_BINARY_DIR}/tests/bench)
  find_package(Python3 3.9 COMPONENTS Interpreter)
  set(PW_BENCH_PY ${Python3_EXECUTABLE})
  if(NOT PW_BENCH_PY)
    set(PW_BENCH_PY python3)
  endif()
  add_custom_target(bench_page_mem
    COMMAND ${PW_BENCH_PY} ${CMAKE_CURRENT_LIST_DIR}/page_mem_daemon.py --build ${PROJECT_BINARY_DIR}
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/page_mem.sh ${PROJECT_BINARY_DIR}
    DEPENDS painwatchd pw_bench_page_mem USES_TERMINAL
    COMMENT "issue 18: one hostile page's memory (tests/bench/README.md)")

  # The full benchmark: meant for a Release build (tests/bench/run.sh configures one).
  add_custom_target(bench
    COMMAND ${PW_BENCH_PY} ${CMAKE_CURRENT_LIST_DIR}/bench.py --build ${PROJECT_BINARY_DIR}
    DEPENDS painwatchd painwatch pw_bench_base USES_TERMINAL
    COMMENT "painwatch benchmark (tests/bench/README.md)")

  add_test(NAME bench_smoke COMMAND ${PW_BENCH_PY} ${CMAKE_CURRENT_LIST_DIR}/bench.py
    --build ${PROJECT_BINARY_DIR} --work ${PROJECT_BINARY_DIR}/tests/bench/smoke --smoke
    --patients 150 --run-limit 100)
  set_tests_properties(bench_smoke PROPERTIES LABELS bench TIMEOUT 150
    ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()
