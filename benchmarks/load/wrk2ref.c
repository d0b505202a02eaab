/*
 * A wrk2-style constant-rate reference, for benchmarks/load/run.py.
 *
 *     cc -O2 -o wrk2ref wrk2ref.c && ./wrk2ref HOST PORT PATH RATE CONNECTIONS SECONDS
 *
 * wrk2's algorithm in one thread: each of CONNECTIONS keep-alive connections
 * sends on its own fixed schedule (RATE / CONNECTIONS requests a second,
 * connection i offset by i / RATE), and a request's latency runs from the
 * moment it was scheduled, not from when it was sent: a late answer delays the
 * next request on that connection, and that delay is charged to it (wrk2's
 * corrected latency). Waits use epoll_pwait2 with nanosecond timeouts and a
 * 1 ns timer slack, so the reference itself adds microseconds, not the
 * millisecond of an epoll_wait timeout. Every latency is kept and sorted:
 * percentiles are exact (HdrHistogram's rank rule), not bucketed.
 *
 * Prints one JSON object: requests, errors, seconds, p50 p90 p95 p99 p99_9 max.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFFER 65536

typedef struct {
    int fd;
    int busy;
    double due;
    size_t used;
    char buffer[BUFFER];
} connection;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double at_percentile(const double *sorted, long count, double percent) {
    long rank = (long)(percent * (double)count / 100.0 + 0.5);
    if (rank < 1) rank = 1;
    if (rank > count) rank = count;
    return sorted[rank - 1];
}

/* Bytes of one complete response at the start of the buffer, or 0 while incomplete. */
static size_t complete(const char *buffer, size_t used, int *status) {
    const char *end = memmem(buffer, used, "\r\n\r\n", 4);
    if (end == NULL) return 0;
    size_t head = (size_t)(end - buffer) + 4;
    long length = 0;
    for (const char *line = buffer; line < end; line++) {
        if ((line == buffer || line[-1] == '\n') && strncasecmp(line, "content-length:", 15) == 0) {
            length = strtol(line + 15, NULL, 10);
            break;
        }
    }
    if (used < head + (size_t)length) return 0;
    *status = atoi(buffer + 9);
    return head + (size_t)length;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE CONNECTIONS SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    double rate = atof(argv[4]), seconds = atof(argv[6]);
    int count = atoi(argv[5]);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

    char request[1024];
    int request_length = snprintf(request, sizeof request,
                                  "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: wrk2ref\r\n\r\n",
                                  path, host, port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *address;
    if (getaddrinfo(host, port, &hints, &address) != 0) {
        fprintf(stderr, "cannot resolve %s\n", host);
        return 1;
    }
    int poller = epoll_create1(0);
    connection *connections = calloc((size_t)count, sizeof(connection));
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
            perror("connect");
            return 1;
        }
        connections[i].fd = fd;
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(poller, EPOLL_CTL_ADD, fd, &event);
    }
    freeaddrinfo(address);

    long capacity = (long)(rate * seconds) + count + 16, recorded = 0, errors = 0;
    double *latencies = malloc(sizeof(double) * (size_t)capacity);
    double interval = (double)count / rate;
    double start = now() + 0.05, end = start + seconds, drain = end + 10.0;
    for (int i = 0; i < count; i++) connections[i].due = start + (double)i / rate;

    struct epoll_event events[256];
    for (;;) {
        double moment = now();
        int outstanding = 0;
        double next = drain;
        for (int i = 0; i < count; i++) {
            connection *c = &connections[i];
            if (!c->busy && c->due < end && c->due <= moment) {
                if (write(c->fd, request, (size_t)request_length) != request_length) {
                    perror("write");
                    return 1;
                }
                c->busy = 1;
            }
            if (c->busy) outstanding = 1;
            else if (c->due < end && c->due < next) next = c->due;
        }
        if (!outstanding && next >= drain) break;
        if (moment > drain) break;
        double wait = next - now();
        if (wait < 0) wait = 0;
        struct timespec timeout = {.tv_sec = (time_t)wait,
                                   .tv_nsec = (long)((wait - floor(wait)) * 1e9)};
        int ready = epoll_pwait2(poller, events, 256, &timeout, NULL);
        if (ready < 0 && errno != EINTR) {
            perror("epoll_pwait2");
            return 1;
        }
        for (int e = 0; e < ready; e++) {
            connection *c = &connections[events[e].data.u32];
            ssize_t got = read(c->fd, c->buffer + c->used, BUFFER - c->used);
            if (got <= 0) {
                fprintf(stderr, "connection closed\n");
                return 1;
            }
            double received = now();
            c->used += (size_t)got;
            int status = 0;
            size_t size;
            while (c->busy && (size = complete(c->buffer, c->used, &status)) > 0) {
                if (recorded < capacity) latencies[recorded++] = received - c->due;
                if (status < 200 || status >= 400) errors++;
                memmove(c->buffer, c->buffer + size, c->used - size);
                c->used -= size;
                c->busy = 0;
                c->due += interval;
            }
        }
    }
    qsort(latencies, (size_t)recorded, sizeof(double), compare);
    printf("{\"requests\": %ld, \"errors\": %ld, \"seconds\": %.3f", recorded, errors, seconds);
    const char *names[] = {"p50", "p90", "p95", "p99", "p99_9"};
    const double percents[] = {50, 90, 95, 99, 99.9};
    for (int i = 0; i < 5; i++) {
        printf(", \"%s\": %.6f", names[i],
               recorded ? at_percentile(latencies, recorded, percents[i]) : 0.0);
    }
    printf(", \"max\": %.6f}\n", recorded ? latencies[recorded - 1] : 0.0);
    return 0;
}
