# SPDX-License-Identifier: Apache-2.0
# Fuzz targets (issue 18). Every tests/fuzz/fuzz_<name>.c is one target.
#  - Normal build (gcc or clang, ASan+UBSan in the README build): fuzz_replay_<name> links the
#    target with replay.c and runs every file of corpus/<name>/ and regressions/<name>/ once:
#    ctest label fuzz_replay (part of the README test command; seconds).
#  - -DPW_FUZZ=ON with CC=clang: fuzz_<name> is a libFuzzer binary; ctest runs each for
#    PW_FUZZ_SECONDS (60) from a copy of its corpus, label fuzz. tests/fuzz/run.sh runs longer.
set(PW_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PW_FUZZ_SECONDS 60 CACHE STRING "Seconds each libFuzzer target runs under ctest -L fuzz")
file(GLOB PW_FUZZ_SOURCES CONFIGURE_DEPENDS ${PW_FUZZ_DIR}/fuzz_*.c)
list(REMOVE_ITEM PW_FUZZ_SOURCES ${PW_FUZZ_DIR}/fuzz_common.c)
set(PW_FUZZ_ENV "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

foreach(src IN LISTS PW_FUZZ_SOURCES)
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  set(corpus ${PW_FUZZ_DIR}/corpus/${short})
  set(dict ${PW_FUZZ_DIR}/dict/${short}.dict)
  if(NOT EXISTS ${dict})
    set(dict ${PW_FUZZ_DIR}/dict/json.dict)
  endif()
  if(PW_FUZZ)
    add_executable(${name} ${src} ${PW_FUZZ_DIR}/fuzz_common.c)
    target_link_libraries(${name} PRIVATE pwtest)
    target_include_directories(${name} PRIVATE ${PW_FUZZ_DIR})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    # libFuzzer writes new inputs into its first directory: a scratch copy, not the repo.
    set(work ${CMAKE_CURRENT_BINARY_DIR}/fuzz/${short})
    add_test(NAME ${name} COMMAND sh -c
      "rm -rf '${work}' && mkdir -p '${work}/corpus' '${work}/artifacts' && cp '${corpus}'/* '${work}/corpus/' && exec $<TARGET_FILE:${name}> -max_total_time=${PW_FUZZ_SECONDS} -timeout=25 -rss_limit_mb=2048 -max_len=65536 -dict='${dict}' -artifact_prefix='${work}/artifacts/' -print_final_stats=1 '${work}/corpus'")
    set_tests_properties(${name} PROPERTIES LABELS fuzz TIMEOUT 600 ENVIRONMENT "${PW_FUZZ_ENV}")
  else()
    add_executable(fuzz_replay_${short} ${src} ${PW_FUZZ_DIR}/fuzz_common.c ${PW_FUZZ_DIR}/replay.c)
    target_link_libraries(fuzz_replay_${short} PRIVATE pwtest)
    target_include_directories(fuzz_replay_${short} PRIVATE ${PW_FUZZ_DIR})
    set(inputs ${corpus})
    if(EXISTS ${PW_FUZZ_DIR}/regressions/${short})
      list(APPEND inputs ${PW_FUZZ_DIR}/regressions/${short})
    endif()
    add_test(NAME fuzz_replay_${short} COMMAND $<TARGET_FILE:fuzz_replay_${short}> ${inputs})
    set_tests_properties(fuzz_replay_${short} PROPERTIES LABELS fuzz_replay TIMEOUT 300
      ENVIRONMENT "${PW_FUZZ_ENV}")
    list(APPEND PW_TEST_TARGETS fuzz_replay_${short})
  endif()
endforeach()

# Reproducers of findings another branch fixes (issue 18): each replays under WILL_FAIL, so it
# passes while the bug is there and fails once the fix merges. Then move the file from
# pending/<target>/ to regressions/<target>/ (a normal replay from then on) and drop its line.
# "<target> <finding number> <file under pending/<target>/>"
set(PW_FUZZ_EXPECTED_FAIL)
if(NOT PW_FUZZ)
  foreach(entry IN LISTS PW_FUZZ_EXPECTED_FAIL)
    string(REPLACE " " ";" parts "${entry}")
    list(GET parts 0 short)
    list(GET parts 1 finding)
    list(GET parts 2 file)
    add_test(NAME fuzz_pending_finding${finding}_${short}
      COMMAND $<TARGET_FILE:fuzz_replay_${short}> ${PW_FUZZ_DIR}/pending/${short}/${file})
    set_tests_properties(fuzz_pending_finding${finding}_${short} PROPERTIES LABELS fuzz_replay
      WILL_FAIL TRUE TIMEOUT 120 ENVIRONMENT "${PW_FUZZ_ENV}")
  endforeach()
endif()
