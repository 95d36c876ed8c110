// sd_notify(3) without libsystemd: one datagram to the service manager's notification
// socket ($NOTIFY_SOCKET), which Node cannot send itself (it has no AF_UNIX datagram
// sockets). Used by src/systemd/notify.ts for READY=1, WATCHDOG=1, RELOADING=1, STOPPING=1
// and STATUS= (configs/systemd/*.service run with Type=notify).
//
// The socket is a filesystem path ("/run/systemd/notify") or, when it starts with '@', a
// name in the abstract namespace (the '@' becomes the leading NUL byte), as in libsystemd.
// The datagram is sent with MSG_DONTWAIT: a manager that does not read its socket makes the
// call fail with EAGAIN instead of blocking the event loop. Each call opens and closes its
// own socket, so it is safe from any thread and keeps no state.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "napi_util.h"

// sdNotify(socket: string, message: string): the number of bytes sent. Throws an Error with
// errno and syscall "sd_notify" (EINVAL for a bad socket name, else sendto's errno).
static napi_value sd_notify_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "sdNotify(socket, message)");
    return NULL;
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t plen = 0;
  if (napi_get_value_string_utf8(env, argv[0], NULL, 0, &plen) != napi_ok) {
    napi_throw_type_error(env, NULL, "sdNotify: socket must be a string");
    return NULL;
  }
  // A path needs its terminating NUL inside sun_path; an abstract name does not.
  char path[sizeof sa.sun_path + 1];
  if (plen < 2 || plen > sizeof sa.sun_path) return throw_errno(env, "sd_notify", EINVAL);
  CHECK(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen));
  if (path[0] != '/' && path[0] != '@') return throw_errno(env, "sd_notify", EINVAL);
  if (path[0] == '/' && plen >= sizeof sa.sun_path) return throw_errno(env, "sd_notify", EINVAL);
  if (memchr(path, 0, plen) != NULL) return throw_errno(env, "sd_notify", EINVAL);
  memcpy(sa.sun_path, path, plen);
  socklen_t salen;
  if (path[0] == '@') {
    sa.sun_path[0] = 0;
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  } else {
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
  }

  size_t mlen = 0;
  if (napi_get_value_string_utf8(env, argv[1], NULL, 0, &mlen) != napi_ok) {
    napi_throw_type_error(env, NULL, "sdNotify: message must be a string");
    return NULL;
  }
  char* msg = malloc(mlen + 1);
  if (!msg) return throw_errno(env, "sd_notify", ENOMEM);
  if (napi_get_value_string_utf8(env, argv[1], msg, mlen + 1, &mlen) != napi_ok) {
    free(msg);
    napi_throw_error(env, "EINTERNAL", "sdNotify: cannot read the message");
    return NULL;
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    free(msg);
    return throw_errno(env, "sd_notify", e);
  }
  ssize_t n;
  do {
    n = sendto(fd, msg, mlen, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr*)&sa, salen);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  free(msg);
  if (n < 0) return throw_errno(env, "sd_notify", e);
  napi_value result;
  CHECK(env, napi_create_int64(env, (int64_t)n, &result));
  return result;
}

napi_value vipmux_sd_notify_init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"sdNotify", NULL, sd_notify_send, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok)
    return NULL;
  return exports;
}
