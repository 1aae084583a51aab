/* A minimal HTTP/1.1 sink for the end-to-end benchmark (bench/run_throughput.py):
 * one thread, epoll, keep-alive, reads each request (headers and a Content-Length
 * body, or a chunked body) and answers 200 {"accepted":1} as application/json.
 * It stands in for nginx (`return 200`), which this machine need not have; like
 * nginx with one worker it costs the machine about one request's parsing per
 * request and nothing else.
 *
 *   cc -O2 -o sink bench/sink.c && ./sink PORTFILE
 *
 *   ./sink PORTFILE DELAY_MS
 *
 * Listens on 127.0.0.1 at a port the kernel picks and writes the port to
 * PORTFILE once it listens. Prints the requests it answered on SIGTERM.
 * With DELAY_MS > 0 each answer is written DELAY_MS after its request was read
 * (bench/latency_throughput.py): a destination across a network, where a
 * request's round trip, not the machine's CPU, sets what a client can reach. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 4096
#define BUF_MAX (64 * 1024 * 1024)

struct conn {
    char *buf;
    size_t len, cap;
    unsigned gen; /* bumped when the descriptor is closed, so a late answer never reaches its next owner */
};

static struct conn conns[MAX_CONN];

/* Answers held back by DELAY_MS, due in the order their requests were read
 * (the delay is the same for all): a ring, oldest first. */
#define MAX_HELD (1 << 16)
struct held {
    int fd;
    unsigned gen;
    long long due_ns;
};
static struct held held[MAX_HELD];
static size_t held_head = 0, held_count = 0;
static volatile sig_atomic_t stop_flag = 0;
static unsigned long long answered = 0;

static void on_term(int sig) {
    (void)sig;
    stop_flag = 1;
}

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
                            "Connection: keep-alive\r\n\r\n{\"accepted\":1}";

/* Length of the first complete request in c->buf, 0 if it is not complete yet, -1 if malformed. */
static long request_length(struct conn *c) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return c->len > 65536 ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    long body = 0;
    int chunked = 0;
    for (char *p = c->buf; p < end;) {
        char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0)
            body = strtol(p + 15, NULL, 10);
        else if ((size_t)(eol - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0 &&
                 memmem(p, (size_t)(eol - p), "chunked", 7))
            chunked = 1;
        p = eol + 2;
    }
    if (chunked) { /* the last chunk ends the body */
        char *last = memmem(c->buf + head, c->len - head, "\r\n0\r\n\r\n", 7);
        if (!last && c->len - head >= 5 && memcmp(c->buf + head, "0\r\n\r\n", 5) == 0)
            return (long)head + 5;
        return last ? (long)(last - c->buf) + 7 : 0;
    }
    if (body < 0 || body > BUF_MAX)
        return -1;
    return c->len >= head + (size_t)body ? (long)(head + (size_t)body) : 0;
}

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd].buf);
    unsigned gen = conns[fd].gen + 1;
    memset(&conns[fd], 0, sizeof conns[fd]);
    conns[fd].gen = gen;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Writes one answer; 0 when the connection had to be dropped. */
static int answer(int fd) {
    /* Replies are small; a full socket buffer here means a client that does not read. */
    if (write(fd, reply, sizeof reply - 1) != (ssize_t)(sizeof reply - 1))
        return 0;
    answered++;
    return 1;
}

/* Writes every held answer that is due; returns the time until the next one, in
 * nanoseconds (epoll_pwait2's precision: a millisecond timeout would add up to a
 * millisecond to every answer). */
static long long answer_due(int ep) {
    long long now = now_ns();
    while (held_count > 0) {
        struct held *h = &held[held_head];
        if (h->due_ns > now)
            return h->due_ns - now;
        held_head = (held_head + 1) % MAX_HELD;
        held_count--;
        if (conns[h->fd].gen == h->gen && conns[h->fd].cap > 0 && !answer(h->fd))
            drop(ep, h->fd);
    }
    return 500000000LL;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PORTFILE [DELAY_MS]\n", argv[0]);
        return 2;
    }
    long long delay_ns = argc == 3 ? strtoll(argv[2], NULL, 10) * 1000000LL : 0;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1024) != 0) {
        perror("sink: bind/listen");
        return 1;
    }
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    FILE *pf = fopen(tmp, "w");
    if (!pf) {
        perror("sink: port file");
        return 1;
    }
    fprintf(pf, "%d\n", ntohs(a.sin_port));
    fclose(pf);
    rename(tmp, argv[1]);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event events[256];
    long long timeout_ns = 500000000LL;
    while (!stop_flag) {
        struct timespec timeout = {timeout_ns / 1000000000LL, timeout_ns % 1000000000LL};
        int n = epoll_pwait2(ep, events, 256, &timeout, NULL);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_CONN) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            struct conn *c = &conns[fd];
            int closed = 0;
            for (;;) {
                if (c->cap - c->len < 65536) {
                    size_t cap = c->cap ? c->cap * 2 : 131072;
                    if (cap > BUF_MAX) {
                        closed = 1;
                        break;
                    }
                    c->buf = realloc(c->buf, cap);
                    c->cap = cap;
                }
                ssize_t r = read(fd, c->buf + c->len, c->cap - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    closed = 1;
                break;
            }
            /* Answer every complete request in the buffer (pipelined ones too), in one write. */
            size_t replies = 0;
            long used;
            while (c->len > 0 && (used = request_length(c)) != 0) {
                if (used < 0) {
                    closed = 1;
                    break;
                }
                memmove(c->buf, c->buf + used, c->len - (size_t)used);
                c->len -= (size_t)used;
                replies++;
            }
            for (size_t k = 0; k < replies && !closed; k++) {
                if (delay_ns > 0 && held_count < MAX_HELD) {
                    held[(held_head + held_count) % MAX_HELD] = (struct held){fd, c->gen, now_ns() + delay_ns};
                    held_count++;
                } else if (!answer(fd)) { /* no delay, or (never with a benchmark's few requests in flight) a full ring */
                    closed = 1;
                }
            }
            if (closed)
                drop(ep, fd);
        }
        timeout_ns = answer_due(ep);
    }
    printf("sink: answered %llu requests\n", answered);
    return 0;
}
