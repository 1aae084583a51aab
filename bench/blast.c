/* The end-to-end benchmark's baseline client (bench/run_throughput.py): sends
 * COUNT POST requests of one prepared body to URL with PARALLEL of them in
 * flight on keep-alive connections, through libcurl's multi interface (the
 * library and the interface revetl delivers with), and prints the wall time.
 * It does nothing but send: no database, no JSON building, no bookkeeping.
 * This is what "as fast as the wire allows" means for revetl's runs.
 *
 *   cc -O2 -o blast bench/blast.c -lcurl
 *   ./blast URL BODYFILE COUNT PARALLEL     prints "seconds requests non2xx" */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *u) {
    (void)p;
    (void)u;
    return s * n;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s URL BODYFILE COUNT PARALLEL\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    long count = atol(argv[3]);
    int parallel = atoi(argv[4]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror("blast: body");
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long blen = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *body = malloc((size_t)blen + 1);
    if (fread(body, 1, (size_t)blen, f) != (size_t)blen) {
        perror("blast: read");
        return 1;
    }
    fclose(f);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)parallel);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Idempotency-Key: 0123456789abcdef0123456789abcdef");
    h = curl_slist_append(h, "User-Agent: revetl/0.1.0");
    h = curl_slist_append(h, "Expect:");
    CURL **easy = calloc((size_t)parallel, sizeof *easy);
    long started = 0, done = 0, bad = 0;
    for (int i = 0; i < parallel; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDSIZE, blen);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_TCP_NODELAY, 1L);
    }
    double t0 = now_s();
    for (int i = 0; i < parallel && started < count; i++, started++)
        curl_multi_add_handle(m, easy[i]);
    while (done < count) {
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status < 200 || status > 299)
                bad++;
            done++;
            curl_multi_remove_handle(m, e);
            if (started < count) {
                curl_multi_add_handle(m, e);
                started++;
            }
        }
        if (done < count)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double t = now_s() - t0;
    printf("%.6f %ld %ld\n", t, done, bad);
    return bad ? 1 : 0;
}
