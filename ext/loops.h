/*
 * The send and receive loops of lpmbench's C data plane, in plain C (no Python API), so they can
 * run with the GIL released.  _lpmbench.c wraps them for Python.
 */
#ifndef LPMBENCH_LOOPS_H
#define LPMBENCH_LOOPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#if defined(__linux__)
#include <linux/errqueue.h>
#include <sys/syscall.h>
#if defined(SYS_memfd_create)
#define HAVE_SENDFILE_MEMFD 1
#endif
#if defined(SO_ZEROCOPY) && defined(MSG_ZEROCOPY) && defined(SO_EE_ORIGIN_ZEROCOPY) \
    && defined(SO_EE_CODE_ZEROCOPY_COPIED)
#define HAVE_ZEROCOPY 1
#endif
#endif

/* The explicit methods this build supports, best first (exported as SEND_METHODS). */
#if defined(HAVE_ZEROCOPY) && defined(HAVE_SENDFILE_MEMFD)
#define SEND_METHOD_LIST "zerocopy, sendfile, send"
#elif defined(HAVE_SENDFILE_MEMFD)
#define SEND_METHOD_LIST "sendfile, send"
#else
#define SEND_METHOD_LIST "send"
#endif

enum { SLOT_BYTES = 0, SLOT_STOP = 1, COUNTER_SLOTS = 2, POLL_SLICE_MS = 100 };

typedef enum { METHOD_AUTO, METHOD_ZEROCOPY, METHOD_SENDFILE, METHOD_SEND } send_method;

extern const char *const METHOD_NAMES[];

/* Why a loop returned. */
typedef enum { LOOP_DONE, LOOP_ERROR, LOOP_EINTR } loop_status;

typedef struct {
    int fd;
    int64_t deadline_ns;   /* CLOCK_MONOTONIC */
    uint64_t max_bytes;    /* 0: unlimited */
    uint64_t *slots;       /* the caller's counters, written through the buffer protocol */
    uint64_t total;        /* bytes moved so far in this call */
    int saved_errno;       /* set with LOOP_ERROR */
    /* sender only */
    send_method method;
    const char *data;      /* the caller's payload */
    size_t size;
    int memfd;             /* sendfile source, -1 when unused */
    void *zc_region;       /* private copy of the payload for MSG_ZEROCOPY */
    int zc_probing;        /* "auto": still deciding whether the kernel copies anyway */
    uint64_t zc_issued;    /* MSG_ZEROCOPY sends that moved bytes */
    uint64_t zc_completed; /* of those, completions reaped */
    uint64_t zc_copied;    /* of those, completions the kernel had to copy after all */
    /* receiver only */
    char *buffer;
    size_t buffer_size;
    int recv_flags;
} stream_loop;

/* Both run without the GIL; after LOOP_EINTR the caller checks signals and calls again. */
loop_status send_loop(stream_loop *loop);
loop_status recv_loop(stream_loop *loop);

/*
 * fd must be a socket.  Returns a duplicate of it, non-blocking for the run, and stores the file
 * status flags to restore in *flags; -1 with errno on failure.  release_socket restores and closes
 * the duplicate (the caller's descriptor is never closed).
 */
int claim_socket(int fd, int *flags);
void release_socket(int own, int flags);

/* Resolve METHOD_AUTO and set the method up: 0, or -1 with errno when the kernel refuses it. */
int prepare_method(stream_loop *loop, send_method requested);
void release_method(stream_loop *loop);

#endif
