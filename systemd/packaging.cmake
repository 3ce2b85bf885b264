# SPDX-License-Identifier: Apache-2.0
# Install rules for the systemd unit, sysusers/tmpfiles snippets and the example configuration,
# and the CPack settings for the Debian package (`cpack -G DEB` or the `deb` target).
# Included at the end of the top-level CMakeLists.txt.

# systemd's own directories (relative: under /usr in the package). Debian 12 reads units from
# /usr/lib/systemd/system as well as /lib/systemd/system.
set(PW_UNIT_DIR lib/systemd/system)
set(PW_SYSUSERS_DIR lib/sysusers.d)
set(PW_TMPFILES_DIR lib/tmpfiles.d)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/painwatch.service DESTINATION ${PW_UNIT_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/painwatch.sysusers DESTINATION ${PW_SYSUSERS_DIR}
  RENAME painwatch.conf)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/painwatch.tmpfiles DESTINATION ${PW_TMPFILES_DIR}
  RENAME painwatch.conf)

# The configuration lives in /etc whatever the prefix: the unit names /etc/painwatch and dpkg
# keeps it as a conffile (an edited file survives upgrades). It holds no secrets (file paths
# only), so it is world-readable like any /etc file.
install(FILES ${PROJECT_SOURCE_DIR}/config/painwatch.yaml DESTINATION /etc/painwatch
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_PACKAGE_NAME painwatch)
set(CPACK_PACKAGE_VENDOR "painwatch project")
set(CPACK_PACKAGE_CONTACT "painwatch maintainers <painwatch@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "FHIR R4 gateway for cancer pain care")
set(CPACK_PACKAGE_DESCRIPTION
  "painwatchd pulls pain scores and opioid, laxative and adjuvant orders from FHIR servers,\
 checks them against the cancer-pain workflow, posts FHIR Flags back into the chart, and keeps\
 an HMAC-chained audit trail. Runs under systemd as the painwatch user.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_PACKAGE_NAME painwatch)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://localhost/painwatch")
# The runtime libraries of Debian 12 (bookworm) that painwatchd and painwatch link.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libuv1 (>= 1.44), libcurl4 (>= 7.88), libjansson4 (>= 2.14), libssl3, libsqlite3-0 (>= 3.40), libyaml-0-2, libsystemd0, libmicrohttpd12 (>= 0.9.75)")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates, systemd")
# conffiles + maintainer scripts: create the user, reload systemd, stop on removal.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/systemd/debian/conffiles
  ${PROJECT_SOURCE_DIR}/systemd/debian/postinst
  ${PROJECT_SOURCE_DIR}/systemd/debian/prerm
  ${PROJECT_SOURCE_DIR}/systemd/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

# `cmake --build build --target deb`: the package, built after everything it installs. The
# binaries compile in their data and config paths (PW_DATADIR, PW_SYSCONFDIR) and the unit names
# /usr/sbin, so a package for installation must come from a /usr-prefixed build; the target
# refuses anything else (a test may still run cpack on any build to check the package's shape).
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(PW_DEB_PREFIX_CHECK ${CMAKE_COMMAND} -E true)
else()
  set(PW_DEB_PREFIX_CHECK ${CMAKE_COMMAND} -E echo
    "painwatch: configure with -DCMAKE_INSTALL_PREFIX=/usr to build the .deb (now: ${CMAKE_INSTALL_PREFIX})"
    COMMAND ${CMAKE_COMMAND} -E false)
endif()
add_custom_target(deb
  COMMAND ${PW_DEB_PREFIX_CHECK}
  COMMAND ${CMAKE_CPACK_COMMAND} -G DEB --config ${PROJECT_BINARY_DIR}/CPackConfig.cmake
    -B ${PROJECT_BINARY_DIR}/packages
  WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
  DEPENDS painwatchd painwatch
  COMMENT "Building the Debian package in ${PROJECT_BINARY_DIR}/packages"
  VERBATIM)
