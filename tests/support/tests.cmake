# SPDX-License-Identifier: Apache-2.0
# The loopback responder (tests/support/responder.c) checks TLS client certificates through the
# GnuTLS session libmicrohttpd hands out; GnuTLS is libmicrohttpd's own TLS backend.
find_package(Threads REQUIRED)
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
target_link_libraries(pwtest PUBLIC PkgConfig::GNUTLS Threads::Threads)
