/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking loopback GET for tests that talk to a running painwatchd (health, metrics, status). */
#ifndef PAINWATCH_TESTS_HTTP_GET_H
#define PAINWATCH_TESTS_HTTP_GET_H

/**
 * GET @p url (20 s timeout). *@p body: the response body, "" when none or on a transport error;
 * caller frees. @return the HTTP status, 0 on a transport error.
 */
long pwt_http_get(const char *url, char **body);

#endif
