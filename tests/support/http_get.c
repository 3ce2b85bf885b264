/* SPDX-License-Identifier: Apache-2.0 */
#include "http_get.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "pwtest.h"

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    return fwrite(data, size, n, arg);
}

long pwt_http_get(const char *url, char **body)
{
    size_t len = 0;
    FILE *mem = open_memstream(body, &len);
    CURL *c = curl_easy_init();
    long status = 0;

    assert_non_null(mem);
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(c);
    assert_int_equal(fclose(mem), 0);
    return status;
}
