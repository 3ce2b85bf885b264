# SPDX-License-Identifier: Apache-2.0
# The never-rules as tests (issue 20), label lint: lint_jscpd_setup installs the pinned copy/paste
# detector from npm into the build tree (fixture lint_jscpd); lint_self_test proves lint.sh fails
# on planted violations in small trees it writes; lint_never_rules runs it over this source tree.
set(PW_LINT_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PW_LINT_JSCPD_DIR ${PROJECT_BINARY_DIR}/tests/lint/jscpd)
set(PW_LINT_JSCPD ${PW_LINT_JSCPD_DIR}/node_modules/.bin/jscpd)

add_test(NAME lint_jscpd_setup COMMAND sh ${PW_LINT_DIR}/setup.sh ${PW_LINT_JSCPD_DIR})
set_tests_properties(lint_jscpd_setup PROPERTIES LABELS lint FIXTURES_SETUP lint_jscpd TIMEOUT 600
  RESOURCE_LOCK lint_jscpd_modules)

add_test(NAME lint_self_test COMMAND sh ${PW_LINT_DIR}/self_test.sh ${PW_LINT_JSCPD})
add_test(NAME lint_never_rules COMMAND sh ${PW_LINT_DIR}/lint.sh ${PROJECT_SOURCE_DIR} ${PW_LINT_JSCPD})
set_tests_properties(lint_self_test lint_never_rules PROPERTIES LABELS lint TIMEOUT 300
  FIXTURES_REQUIRED lint_jscpd ENVIRONMENT "CC=${CMAKE_C_COMPILER}")
