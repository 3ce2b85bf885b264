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
# The operator's guide (systemd/README.md), the machine-readable copyright file (with the
# terminology sources' licences) and the changelog, where Debian policy puts them.
install(FILES ${PROJECT_SOURCE_DIR}/systemd/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
  RENAME operator-guide.md)
install(FILES ${PROJECT_SOURCE_DIR}/systemd/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Manual pages (plain roff in systemd/man) and the changelog, compressed as policy wants
# (gzip -9n: no name or time stamp, so the package is reproducible).
find_program(PW_GZIP gzip REQUIRED)
set(PW_MAN_PAGES painwatchd.8 painwatch.1 painwatch.yaml.5)
set(PW_GZ_OUT)
foreach(page IN LISTS PW_MAN_PAGES)
  string(REGEX MATCH "[0-9]$" section ${page})
  set(out ${PROJECT_BINARY_DIR}/man/${page}.gz)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
    COMMAND ${PW_GZIP} -9n -c ${PROJECT_SOURCE_DIR}/systemd/man/${page} > ${out}
    DEPENDS ${PROJECT_SOURCE_DIR}/systemd/man/${page} VERBATIM)
  install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  list(APPEND PW_GZ_OUT ${out})
endforeach()
set(PW_CHANGELOG_GZ ${PROJECT_BINARY_DIR}/changelog.gz)
add_custom_command(OUTPUT ${PW_CHANGELOG_GZ}
  COMMAND ${PW_GZIP} -9n -c ${PROJECT_SOURCE_DIR}/systemd/debian/changelog > ${PW_CHANGELOG_GZ}
  DEPENDS ${PROJECT_SOURCE_DIR}/systemd/debian/changelog VERBATIM)
install(FILES ${PW_CHANGELOG_GZ} DESTINATION ${CMAKE_INSTALL_DOCDIR})
add_custom_target(pw_docs ALL DEPENDS ${PW_GZ_OUT} ${PW_CHANGELOG_GZ})

# The package version is the changelog's latest entry: a release bumps both.
file(STRINGS ${PROJECT_SOURCE_DIR}/systemd/debian/changelog PW_CHANGELOG_HEAD LIMIT_COUNT 1)
if(NOT PW_CHANGELOG_HEAD MATCHES "^painwatch \\(${PROJECT_VERSION}\\) ")
  message(WARNING "systemd/debian/changelog's latest entry is not version ${PROJECT_VERSION}: "
    "add one before building a package")
endif()

# Release builds for the package: hardening flags (Debian's dpkg-buildflags set) in the
# configuration the package is built with (RelWithDebInfo: -O2 -g, for the -dbgsym package).
target_compile_options(pw_flags INTERFACE
  $<$<CONFIG:RelWithDebInfo>:-D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection>)
target_link_options(pw_flags INTERFACE $<$<CONFIG:RelWithDebInfo,Release>:-Wl,-z,relro -Wl,-z,now>)

# Who answers for this package. Sites that build their own set their own.
set(PW_PACKAGE_MAINTAINER "painwatch maintainers <painwatch-maintainers@example.org>"
  CACHE STRING "Maintainer field of the Debian package: Name <address>")

set(CPACK_PACKAGE_NAME painwatch)
set(CPACK_PACKAGE_VENDOR "painwatch project")
set(CPACK_PACKAGE_CONTACT "${PW_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "FHIR R4 gateway for cancer pain care")
set(CPACK_PACKAGE_DESCRIPTION
  "painwatchd pulls pain scores and opioid, laxative and adjuvant orders\n\
from FHIR servers, checks them against the cancer-pain workflow, posts\n\
FHIR Flags back into the chart, and keeps an HMAC-chained audit trail.\n\
It runs under systemd as the painwatch user, in shadow mode until the\n\
site decides otherwise.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_DEBIAN_PACKAGE_NAME painwatch)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The library dependencies are computed by dpkg-shlibdeps from the binaries (libc included);
# postinst creates the user with systemd-sysusers (dh_installsysusers' dependency).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd | systemd-standalone-sysusers | systemd-sysusers")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "ca-certificates, systemd")
# Stripped binaries; their debug symbols go to painwatch-dbgsym (a .ddeb) when the build has
# them (RelWithDebInfo, as the operator's guide builds; a Release build is only stripped).
if(CMAKE_BUILD_TYPE MATCHES "^(RelWithDebInfo|Debug)$")
  set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
else()
  set(CPACK_STRIP_FILES ON)
endif()
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
  COMMAND sh ${PROJECT_SOURCE_DIR}/systemd/dbgsym.sh ${PROJECT_BINARY_DIR}/packages
    $<IF:$<BOOL:${CPACK_DEBIAN_DEBUGINFO_PACKAGE}>,required,optional>
  WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
  DEPENDS painwatchd painwatch pw_docs
  COMMENT "Building the Debian package in ${PROJECT_BINARY_DIR}/packages"
  VERBATIM)
