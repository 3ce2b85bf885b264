/* SPDX-License-Identifier: Apache-2.0 */
/* A listener's ADDRESS:PORT (core/listener.c), apart so that config checks need no MHD header. */
#ifndef PAINWATCH_CORE_LISTEN_ADDR_H
#define PAINWATCH_CORE_LISTEN_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

/** "127.0.0.1:9187" or "[::1]:9187" -> sockaddr (numeric addresses only). @return 0 or PW_EINVAL.
 */
int pw_listen_parse(const char *listen, struct sockaddr_storage *ss, bool *v6);

#endif
