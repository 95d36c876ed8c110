// vipmux packet I/O for the userspace MUX engine: a TUN device for VIP traffic in, raw IP
// sockets with sendmmsg for VXLAN out, and AF_PACKET with recvmmsg (the measured
// alternative, see docs/dataplane.md). Batched, non-blocking, driven by a uv_poll on the
// loop of the calling environment (the forwarding worker_thread).
//
// Packets live in caller-owned arenas: one Uint8Array cut into fixed-size slots plus an
// Int32Array of lengths, so a batch crosses the JS/C boundary once and nothing is copied
// or allocated per packet.
//
// Pure N-API, context-aware: no mutable globals; every poll handle belongs to the loop of
// the environment that created it and is closed by an environment cleanup hook if that
// environment (a worker) goes away first.
//
// Registration: vipmux_native.c's NAPI_MODULE_INIT calls `vipmux_packet_io_init(env,
// exports)`: one addon, build/Release/vipmux_native.node.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "napi_util.h"

// Largest batch one call handles (bounds the stack arrays below).
#define PIO_MAX_BATCH 256
// Transmit queue of the TUN device (kernel → reader), in packets.
#define PIO_TUN_QLEN 2048

static napi_value pio_int(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

static int pio_get_int(napi_env env, napi_value v, int32_t* out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

// A typed array's bytes (any element type).
static int pio_typed(napi_env env, napi_value v, napi_typedarray_type want, void** data,
                     size_t* count) {
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, data, &ab, &offset) != napi_ok)
    return 0;
  if (type != want) return 0;
  *count = length;
  return 1;
}

// Sets a link's MTU (when > 0) and brings it up (when up), through the classic ioctls.
static int pio_link_up(const char* name, int mtu, int up) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  int err = 0;
  if (mtu > 0) {
    ifr.ifr_mtu = mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) != 0) err = errno;
    // A TUN device queues 500 packets by default: a few ms at 100 kpps. Room for one
    // scheduling hiccup of the reader without dropping.
    ifr.ifr_qlen = PIO_TUN_QLEN;
    if (!err && ioctl(s, SIOCSIFTXQLEN, &ifr) != 0) err = errno;
  }
  if (up && !err && ioctl(s, SIOCGIFFLAGS, &ifr) != 0) err = errno;
  if (up && !err) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) err = errno;
  }
  close(s);
  return err;
}

// tunOpen(name, mtu) -> { fd, name }
// Creates (or attaches to) a TUN device: IFF_TUN | IFF_NO_PI, so reads and writes are bare
// IP packets; non-blocking; sets the MTU. The link stays down: linkUp brings it up once the
// caller has set its sysctls (e.g. no IPv6 link-local address, so no MLD/RS noise).
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ + 1] = "";
  size_t len = 0;
  int32_t mtu = 0;
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok ||
      len >= IFNAMSIZ || !pio_get_int(env, argv[1], &mtu)) {
    napi_throw_type_error(env, "EINVAL", "tunOpen(name: string (< 16 bytes), mtu: number)");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open(/dev/net/tun)", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "ioctl(TUNSETIFF)", err);
  }
  int err = pio_link_up(ifr.ifr_name, mtu, 0);
  if (err) {
    close(fd);
    return throw_errno(env, "ioctl(SIOCSIFMTU)", err);
  }
  napi_value obj, nv;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "fd", pio_int(env, fd));
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &nv);
  napi_set_named_property(env, obj, "name", nv);
  return obj;
}

// linkUp(name)
static napi_value link_up(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ + 1] = "";
  size_t len = 0;
  if (argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok ||
      len >= IFNAMSIZ) {
    napi_throw_type_error(env, "EINVAL", "linkUp(name: string)");
    return NULL;
  }
  int err = pio_link_up(name, 0, 1);
  if (err) return throw_errno(env, "ioctl(SIOCSIFFLAGS)", err);
  return NULL;
}

// rawOpen(family: 4 | 6, sndbufBytes) -> fd
// A raw socket that sends complete IP packets (IPPROTO_RAW: header included), so the
// forwarder's outer IP/UDP header, with its per-flow source port, goes out as built.
static napi_value raw_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family = 0, sndbuf = 0;
  if (argc < 2 || !pio_get_int(env, argv[0], &family) || !pio_get_int(env, argv[1], &sndbuf) ||
      (family != 4 && family != 6)) {
    napi_throw_type_error(env, "EINVAL", "rawOpen(family: 4 | 6, sndbufBytes: number)");
    return NULL;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  IPPROTO_RAW);
  if (fd < 0) return throw_errno(env, "socket(SOCK_RAW)", errno);
  if (sndbuf > 0) {
    // SO_SNDBUFFORCE ignores rmem_max when we have CAP_NET_ADMIN; fall back otherwise.
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  return pio_int(env, fd);
}

// packetOpen(ifname, rcvbufBytes) -> fd
// AF_PACKET/SOCK_DGRAM bound to one interface for IPv4 and IPv6: reads yield the IP packet
// without the link header (the measured alternative to TUN).
static napi_value packet_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ + 1] = "";
  size_t len = 0;
  int32_t rcvbuf = 0;
  if (argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok ||
      len >= IFNAMSIZ || !pio_get_int(env, argv[1], &rcvbuf)) {
    napi_throw_type_error(env, "EINVAL", "packetOpen(ifname, rcvbufBytes)");
    return NULL;
  }
  unsigned idx = if_nametoindex(name);
  if (!idx) return throw_errno(env, "if_nametoindex", errno ? errno : ENODEV);
  int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return throw_errno(env, "socket(AF_PACKET)", errno);
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  // Our own VXLAN output leaves through this interface too: do not copy it back to us.
  int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)idx;
  if (bind(fd, (struct sockaddr*)&sll, sizeof sll) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind(AF_PACKET)", err);
  }
  return pio_int(env, fd);
}

// Validates (arena, slotSize, lens, n) and returns the arena base, or NULL after throwing.
static uint8_t* pio_arena(napi_env env, napi_value* argv, int32_t* slot, int32_t** lens,
                          int32_t* n) {
  void* data;
  void* lens_data;
  size_t arena_len, lens_len;
  if (!pio_typed(env, argv[0], napi_uint8_array, &data, &arena_len) ||
      !pio_get_int(env, argv[1], slot) ||
      !pio_typed(env, argv[2], napi_int32_array, &lens_data, &lens_len) ||
      !pio_get_int(env, argv[3], n) || *slot <= 0 || *n < 0) {
    napi_throw_type_error(env, "EINVAL",
                          "(arena: Uint8Array, slotSize, lens: Int32Array, count) expected");
    return NULL;
  }
  if (*n > PIO_MAX_BATCH) *n = PIO_MAX_BATCH;
  if ((size_t)*n > lens_len) *n = (int32_t)lens_len;
  if ((size_t)*n * (size_t)*slot > arena_len) *n = (int32_t)(arena_len / (size_t)*slot);
  *lens = (int32_t*)lens_data;
  return (uint8_t*)data;
}

// readBatch(fd, arena, slotSize, lens, max) -> count
// Reads up to `max` packets, one per slot, until the fd would block (TUN has no recvmmsg:
// one read per packet, all in one call from JS). lens[i] = packet length; a packet longer
// than a slot arrives cut to the slot, lens[i] = slotSize + 1 marks it.
static napi_value read_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, slot, max;
  int32_t* lens;
  if (argc < 5 || !pio_get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "readBatch(fd, arena, slotSize, lens, max)");
    return NULL;
  }
  uint8_t* arena = pio_arena(env, argv + 1, &slot, &lens, &max);
  if (!arena) return NULL;
  int i = 0;
  while (i < max) {
    ssize_t r = read(fd, arena + (size_t)i * (size_t)slot, (size_t)slot);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || i > 0) break;
      return throw_errno(env, "read", errno);
    }
    // TUN truncates silently: a read that fills the slot may have been cut.
    lens[i] = (int32_t)r == slot ? slot + 1 : (int32_t)r;
    i++;
  }
  return pio_int(env, i);
}

// recvBatch(fd, arena, slotSize, lens, max, ifindexes | null) -> count
// recvmmsg on an AF_PACKET (or any datagram) socket: one syscall per batch. Packets the
// host sent itself (PACKET_OUTGOING) and non-IP frames (ARP, LLDP...) are skipped (len 0).
static napi_value recv_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, slot, max;
  int32_t* lens;
  if (argc < 5 || !pio_get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "recvBatch(fd, arena, slotSize, lens, max)");
    return NULL;
  }
  uint8_t* arena = pio_arena(env, argv + 1, &slot, &lens, &max);
  if (!arena) return NULL;
  if (max == 0) return pio_int(env, 0);
  struct mmsghdr msgs[PIO_MAX_BATCH];
  struct iovec iov[PIO_MAX_BATCH];
  struct sockaddr_ll from[PIO_MAX_BATCH];
  memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)max);
  for (int i = 0; i < max; i++) {
    iov[i].iov_base = arena + (size_t)i * (size_t)slot;
    iov[i].iov_len = (size_t)slot;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int n;
  do n = recvmmsg(fd, msgs, (unsigned)max, MSG_DONTWAIT | MSG_TRUNC, NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return pio_int(env, 0);
    return throw_errno(env, "recvmmsg", errno);
  }
  for (int i = 0; i < n; i++) {
    int32_t len = (int32_t)msgs[i].msg_len;
    if (from[i].sll_pkttype == PACKET_OUTGOING) len = 0;
    if (from[i].sll_protocol != htons(ETH_P_IP) && from[i].sll_protocol != htons(ETH_P_IPV6))
      len = 0;
    lens[i] = len > slot ? slot + 1 : len;
  }
  return pio_int(env, n);
}

// Fills a destination sockaddr from the IP header at p (len bytes). Returns its length or 0.
static socklen_t pio_dst_of(const uint8_t* p, int32_t len, struct sockaddr_storage* ss) {
  memset(ss, 0, sizeof(struct sockaddr_in6));
  if (len >= 20 && (p[0] >> 4) == 4) {
    struct sockaddr_in* in4 = (struct sockaddr_in*)ss;
    in4->sin_family = AF_INET;
    memcpy(&in4->sin_addr, p + 16, 4);
    return sizeof *in4;
  }
  if (len >= 40 && (p[0] >> 4) == 6) {
    struct sockaddr_in6* in6 = (struct sockaddr_in6*)ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, p + 24, 16);
    return sizeof *in6;
  }
  return 0;
}

// Sends msgs[0, n) with sendmmsg, skipping over a packet the kernel refuses so one bad
// packet does not stall the rest. Returns packets sent; *last_err gets the last errno.
static int pio_send_all(int fd, struct mmsghdr* msgs, int n, int* last_err) {
  int sent = 0, i = 0;
  while (i < n) {
    int r = sendmmsg(fd, msgs + i, (unsigned)(n - i), MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      *last_err = errno;
      i++;  // the packet at i failed: drop it, go on with the next
      continue;
    }
    sent += r;
    i += r;
  }
  return sent;
}

// sendBatch(fd4, fd6, arena, slotSize, lens, count, result: Int32Array(2)) -> sent
// Sends `count` complete IP packets (one per slot) through the raw socket of their
// family, in two sendmmsg runs. result[0] = packets sent, result[1] = last errno (0: none).
// Packets with len <= 0 or an unknown version are skipped (not sent, not errors).
static napi_value send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd4, fd6, slot, count;
  int32_t* lens;
  void* res_data;
  size_t res_len;
  if (argc < 7 || !pio_get_int(env, argv[0], &fd4) || !pio_get_int(env, argv[1], &fd6) ||
      !pio_typed(env, argv[6], napi_int32_array, &res_data, &res_len) || res_len < 2) {
    napi_throw_type_error(env, "EINVAL",
                          "sendBatch(fd4, fd6, arena, slotSize, lens, count, result)");
    return NULL;
  }
  uint8_t* arena = pio_arena(env, argv + 2, &slot, &lens, &count);
  if (!arena) return NULL;
  int32_t* result = (int32_t*)res_data;
  struct mmsghdr m4[PIO_MAX_BATCH], m6[PIO_MAX_BATCH];
  struct iovec iov[PIO_MAX_BATCH];
  struct sockaddr_storage dst[PIO_MAX_BATCH];
  int n4 = 0, n6 = 0;
  for (int i = 0; i < count; i++) {
    int32_t len = lens[i];
    if (len <= 0 || len > slot) continue;
    uint8_t* p = arena + (size_t)i * (size_t)slot;
    socklen_t sl = pio_dst_of(p, len, &dst[i]);
    if (!sl) continue;
    iov[i].iov_base = p;
    iov[i].iov_len = (size_t)len;
    struct mmsghdr* m = sl == sizeof(struct sockaddr_in) ? &m4[n4++] : &m6[n6++];
    memset(m, 0, sizeof *m);
    m->msg_hdr.msg_name = &dst[i];
    m->msg_hdr.msg_namelen = sl;
    m->msg_hdr.msg_iov = &iov[i];
    m->msg_hdr.msg_iovlen = 1;
  }
  int err = 0, sent = 0;
  if (n4) {
    if (fd4 >= 0) sent += pio_send_all(fd4, m4, n4, &err);
    else err = EAFNOSUPPORT;
  }
  if (n6) {
    if (fd6 >= 0) sent += pio_send_all(fd6, m6, n6, &err);
    else err = EAFNOSUPPORT;
  }
  result[0] = sent;
  result[1] = err;
  return pio_int(env, sent);
}

// closeFd(fd)
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !pio_get_int(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "closeFd(fd)");
    return NULL;
  }
  if (fd >= 0 && close(fd) != 0) return throw_errno(env, "close", errno);
  return NULL;
}

// ---------------------------------------------------------------------------------------
// Readiness: a uv_poll on the caller's loop calls back (no arguments) when the fd is
// readable. Level-triggered: a callback that handles one batch and returns is called again
// on the next loop iteration while packets remain, so timers and messages interleave.

typedef struct {
  napi_env env;
  uv_poll_t poll;
  int active;
  int closing;
  napi_ref callback;
  napi_async_context actx;
} pio_poll;

static void pio_poll_cleanup_hook(void* arg);

static void pio_poll_free(uv_handle_t* h) { free(h->data); }

static void pio_poll_on_ready(uv_poll_t* h, int status, int events) {
  (void)events;
  pio_poll* p = (pio_poll*)h->data;
  if (!p->active || !p->callback) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, arg;
  napi_get_reference_value(env, p->callback, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, status < 0 ? -status : 0, &arg);
  napi_make_callback(env, p->actx, global, cb, 1, &arg, NULL);
  // The callback must not throw (the TypeScript side catches everything and reports it);
  // should it, the exception is cleared here rather than left pending on the environment.
  // (napi_fatal_exception from this uv callback crashes a terminating worker.)
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
  }
  napi_close_handle_scope(env, scope);
}

// Stops polling and releases the JS references; the struct is freed when uv closes it.
// From the environment's cleanup hook no N-API call is made: the environment is going away
// and takes its references with it.
static void pio_poll_stop_now(pio_poll* p, int from_cleanup) {
  if (p->closing) return;
  p->closing = 1;
  p->active = 0;
  uv_poll_stop(&p->poll);
  if (!from_cleanup) {
    napi_remove_env_cleanup_hook(p->env, pio_poll_cleanup_hook, p);
    if (p->callback) {
      napi_delete_reference(p->env, p->callback);
      napi_async_destroy(p->env, p->actx);
    }
  }
  p->callback = NULL;
  uv_close((uv_handle_t*)&p->poll, pio_poll_free);
}

static void pio_poll_cleanup_hook(void* arg) { pio_poll_stop_now((pio_poll*)arg, 1); }

// pollStart(fd, callback(errno)) -> handle
static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype t;
  if (argc < 2 || !pio_get_int(env, argv[0], &fd) ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "pollStart(fd, callback)");
    return NULL;
  }
  uv_loop_t* loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  pio_poll* p = (pio_poll*)calloc(1, sizeof *p);
  if (!p) return throw_errno(env, "pollStart", ENOMEM);
  p->env = env;
  p->poll.data = p;
  int r = uv_poll_init(loop, &p->poll, fd);
  if (r != 0) {
    free(p);
    return throw_errno(env, "uv_poll_init", -r);
  }
  napi_value obj, resource_name;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, "vipmux.packetPoll", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, obj, resource_name, &p->actx);
  napi_create_reference(env, argv[1], 1, &p->callback);
  p->active = 1;
  uv_poll_start(&p->poll, UV_READABLE, pio_poll_on_ready);
  napi_add_env_cleanup_hook(env, pio_poll_cleanup_hook, p);
  // No finalizer: the poll holds its callback strongly, so it lives until pollStop (which
  // removes the wrap, making a second pollStop a no-op) or the environment's cleanup hook;
  // uv_close frees the struct.
  napi_wrap(env, obj, p, NULL, NULL, NULL);
  return obj;
}

// pollStop(handle): idempotent. The fd stays open (closeFd closes it).
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  if (argc < 1 || napi_remove_wrap(env, argv[0], &data) != napi_ok || !data) return NULL;
  pio_poll_stop_now((pio_poll*)data, 0);
  return NULL;
}

// ---------------------------------------------------------------------------------------

napi_value vipmux_packet_io_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"linkUp", NULL, link_up, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rawOpen", NULL, raw_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetOpen", NULL, packet_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readBatch", NULL, read_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvBatch", NULL, recv_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendBatch", NULL, send_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok)
    return NULL;
  napi_value max;
  napi_create_int32(env, PIO_MAX_BATCH, &max);
  napi_set_named_property(env, exports, "PACKET_IO_MAX_BATCH", max);
  return exports;
}
