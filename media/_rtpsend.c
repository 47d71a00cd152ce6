/* One forwarded frame to one viewer: RTP headers written, SRTP-protected and handed to
 * the kernel in one call from Python (media.rtpsend wraps it; media.rtpout decides when).
 *
 * The Python send path spends, per packet per viewer, ~2-3 µs building the packet and
 * ~1-2 µs in pylibsrtp's wrapper around the same libsrtp call made here. This does the
 * packets of a frame in a loop with the GIL held (every step is short and never blocks:
 * the socket is non-blocking), so a frame costs one Python call per viewer.
 *
 * libsrtp is not linked here: the caller passes the address of `srtp_protect` from the
 * libsrtp that pylibsrtp carries (the one aiortc's session was created with) and the
 * viewer's `srtp_t`, so the stream state (rollover counter, keys) stays in that one
 * session and RTCP, retransmissions and this path all protect with it.
 *
 * Invariants:
 * - Packets leave in order; the first one the kernel refuses and every later one are
 *   returned protected, in order, so the caller can queue them behind asyncio's buffer.
 * - Equal-sized packets in a row (a video frame's: all but a shorter last one) go in one
 *   sendmsg with UDP_SEGMENT when `segment` is true; the receiver still gets one datagram
 *   per packet. A refusal says whether it was a segmented write, so the caller can turn
 *   segmentation off for the process.
 * - Nothing is written to a packet past its slot: a payload that does not fit raises
 *   ValueError before anything is protected or sent.
 * - The static packet buffers are used only while the GIL is held, which it is for the
 *   whole call: no two calls ever share them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h */
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define SLOT 2048          /* bytes per packet buffer */
#define TRAILER_ROOM 144   /* SRTP_MAX_TRAILER_LEN: auth tag + MKI, as pylibsrtp allows */
#define MAX_SEGMENTS 32    /* per segmented write, well inside the kernel's 64 */
#define STATIC_PACKETS 64  /* frames with more packets allocate their buffers */

typedef int (*protect_fn)(void *session, void *packet, int *length);

enum descriptor { NONE = 0, VP8 = 1, VP8_LAYERED = 2 };

static unsigned char static_slots[STATIC_PACKETS][SLOT];
static int static_lengths[STATIC_PACKETS];

static inline void put16(unsigned char *p, unsigned long v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put32(unsigned char *p, unsigned long v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* How many packets from `start` one write carries: equal sizes and at most one shorter
 * last, at most MAX_SEGMENTS; one when segmentation is off. */
static Py_ssize_t batch_end(const int *lengths, Py_ssize_t start, Py_ssize_t n, int segment) {
    if (!segment)
        return start + 1;
    Py_ssize_t limit = n < start + MAX_SEGMENTS ? n : start + MAX_SEGMENTS;
    Py_ssize_t end = start + 1;
    while (end < limit && lengths[end] == lengths[start])
        end++;
    if (end < limit && lengths[end] < lengths[start])
        end++;
    return end;
}

static ssize_t write_batch(int fd, const struct sockaddr *addr, socklen_t addrlen,
                           unsigned char (*slots)[SLOT], const int *lengths,
                           Py_ssize_t start, Py_ssize_t end) {
    if (end - start == 1)
        return sendto(fd, slots[start], (size_t)lengths[start], 0, addr, addrlen);
    struct iovec iov[MAX_SEGMENTS];
    for (Py_ssize_t i = start; i < end; i++) {
        iov[i - start].iov_base = slots[i];
        iov[i - start].iov_len = (size_t)lengths[i];
    }
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = (void *)addr;
    msg.msg_namelen = addrlen;
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)(end - start);
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t size = (uint16_t)lengths[start];
    memcpy(CMSG_DATA(cm), &size, sizeof size);
    return sendmsg(fd, &msg, 0);
}

/* send_frame(fd, sockaddr, protect, session, chunks, marker_pt, seq, timestamp, ssrc,
 *            extensions, descriptor, picture_id, layer, segment)
 *   -> None (all sent) | (errno, segmented, [protected packets not sent])
 *
 * chunks: list of bytes, the frame's payloads without descriptor; marker_pt: the payload
 * type (the marker bit is set here on the last packet); seq: the first packet's sequence
 * number; extensions: the header extension block ("" for none); descriptor: 0 none,
 * 1 VP8, 2 VP8 with temporal layer `layer`.
 */
static PyObject *send_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "send_frame takes 14 arguments");
        return NULL;
    }
    int fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    const char *addr;
    Py_ssize_t addrlen;
    if (PyBytes_AsStringAndSize(args[1], (char **)&addr, &addrlen) < 0)
        return NULL;
    protect_fn protect = (protect_fn)PyLong_AsVoidPtr(args[2]);
    void *session = PyLong_AsVoidPtr(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (protect == NULL || session == NULL) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        return NULL;
    }
    PyObject *chunks = args[4];
    if (!PyList_Check(chunks)) {
        PyErr_SetString(PyExc_TypeError, "chunks must be a list of bytes");
        return NULL;
    }
    unsigned long pt = PyLong_AsUnsignedLong(args[5]);
    unsigned long seq = PyLong_AsUnsignedLong(args[6]);
    unsigned long ts = PyLong_AsUnsignedLong(args[7]);
    unsigned long ssrc = PyLong_AsUnsignedLong(args[8]);
    if (PyErr_Occurred())
        return NULL;
    const char *ext;
    Py_ssize_t extlen;
    if (PyBytes_AsStringAndSize(args[9], (char **)&ext, &extlen) < 0)
        return NULL;
    long descriptor = PyLong_AsLong(args[10]);
    unsigned long picture = PyLong_AsUnsignedLong(args[11]);
    long layer = PyLong_AsLong(args[12]);
    int segment = PyObject_IsTrue(args[13]);
    if (PyErr_Occurred() || segment < 0)
        return NULL;
    if (extlen % 4 != 0 || extlen > 256 || pt > 127 || descriptor < NONE ||
        descriptor > VP8_LAYERED) {
        PyErr_SetString(PyExc_ValueError,
                        "bad header extension block, payload type or descriptor kind");
        return NULL;
    }

    Py_ssize_t n = PyList_GET_SIZE(chunks);
    if (n == 0)
        Py_RETURN_NONE;
    unsigned char (*slots)[SLOT] = static_slots;
    int *lengths = static_lengths;
    if (n > STATIC_PACKETS) {
        slots = malloc((size_t)n * SLOT);
        lengths = malloc((size_t)n * sizeof(int));
        if (slots == NULL || lengths == NULL) {
            free(slots);
            free(lengths);
            return PyErr_NoMemory();
        }
    }
    PyObject *result = NULL;
    size_t prefix = descriptor == VP8 ? 4 : descriptor == VP8_LAYERED ? 5 : 0;
    size_t head = 12 + (size_t)extlen;

    /* Every payload is checked before any is protected: a frame refused half-way would
     * leave sequence numbers protected that the caller then uses again (keystream
     * reuse under AES-CM, aiortc allowing repeated transmissions). */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *chunk = PyList_GET_ITEM(chunks, i);
        if (!PyBytes_Check(chunk)) {
            PyErr_SetString(PyExc_TypeError, "chunks must be a list of bytes");
            goto done;
        }
        if (head + prefix + (size_t)PyBytes_GET_SIZE(chunk) + TRAILER_ROOM > SLOT) {
            PyErr_SetString(PyExc_ValueError, "RTP payload too large for one packet");
            goto done;
        }
    }
    /* Then build and protect every packet, and only then send. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *chunk = PyList_GET_ITEM(chunks, i);
        size_t size = (size_t)PyBytes_GET_SIZE(chunk);
        unsigned char *p = slots[i];
        int last = i == n - 1;
        p[0] = extlen ? 0x90 : 0x80;
        p[1] = (unsigned char)((last ? 0x80 : 0) | pt);
        put16(p + 2, (seq + (unsigned long)i) & 0xFFFF);
        put32(p + 4, ts);
        put32(p + 8, ssrc);
        memcpy(p + 12, ext, (size_t)extlen);
        unsigned char *d = p + head;
        if (descriptor != NONE) { /* RFC 7741: X|S, I(|T), M|picture id (15 bits) */
            d[0] = i == 0 ? 0x90 : 0x80;
            d[1] = descriptor == VP8 ? 0x80 : 0xA0;
            put16(d + 2, 0x8000 | (picture & 0x7FFF));
            if (descriptor == VP8_LAYERED)
                d[4] = (unsigned char)(((layer & 3) << 6) | 0x20);
        }
        memcpy(d + prefix, PyBytes_AS_STRING(chunk), size);
        int length = (int)(head + prefix + size);
        int status = protect(session, p, &length);
        if (status != 0) {
            PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (status %d)", status);
            goto done;
        }
        lengths[i] = length;
    }

    /* Then send, in order. */
    union {
        struct sockaddr sa;
        struct sockaddr_storage ss;
    } to;
    if (addrlen <= 0 || (size_t)addrlen > sizeof to.ss) {
        PyErr_SetString(PyExc_ValueError, "bad socket address");
        goto done;
    }
    memcpy(&to.ss, addr, (size_t)addrlen);
    Py_ssize_t start = 0;
    while (start < n) {
        Py_ssize_t end = batch_end(lengths, start, n, segment);
        if (write_batch(fd, &to.sa, (socklen_t)addrlen, slots, lengths, start, end) < 0) {
            int error = errno;
            PyObject *left = PyList_New(n - start);
            if (left == NULL)
                goto done;
            for (Py_ssize_t i = start; i < n; i++) {
                PyObject *packet = PyBytes_FromStringAndSize((char *)slots[i], lengths[i]);
                if (packet == NULL) {
                    Py_DECREF(left);
                    goto done;
                }
                PyList_SET_ITEM(left, i - start, packet);
            }
            result = Py_BuildValue("(iON)", error, end - start > 1 ? Py_True : Py_False, left);
            goto done;
        }
        start = end;
    }
    result = Py_NewRef(Py_None);
done:
    if (slots != static_slots) {
        free(slots);
        free(lengths);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL,
     "Write, protect and send one frame's RTP packets to one viewer (see media.rtpsend)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "media._rtpsend",
    "A forwarded frame's packets to one viewer in one call (see media.rtpsend).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rtpsend(void) { return PyModule_Create(&module); }
