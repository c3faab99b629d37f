/*
 * Send and receive loops of lpmbench's C data plane: system calls in, plain integers out.
 * Same behaviour as lpmbench/dataplane/_python.py; see _lpmbench.c for the contract.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include "loops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/sendfile.h>
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MSG_NOSIGNAL
/* AIX has no MSG_NOSIGNAL; CPython ignores SIGPIPE at start-up, so a reset peer is still EPIPE. */
#define MSG_NOSIGNAL 0
#endif
#ifndef F_DUPFD_CLOEXEC
#define F_DUPFD_CLOEXEC F_DUPFD
#endif
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif

#if defined(__GNUC__) || defined(__clang__)
#define STORE_RELAXED(slot, value) __atomic_store_n((slot), (value), __ATOMIC_RELAXED)
#define LOAD_RELAXED(slot) __atomic_load_n((slot), __ATOMIC_RELAXED)
#else
#define STORE_RELAXED(slot, value) (*(volatile uint64_t *)(slot) = (value))
#define LOAD_RELAXED(slot) (*(volatile uint64_t *)(slot))
#endif

const char *const METHOD_NAMES[] = {"auto", "zerocopy", "sendfile", "send"};

/*
 * AUTO_POLICY: what method="auto" picks (the Python twin follows the same policy).
 *
 * Measured on this project's 2-vCPU Linux 6.18 test VM, 1 MiB payload, 3 s runs, median of 2,
 * Gb/s (CPU seconds per GB moved, whole process):
 *
 *   loopback, copying receiver   1 stream               4 streams
 *     send                       44.3 (0.25)            56.2 (0.23)
 *     sendfile                   34.9 (0.32)            39.6 (0.35)
 *     zerocopy                   23.3 (0.39)            31.7 (0.40)
 *   loopback, MSG_TRUNC receiver
 *     send                       34.9 (0.20)            73.9 (0.16)
 *     sendfile                   33.6 (0.31)            49.6 (0.30)
 *     zerocopy                   29.5 (0.32)            20.6 (0.35)
 *   veth between two namespaces (sender CPU only; runs vary by 2x)
 *     send                       18.2 (0.13)            17.5-20.5 (0.18)
 *     sendfile                   16.0 (0.21)            16.7-17.7 (0.29)
 *     zerocopy                   7.7-28 (0.13-0.26)     13.0-21.8 (0.18)
 *
 * When the receiver is on the same host (loopback, or veth into another namespace) the kernel copies
 * MSG_ZEROCOPY data anyway and flags every completion SO_EE_CODE_ZEROCOPY_COPIED; the notification
 * round trips then make zerocopy the slowest, and sendfile's per-page references cost more CPU than
 * one copy.  Plain send wins there.  Across a real NIC with scatter-gather the copy is really
 * avoided, which is what MSG_ZEROCOPY is for (large sends; see the kernel's msg_zerocopy.rst), and
 * an MSP pair is exactly that.  So:
 *   - peer on a loopback address: send;
 *   - otherwise zerocopy, but only while the kernel keeps it zero-copy: once ZEROCOPY_PROBE_SENDS
 *     completions are in and most of them were copied anyway (a local namespace, a device without
 *     scatter-gather), the run switches to send and reports "send".  Switching to sendfile instead
 *     was measured between two lab namespaces (veth, MTU 9000, TSO/GSO off): at 1 stream sendfile
 *     moved 12.5-13.0 Gb/s against 10.1-10.6 for send, but at 4 streams (LPM's default) send moved
 *     21.4-21.9 against 20.4-20.7 with 3.5 CPU s against 4.9 (both agents), so send it is;
 *   - zerocopy refused by the kernel (older than 4.14, not TCP): sendfile, then send.
 */
enum { ZEROCOPY_PROBE_SENDS = 16 };

/*
 * At most this many MSG_ZEROCOPY sends may wait for their completion notification.  Each pins the
 * payload pages and holds socket option memory (optmem_max); past it we reap before sending again.
 */
enum { ZEROCOPY_MAX_INFLIGHT = 64 };

static int64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static int should_stop(const stream_loop *loop) {
    return LOAD_RELAXED(&loop->slots[SLOT_STOP]) != 0 || monotonic_ns() >= loop->deadline_ns;
}

/* Wait up to one poll slice for `events`: the revents seen (0: none), or -1 with errno. */
static int wait_slice(const stream_loop *loop, short events) {
    int64_t now = monotonic_ns();
    if (loop->deadline_ns <= now)
        return 0;
    /* Clamp before rounding up: a far-off deadline (near INT64_MAX) must not overflow. */
    int64_t remaining_ns = loop->deadline_ns - now;
    if (remaining_ns > (int64_t)POLL_SLICE_MS * 1000000)
        remaining_ns = (int64_t)POLL_SLICE_MS * 1000000;
    int64_t slice_ms = (remaining_ns + 999999) / 1000000;
    struct pollfd pfd;
    pfd.fd = loop->fd;
    pfd.events = events;
    pfd.revents = 0;
    if (slice_ms <= 0)
        return 0;
    if (slice_ms > POLL_SLICE_MS)
        slice_ms = POLL_SLICE_MS;
    return poll(&pfd, 1, (int)slice_ms) < 0 ? -1 : pfd.revents;
}

static void count_bytes(stream_loop *loop, ssize_t moved) {
    loop->total += (uint64_t)moved;
    STORE_RELAXED(&loop->slots[SLOT_BYTES], loop->total);
}

/* ------------------------------------------------------------------ zerocopy completions */

#ifdef HAVE_ZEROCOPY
static void zerocopy_note(stream_loop *loop, const struct sock_extended_err *ee) {
    if (ee->ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee->ee_errno != 0)
        return;
    /* One notification covers the inclusive range [ee_info, ee_data] of 32-bit send ids. */
    uint64_t sends = (uint64_t)(uint32_t)(ee->ee_data - ee->ee_info) + 1;
    loop->zc_completed += sends;
    if (ee->ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
        loop->zc_copied += sends;
}

/* Drain the error queue: 1 when some send completed, 0 when none, -1 with errno on failure. */
static int zerocopy_reap(stream_loop *loop) {
    union { char buf[256]; struct cmsghdr align; } control; /* cmsg headers need cmsghdr alignment */
    uint64_t before = loop->zc_completed;
    for (;;) {
        struct msghdr msg;
        memset(&msg, 0, sizeof msg);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        if (recvmsg(loop->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return loop->zc_completed != before;
            return -1;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
            struct sock_extended_err ee;
            int is_recverr = (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR)
                             || (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
            if (is_recverr && cm->cmsg_len >= CMSG_LEN(sizeof ee)) {
                memcpy(&ee, CMSG_DATA(cm), sizeof ee);
                zerocopy_note(loop, &ee);
            }
        }
    }
}

/* Too many pinned sends, or ENOBUFS: reap, and wait one slice for a notification if none was there. */
static int zerocopy_make_room(stream_loop *loop) {
    int reaped = zerocopy_reap(loop);
    if (reaped != 0)
        return reaped < 0 ? -1 : 0;
    if (wait_slice(loop, 0) < 0) /* poll() always reports POLLERR, which a queued notification raises */
        return -1;
    return zerocopy_reap(loop) < 0 ? -1 : 0;
}

/* "auto": if the kernel copies anyway (see AUTO_POLICY), plain send is cheaper. */
static void zerocopy_judge(stream_loop *loop) {
    if (!loop->zc_probing || loop->zc_completed < ZEROCOPY_PROBE_SENDS)
        return;
    loop->zc_probing = 0;
    if (loop->zc_copied * 2 > loop->zc_completed)
        loop->method = METHOD_SEND;
}

/* Sends still pinned.  Late notifications of an earlier call on this socket may make completed > issued. */
static uint64_t zerocopy_inflight(const stream_loop *loop) {
    return loop->zc_issued > loop->zc_completed ? loop->zc_issued - loop->zc_completed : 0;
}

/* Before a send: 1 when the send may go ahead, 0 to go round the loop again, -1 with errno. */
static int zerocopy_gate(stream_loop *loop) {
    zerocopy_judge(loop);
    if (loop->method != METHOD_ZEROCOPY || zerocopy_inflight(loop) < ZEROCOPY_MAX_INFLIGHT)
        return 1;
    return zerocopy_make_room(loop) < 0 ? -1 : 0;
}
#endif

/* ------------------------------------------------------------------ loops */

static ssize_t send_once(stream_loop *loop, size_t want) {
    switch (loop->method) {
#ifdef HAVE_SENDFILE_MEMFD
    case METHOD_SENDFILE: {
        off_t offset = 0;
        /* sendfile has no MSG_NOSIGNAL: a reset peer is EPIPE because CPython ignores SIGPIPE. */
        return sendfile(loop->fd, loop->memfd, &offset, want);
    }
#endif
#ifdef HAVE_ZEROCOPY
    case METHOD_ZEROCOPY: {
        ssize_t sent = send(loop->fd, loop->zc_region, want, MSG_NOSIGNAL | MSG_ZEROCOPY);
        if (sent > 0)
            loop->zc_issued++;
        return sent;
    }
#endif
    default:
        return send(loop->fd, loop->data, want, MSG_NOSIGNAL);
    }
}

/* Socket full: wait a slice; zerocopy notifications also wake poll() and are reaped here. */
static int wait_writable(stream_loop *loop) {
    int revents = wait_slice(loop, POLLOUT);
    if (revents < 0)
        return -1;
#ifdef HAVE_ZEROCOPY
    if (loop->zc_region != NULL && (revents & POLLERR) && zerocopy_reap(loop) < 0)
        return -1;
#endif
    return 0;
}

static loop_status failed(stream_loop *loop) {
    if (errno == EINTR)
        return LOOP_EINTR;
    loop->saved_errno = errno;
    return LOOP_ERROR;
}

loop_status send_loop(stream_loop *loop) {
    while (!should_stop(loop) && (loop->max_bytes == 0 || loop->total < loop->max_bytes)) {
#ifdef HAVE_ZEROCOPY
        if (loop->zc_region != NULL) {
            int gate = zerocopy_gate(loop);
            if (gate <= 0) {
                if (gate < 0)
                    return failed(loop);
                continue;
            }
        }
#endif
        size_t want = loop->size;
        if (loop->max_bytes != 0 && loop->max_bytes - loop->total < want)
            want = (size_t)(loop->max_bytes - loop->total);
        ssize_t sent = send_once(loop, want);
        if (sent > 0) {
            count_bytes(loop, sent);
        } else if (sent == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_writable(loop) < 0)
                return failed(loop);
#ifdef HAVE_ZEROCOPY
        } else if (errno == ENOBUFS && loop->method == METHOD_ZEROCOPY) {
            if (zerocopy_make_room(loop) < 0) /* out of option memory for notifications */
                return failed(loop);
#endif
        } else {
            return failed(loop);
        }
    }
    return LOOP_DONE;
}

loop_status recv_loop(stream_loop *loop) {
    while (!should_stop(loop)) {
        ssize_t received = recv(loop->fd, loop->buffer, loop->buffer_size, loop->recv_flags);
        if (received > 0) {
            count_bytes(loop, received);
        } else if (received == 0) {
            break; /* EOF */
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return failed(loop);
        } else if (wait_slice(loop, POLLIN) < 0) {
            return failed(loop);
        }
    }
    return LOOP_DONE;
}

/* ------------------------------------------------------------------ socket and method set-up */

int claim_socket(int fd, int *flags) {
    int type;
    socklen_t length = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0) /* EBADF, ENOTSOCK */
        return -1;
    /* Our own descriptor: should the caller close or reuse its number meanwhile, the loop and the
     * flag restore below still reach this socket and no other. */
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0)
        return -1;
    *flags = fcntl(own, F_GETFL);
    if (*flags < 0 || (!(*flags & O_NONBLOCK) && fcntl(own, F_SETFL, *flags | O_NONBLOCK) < 0)) {
        int saved = errno;
        close(own);
        errno = saved;
        return -1;
    }
    return own;
}

void release_socket(int own, int flags) {
    int saved = errno;
    if (!(flags & O_NONBLOCK))
        (void)fcntl(own, F_SETFL, flags);
    close(own);
    errno = saved;
}

#ifdef HAVE_SENDFILE_MEMFD
/* Put the payload in an anonymous memory file, so sendfile() hands page references to the socket. */
static int prepare_sendfile(stream_loop *loop) {
    int memfd = (int)syscall(SYS_memfd_create, "lpmbench-payload", MFD_CLOEXEC);
    if (memfd < 0)
        return -1;
    for (size_t written = 0; written < loop->size;) {
        ssize_t n = write(memfd, loop->data + written, loop->size - written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            close(memfd);
            errno = saved;
            return -1;
        }
        written += (size_t)n;
    }
    loop->memfd = memfd;
    return 0;
}
#endif

#ifdef HAVE_ZEROCOPY
/*
 * MSG_ZEROCOPY pins the pages it sends until the peer acknowledges them, possibly after we return.
 * So it sends from a private anonymous copy of the payload: munmap() at the end drops only our
 * mapping, the kernel keeps its own page references, and no later allocation of this process can be
 * put on the wire by a send still in flight.
 */
static int prepare_zerocopy(stream_loop *loop) {
    int one = 1;
    if (setsockopt(loop->fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one) < 0)
        return -1;
    void *region = mmap(NULL, loop->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return -1;
    memcpy(region, loop->data, loop->size);
    loop->zc_region = region;
    /* Notifications left by an earlier call on this socket are not ours. */
    (void)zerocopy_reap(loop);
    loop->zc_completed = loop->zc_copied = 0;
    return 0;
}

#endif

/* Is the peer on this host by address?  Then every byte is copied into the receiver anyway. */
static int peer_is_loopback(int fd) {
    struct sockaddr_storage peer;
    socklen_t length = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &length) < 0)
        return 0;
    if (peer.ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&peer)->sin_addr.s_addr) >> 24) == 127;
    if (peer.ss_family == AF_INET6) {
        const struct in6_addr *v6 = &((const struct sockaddr_in6 *)&peer)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
    }
    return 1; /* AF_UNIX and friends never leave the host */
}

/* The methods "auto" tries, best first, per AUTO_POLICY; always ends with METHOD_SEND. */
static int auto_candidates(int fd, send_method *candidates) {
    int count = 0;
    if (!peer_is_loopback(fd)) {
#ifdef HAVE_ZEROCOPY
        candidates[count++] = METHOD_ZEROCOPY;
#endif
#ifdef HAVE_SENDFILE_MEMFD
        candidates[count++] = METHOD_SENDFILE;
#endif
    }
    candidates[count++] = METHOD_SEND;
    return count;
}

static int prepare_one(stream_loop *loop, send_method method) {
    loop->method = method;
    switch (method) {
#ifdef HAVE_ZEROCOPY
    case METHOD_ZEROCOPY:
        return prepare_zerocopy(loop);
#endif
#ifdef HAVE_SENDFILE_MEMFD
    case METHOD_SENDFILE:
        return prepare_sendfile(loop);
#endif
    default:
        return 0;
    }
}

int prepare_method(stream_loop *loop, send_method requested) {
    send_method candidates[3];
    if (requested != METHOD_AUTO)
        return prepare_one(loop, requested);
    int count = auto_candidates(loop->fd, candidates);
    for (int i = 0; i < count; i++) {
        if (prepare_one(loop, candidates[i]) == 0) {
            loop->zc_probing = loop->method == METHOD_ZEROCOPY;
            return 0;
        }
    }
    return -1; /* not reached: plain send needs no set-up */
}

void release_method(stream_loop *loop) {
    if (loop->memfd >= 0)
        close(loop->memfd);
    loop->memfd = -1;
#ifdef HAVE_ZEROCOPY
    if (loop->zc_region != NULL) {
        (void)zerocopy_reap(loop);
        munmap(loop->zc_region, loop->size);
        loop->zc_region = NULL;
    }
#endif
}
