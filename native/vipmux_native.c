// vipmux native addon: the few socket syscalls Node lacks.
//
// - integer socket options (IP_TTL, IP_MINTTL, IPV6_UNICAST_HOPS, IPV6_MINHOPCOUNT, ...);
// - TCP-MD5 signatures (RFC 2385) per peer address, on listening and connecting sockets;
// - a non-blocking TCP connect that applies MD5 / TTL / minimum TTL *before* the SYN
//   (RFC 5082 GTSM, RFC 2385) and completes through a uv_poll on the caller's loop;
// - a UDP socket that reports the received TTL / hop limit (BFD, RFC 5881 §5) and sends with
//   a fixed TTL.
// - sd_notify(3) datagrams to systemd's notification socket (sd_notify.c).
//
// Pure N-API (ABI-stable), context-aware (NAPI_MODULE_INIT, no mutable globals): the module
// loads in the main thread and in any number of worker_threads; every uv handle lives on the
// loop of the environment that created it and is closed by an environment cleanup hook if that
// environment goes away first.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include "napi_util.h"

#ifndef IPV6_MINHOPCOUNT
#define IPV6_MINHOPCOUNT 73
#endif
#ifndef IP_MINTTL
#define IP_MINTTL 21
#endif

static int get_int(napi_env env, napi_value v, int32_t* out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int get_string(napi_env env, napi_value v, char* buf, size_t size, size_t* len) {
  return napi_get_value_string_utf8(env, v, buf, size, len) == napi_ok;
}

// Parses a numeric IPv4 or IPv6 address into a sockaddr. Returns the family or 0.
static int parse_addr(const char* text, int port, struct sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in* in4 = (struct sockaddr_in*)ss;
  struct sockaddr_in6* in6 = (struct sockaddr_in6*)ss;
  if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *len = sizeof *in4;
    return AF_INET;
  }
  char copy[INET6_ADDRSTRLEN + 16];
  snprintf(copy, sizeof copy, "%s", text);
  char* pct = strchr(copy, '%');  // fe80::1%eth0: scope by interface name
  if (pct) *pct = 0;
  if (inet_pton(AF_INET6, copy, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    if (pct) in6->sin6_scope_id = if_nametoindex(pct + 1);
    *len = sizeof *in6;
    return AF_INET6;
  }
  return 0;
}

static napi_value addr_to_js(napi_env env, const struct sockaddr* sa, int* port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in* in4 = (const struct sockaddr_in*)sa;
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof text);
    if (port) *port = ntohs(in4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    if (port) *port = ntohs(in6->sin6_port);
  }
  napi_value v;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
  return v;
}

// ---------------------------------------------------------------------------------------
// Socket options

// setSocketOptionInt(fd, level, name, value)
static napi_value set_socket_option_int(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, level, name, value;
  if (argc < 4 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &level) ||
      !get_int(env, argv[2], &name) || !get_int(env, argv[3], &value)) {
    napi_throw_type_error(env, "EINVAL", "setSocketOptionInt(fd, level, name, value): integers");
    return NULL;
  }
  int v = value;
  if (setsockopt(fd, level, name, &v, sizeof v) != 0) return throw_errno(env, "setsockopt", errno);
  return NULL;
}

// getSocketOptionInt(fd, level, name) -> number
static napi_value get_socket_option_int(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, level, name;
  if (argc < 3 || !get_int(env, argv[0], &fd) || !get_int(env, argv[1], &level) ||
      !get_int(env, argv[2], &name)) {
    napi_throw_type_error(env, "EINVAL", "getSocketOptionInt(fd, level, name): integers");
    return NULL;
  }
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) != 0) return throw_errno(env, "getsockopt", errno);
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// RFC 2385: one key per peer address; an empty key removes it (Linux semantics).
// On an AF_INET6 socket (e.g. a dual-stack listener on ::) an IPv4 peer is keyed by its
// IPv4-mapped address (::ffff:a.b.c.d); the kernel rejects an AF_INET sockaddr there.
static int apply_md5(int fd, const char* peer, const char* key, size_t key_len) {
  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  socklen_t len;
  int family = parse_addr(peer, 0, (struct sockaddr_storage*)&sig.tcpm_addr, &len);
  if (!family) return EINVAL;
  int domain = 0;
  socklen_t dlen = sizeof domain;
  if (family == AF_INET && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) == 0 &&
      domain == AF_INET6) {
    struct in_addr v4 = ((struct sockaddr_in*)&sig.tcpm_addr)->sin_addr;
    struct sockaddr_in6* m = (struct sockaddr_in6*)&sig.tcpm_addr;
    memset(&sig.tcpm_addr, 0, sizeof sig.tcpm_addr);
    m->sin6_family = AF_INET6;
    m->sin6_addr.s6_addr[10] = 0xff;
    m->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&m->sin6_addr.s6_addr[12], &v4, 4);
  }
  if (key_len > TCP_MD5SIG_MAXKEYLEN) return EINVAL;
  sig.tcpm_keylen = (uint16_t)key_len;
  if (key_len) memcpy(sig.tcpm_key, key, key_len);
  if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) != 0) return errno;
  return 0;
}

// setTcpMd5(fd, peerAddress, key | null)
static napi_value set_tcp_md5(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  char peer[INET6_ADDRSTRLEN + 16];
  char key[TCP_MD5SIG_MAXKEYLEN + 2];
  size_t peer_len = 0, key_len = 0;
  if (argc < 3 || !get_int(env, argv[0], &fd) ||
      !get_string(env, argv[1], peer, sizeof peer, &peer_len)) {
    napi_throw_type_error(env, "EINVAL", "setTcpMd5(fd, peerAddress, key | null)");
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t == napi_string) {
    if (!get_string(env, argv[2], key, sizeof key, &key_len)) return NULL;
    if (key_len > TCP_MD5SIG_MAXKEYLEN) {
      napi_throw_range_error(env, "EINVAL", "TCP-MD5 key longer than 80 bytes");
      return NULL;
    }
  } else if (t != napi_null && t != napi_undefined) {
    napi_throw_type_error(env, "EINVAL", "setTcpMd5: key must be a string or null");
    return NULL;
  }
  int err = apply_md5(fd, peer, key, key_len);
  if (err) return throw_errno(env, "setsockopt(TCP_MD5SIG)", err);
  return NULL;
}

// setThreadNice(nice) -> the nice value now in force for the calling thread. On Linux nice
// is per thread (setpriority on the thread id): the BFD worker raises its own priority so
// other processes on a busy host do not delay its timers. Lowering nice needs CAP_SYS_NICE;
// throws EACCES / EPERM otherwise.
static napi_value set_thread_nice(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t nice_value;
  if (argc < 1 || !get_int(env, argv[0], &nice_value)) {
    napi_throw_type_error(env, "EINVAL", "setThreadNice(nice): integer");
    return NULL;
  }
  pid_t tid = (pid_t)syscall(SYS_gettid);
  if (setpriority(PRIO_PROCESS, (id_t)tid, nice_value) != 0)
    return throw_errno(env, "setpriority", errno);
  errno = 0;
  int now = getpriority(PRIO_PROCESS, (id_t)tid);
  napi_value out;
  napi_create_int32(env, now, &out);
  return out;
}

// ---------------------------------------------------------------------------------------
// Non-blocking connect

// uv handles must finish closing before the environment goes away: in a worker_thread, Node
// runs pending close callbacks after it has unloaded the addon. So every request keeps an
// async cleanup hook registered until its close callbacks have run; at teardown Node waits
// for it.
typedef struct {
  napi_env env;
  uv_poll_t poll;
  uv_timer_t timer;
  int fd;
  int done;
  int closes;
  napi_ref callback;
  napi_async_context actx;
  napi_async_cleanup_hook_handle hook;
} connect_req;

static void connect_handle_closed(uv_handle_t* h) {
  connect_req* req = (connect_req*)h->data;
  if (++req->closes < 2) return;
  napi_async_cleanup_hook_handle hook = req->hook;
  free(req);
  napi_remove_async_cleanup_hook(hook);
}

static void connect_release(connect_req* req) {
  uv_poll_stop(&req->poll);
  uv_timer_stop(&req->timer);
  uv_close((uv_handle_t*)&req->poll, connect_handle_closed);
  uv_close((uv_handle_t*)&req->timer, connect_handle_closed);
}

// Ends the request: callback(errno, fd) through napi_make_callback so promise reactions run.
// The poll is stopped (fd out of this loop's epoll set) before JS sees the fd, so that
// `new net.Socket({ fd })` in the continuation can register it again.
static void connect_finish(connect_req* req, int err) {
  if (req->done) return;
  req->done = 1;
  napi_env env = req->env;
  napi_ref callback = req->callback;
  napi_async_context actx = req->actx;
  int fd = req->fd;
  if (err) close(fd);
  connect_release(req);  // req is freed by the close callbacks, later in this loop turn
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, global, args[2];
  napi_get_reference_value(env, callback, &cb);
  napi_get_global(env, &global);
  napi_create_int32(env, err, &args[0]);
  napi_create_int32(env, err ? -1 : fd, &args[1]);
  napi_make_callback(env, actx, global, cb, 2, args, NULL);
  napi_delete_reference(env, callback);
  napi_async_destroy(env, actx);
  napi_close_handle_scope(env, scope);
}

static void connect_cleanup_hook(napi_async_cleanup_hook_handle hook, void* arg) {
  // The environment (e.g. a worker) is going away with the connect pending: no JS anymore.
  (void)hook;
  connect_req* req = (connect_req*)arg;
  if (req->done) return;  // close callbacks pending; the last one removes the hook
  req->done = 1;
  close(req->fd);
  connect_release(req);
}

static void connect_on_writable(uv_poll_t* h, int status, int events) {
  (void)events;
  connect_req* req = (connect_req*)h->data;
  int err = 0;
  socklen_t len = sizeof err;
  // libuv reports POLLERR as UV_EBADF: the real reason (ECONNREFUSED, ...) is in SO_ERROR.
  if (getsockopt(req->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (!err && status < 0) err = -status;
  connect_finish(req, err);
}

static void connect_on_timeout(uv_timer_t* t) {
  connect_finish((connect_req*)t->data, ETIMEDOUT);
}

// connectTcp(remote, port, local | null, md5Key | null, ttl, minTtl, timeoutMs, callback)
// ttl / minTtl: 0 leaves the kernel default. callback(errno, fd) is called exactly once.
static napi_value connect_tcp(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char remote[INET6_ADDRSTRLEN + 16], local[INET6_ADDRSTRLEN + 16] = "";
  char key[TCP_MD5SIG_MAXKEYLEN + 2] = "";
  size_t len = 0, key_len = 0;
  int32_t port, ttl, min_ttl, timeout_ms;
  napi_valuetype t;
  if (argc < 8 || !get_string(env, argv[0], remote, sizeof remote, &len) ||
      !get_int(env, argv[1], &port) || !get_int(env, argv[4], &ttl) ||
      !get_int(env, argv[5], &min_ttl) || !get_int(env, argv[6], &timeout_ms) ||
      napi_typeof(env, argv[7], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "EINVAL", "connectTcp: bad arguments");
    return NULL;
  }
  napi_typeof(env, argv[2], &t);
  if (t == napi_string) get_string(env, argv[2], local, sizeof local, &len);
  napi_typeof(env, argv[3], &t);
  if (t == napi_string) get_string(env, argv[3], key, sizeof key, &key_len);
  if (key_len > TCP_MD5SIG_MAXKEYLEN) {
    napi_throw_range_error(env, "EINVAL", "TCP-MD5 key longer than 80 bytes");
    return NULL;
  }

  struct sockaddr_storage ra, la;
  socklen_t ra_len, la_len;
  int family = parse_addr(remote, port, &ra, &ra_len);
  if (!family) return throw_errno(env, "connectTcp(remote address)", EINVAL);
  if (local[0]) {
    int lf = parse_addr(local, 0, &la, &la_len);
    if (lf != family) return throw_errno(env, "connectTcp(local address)", EINVAL);
  }

  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  const char* failed = NULL;
  int v;
  if (local[0] && bind(fd, (struct sockaddr*)&la, la_len) != 0) failed = "bind";
  if (!failed && key_len && (errno = apply_md5(fd, remote, key, key_len)) != 0)
    failed = "setsockopt(TCP_MD5SIG)";
  if (!failed && ttl > 0) {
    v = ttl;
    if (family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_TTL, &v, sizeof v)
                          : setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v))
      failed = "setsockopt(TTL)";
  }
  if (!failed && min_ttl > 0) {
    v = min_ttl;
    if (family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_MINTTL, &v, sizeof v)
                          : setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &v, sizeof v))
      failed = "setsockopt(MINTTL)";
  }
  v = 1;
  if (!failed) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
  if (!failed && connect(fd, (struct sockaddr*)&ra, ra_len) != 0 && errno != EINPROGRESS)
    failed = "connect";
  if (failed) {
    int err = errno;
    close(fd);
    return throw_errno(env, failed, err);
  }

  uv_loop_t* loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  connect_req* req = (connect_req*)calloc(1, sizeof *req);
  if (!req) {
    close(fd);
    return throw_errno(env, "connectTcp", ENOMEM);
  }
  req->env = env;
  req->fd = fd;
  req->poll.data = req;
  req->timer.data = req;
  napi_value resource_name;
  napi_create_string_utf8(env, "vipmux.connectTcp", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &req->actx);
  napi_create_reference(env, argv[7], 1, &req->callback);
  uv_poll_init(loop, &req->poll, fd);
  uv_timer_init(loop, &req->timer);
  napi_add_async_cleanup_hook(env, connect_cleanup_hook, req, &req->hook);
  uv_poll_start(&req->poll, UV_WRITABLE, connect_on_writable);
  uv_timer_start(&req->timer, connect_on_timeout, timeout_ms > 0 ? (uint64_t)timeout_ms : 1, 0);
  return NULL;
}

// ---------------------------------------------------------------------------------------
// UDP with received TTL (BFD)

// Lifetime: the struct is freed once both the JS wrapper is finalized and the uv handle (if
// any) has finished closing, whichever comes last. A polling socket holds an async cleanup
// hook until its close callback ran (see connect_req for why).
typedef struct {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int family;
  int polling;       // uv_poll_init done
  int closing;       // uv_close started
  int handle_done;   // close callback ran, or there never was a handle
  int wrapper_gone;  // finalizer ran
  napi_ref callback;
  napi_async_context actx;
  napi_async_cleanup_hook_handle hook;
} udp_sock;

static void udp_maybe_free(udp_sock* s) {
  if (s->wrapper_gone && s->handle_done) free(s);
}

static void udp_on_closed(uv_handle_t* h) {
  udp_sock* s = (udp_sock*)h->data;
  napi_async_cleanup_hook_handle hook = s->hook;
  s->hook = NULL;
  s->handle_done = 1;
  udp_maybe_free(s);
  if (hook) napi_remove_async_cleanup_hook(hook);
}

static void udp_begin_close(udp_sock* s) {
  if (s->fd >= 0) {
    if (s->polling) uv_poll_stop(&s->poll);
    close(s->fd);
    s->fd = -1;
  }
  if (!s->polling) s->handle_done = 1;
  else if (!s->closing) {
    s->closing = 1;
    uv_close((uv_handle_t*)&s->poll, udp_on_closed);
  }
}

static void udp_drop_js(udp_sock* s) {
  if (s->callback) {
    napi_delete_reference(s->env, s->callback);
    s->callback = NULL;
    napi_async_destroy(s->env, s->actx);
  }
}

static void udp_cleanup_hook(napi_async_cleanup_hook_handle hook, void* arg) {
  (void)hook;
  udp_begin_close((udp_sock*)arg);  // the close callback removes the hook
}

static void udp_on_readable(uv_poll_t* h, int status, int events) {
  (void)events;
  udp_sock* s = (udp_sock*)h->data;
  if (status < 0 || s->fd < 0) return;
  napi_env env = s->env;
  uint8_t data[2048];
  // Bounded per wakeup so one socket cannot hold the loop.
  for (int i = 0; i < 64 && s->fd >= 0 && s->callback; i++) {
    struct sockaddr_storage from;
    union {
      struct cmsghdr align;
      uint8_t buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo)) + 64];
    } control;
    struct iovec iov = {data, sizeof data};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
    if (n < 0) break;  // EAGAIN, or an error the next packet will not have
    int ttl = -1, ifindex = 0;
    char dst[INET6_ADDRSTRLEN] = "";
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
        memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
        memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        inet_ntop(AF_INET, &pi.ipi_addr, dst, sizeof dst);
        ifindex = pi.ipi_ifindex;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        inet_ntop(AF_INET6, &pi.ipi6_addr, dst, sizeof dst);
        ifindex = (int)pi.ipi6_ifindex;
      }
    }
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb, global, args[6];
    void* copy;
    int port = 0;
    napi_get_reference_value(env, s->callback, &cb);
    napi_get_global(env, &global);
    napi_create_buffer_copy(env, (size_t)n, data, &copy, &args[0]);
    args[1] = addr_to_js(env, (struct sockaddr*)&from, &port);
    napi_create_int32(env, port, &args[2]);
    napi_create_int32(env, ttl, &args[3]);
    napi_create_string_utf8(env, dst, NAPI_AUTO_LENGTH, &args[4]);
    napi_create_int32(env, ifindex, &args[5]);
    napi_make_callback(env, s->actx, global, cb, 6, args, NULL);
    napi_close_handle_scope(env, scope);
  }
}

static void udp_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  udp_sock* s = (udp_sock*)data;
  s->wrapper_gone = 1;
  udp_drop_js(s);
  udp_begin_close(s);
  udp_maybe_free(s);
}

// udpOpen(address, port, ttl, onMessage | null) -> handle object
// Binds a UDP socket (IPv6 sockets are V6ONLY), sets the outgoing TTL / hop limit and asks
// for the received TTL / hop limit and destination address on every packet. With onMessage,
// received packets call onMessage(buffer, srcAddress, srcPort, ttl, dstAddress, ifindex).
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char addr[INET6_ADDRSTRLEN + 16];
  size_t len;
  int32_t port, ttl;
  if (argc < 4 || !get_string(env, argv[0], addr, sizeof addr, &len) ||
      !get_int(env, argv[1], &port) || !get_int(env, argv[2], &ttl)) {
    napi_throw_type_error(env, "EINVAL", "udpOpen(address, port, ttl, onMessage | null)");
    return NULL;
  }
  napi_valuetype cbt;
  napi_typeof(env, argv[3], &cbt);
  struct sockaddr_storage sa;
  socklen_t sa_len;
  int family = parse_addr(addr, port, &sa, &sa_len);
  if (!family) return throw_errno(env, "udpOpen(address)", EINVAL);
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1, v = ttl;
  const char* failed = NULL;
  if (family == AF_INET) {
    if (setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one) ||
        setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one))
      failed = "setsockopt(IP_RECVTTL)";
    if (!failed && ttl > 0 && setsockopt(fd, IPPROTO_IP, IP_TTL, &v, sizeof v))
      failed = "setsockopt(IP_TTL)";
  } else {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one) ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one))
      failed = "setsockopt(IPV6_RECVHOPLIMIT)";
    if (!failed && ttl > 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v))
      failed = "setsockopt(IPV6_UNICAST_HOPS)";
  }
  if (!failed && bind(fd, (struct sockaddr*)&sa, sa_len) != 0) failed = "bind";
  if (failed) {
    int err = errno;
    close(fd);
    return throw_errno(env, failed, err);
  }
  udp_sock* s = (udp_sock*)calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return throw_errno(env, "udpOpen", ENOMEM);
  }
  s->env = env;
  s->fd = fd;
  s->family = family;
  s->poll.data = s;
  napi_value obj, fdv, portv;
  napi_create_object(env, &obj);
  if (cbt == napi_function) {
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    napi_value resource_name;
    napi_create_string_utf8(env, "vipmux.udp", NAPI_AUTO_LENGTH, &resource_name);
    napi_async_init(env, obj, resource_name, &s->actx);
    napi_create_reference(env, argv[3], 1, &s->callback);
    uv_poll_init(loop, &s->poll, fd);
    uv_poll_start(&s->poll, UV_READABLE, udp_on_readable);
    s->polling = 1;
    napi_add_async_cleanup_hook(env, udp_cleanup_hook, s, &s->hook);
  }
  napi_wrap(env, obj, s, udp_finalize, NULL, NULL);
  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof bound;
  int bound_port = 0;
  getsockname(fd, (struct sockaddr*)&bound, &bound_len);
  napi_value bound_addr = addr_to_js(env, (struct sockaddr*)&bound, &bound_port);
  napi_create_int32(env, fd, &fdv);
  napi_create_int32(env, bound_port, &portv);
  napi_set_named_property(env, obj, "fd", fdv);
  napi_set_named_property(env, obj, "port", portv);
  napi_set_named_property(env, obj, "address", bound_addr);
  return obj;
}

static udp_sock* udp_unwrap(napi_env env, napi_value obj) {
  void* p = NULL;
  if (napi_unwrap(env, obj, &p) != napi_ok || !p) {
    napi_throw_type_error(env, "EINVAL", "not a udp handle");
    return NULL;
  }
  return (udp_sock*)p;
}

// udpSend(handle, buffer, address, port) -> bytes sent
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, "EINVAL", "udpSend(handle, buffer, address, port)");
    return NULL;
  }
  udp_sock* s = udp_unwrap(env, argv[0]);
  if (!s) return NULL;
  if (s->fd < 0) return throw_errno(env, "sendto", EBADF);
  void* data;
  size_t data_len;
  char addr[INET6_ADDRSTRLEN + 16];
  size_t len;
  int32_t port;
  if (napi_get_buffer_info(env, argv[1], &data, &data_len) != napi_ok ||
      !get_string(env, argv[2], addr, sizeof addr, &len) || !get_int(env, argv[3], &port)) {
    napi_throw_type_error(env, "EINVAL", "udpSend(handle, buffer, address, port)");
    return NULL;
  }
  struct sockaddr_storage sa;
  socklen_t sa_len;
  if (parse_addr(addr, port, &sa, &sa_len) != s->family)
    return throw_errno(env, "sendto(address)", EAFNOSUPPORT);
  ssize_t n = sendto(s->fd, data, data_len, MSG_DONTWAIT, (struct sockaddr*)&sa, sa_len);
  if (n < 0) return throw_errno(env, "sendto", errno);
  napi_value out;
  napi_create_int32(env, (int32_t)n, &out);
  return out;
}

// udpClose(handle): idempotent.
static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  udp_sock* s = udp_unwrap(env, argv[0]);
  if (!s) return NULL;
  udp_drop_js(s);
  udp_begin_close(s);
  return NULL;
}

// ---------------------------------------------------------------------------------------

static void set_int(napi_env env, napi_value obj, const char* name, int value) {
  napi_value v;
  napi_create_int32(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor fns[] = {
      {"setSocketOptionInt", NULL, set_socket_option_int, NULL, NULL, NULL, napi_enumerable,
       NULL},
      {"getSocketOptionInt", NULL, get_socket_option_int, NULL, NULL, NULL, napi_enumerable,
       NULL},
      {"setTcpMd5", NULL, set_tcp_md5, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connectTcp", NULL, connect_tcp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreadNice", NULL, set_thread_nice, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpClose", NULL, udp_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok)
    return NULL;
  // The userspace engine's packet I/O lives in the same addon (native/packet_io.c).
  if (vipmux_packet_io_init(env, exports) == NULL) return NULL;
  // sd_notify for Type=notify units (native/sd_notify.c).
  if (vipmux_sd_notify_init(env, exports) == NULL) return NULL;
  napi_value c;
  napi_create_object(env, &c);
  set_int(env, c, "SOL_SOCKET", SOL_SOCKET);
  set_int(env, c, "IPPROTO_IP", IPPROTO_IP);
  set_int(env, c, "IPPROTO_IPV6", IPPROTO_IPV6);
  set_int(env, c, "IPPROTO_TCP", IPPROTO_TCP);
  set_int(env, c, "IP_TTL", IP_TTL);
  set_int(env, c, "IP_MINTTL", IP_MINTTL);
  set_int(env, c, "IP_RECVTTL", IP_RECVTTL);
  set_int(env, c, "IP_TOS", IP_TOS);
  set_int(env, c, "IPV6_UNICAST_HOPS", IPV6_UNICAST_HOPS);
  set_int(env, c, "IPV6_MINHOPCOUNT", IPV6_MINHOPCOUNT);
  set_int(env, c, "IPV6_RECVHOPLIMIT", IPV6_RECVHOPLIMIT);
  set_int(env, c, "IPV6_V6ONLY", IPV6_V6ONLY);
  set_int(env, c, "IPV6_TCLASS", IPV6_TCLASS);
  set_int(env, c, "TCP_NODELAY", TCP_NODELAY);
  set_int(env, c, "TCP_MD5SIG", TCP_MD5SIG);
  set_int(env, c, "TCP_MD5SIG_MAXKEYLEN", TCP_MD5SIG_MAXKEYLEN);
  set_int(env, c, "SO_REUSEADDR", SO_REUSEADDR);
  set_int(env, c, "SO_BINDTODEVICE", SO_BINDTODEVICE);
  set_int(env, c, "SO_PRIORITY", SO_PRIORITY);
  napi_set_named_property(env, exports, "constants", c);
  return exports;
}
