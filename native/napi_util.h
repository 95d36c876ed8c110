// Helpers shared by the addon's C files: N-API call checking and errno errors.
#ifndef VIPMUX_NAPI_UTIL_H
#define VIPMUX_NAPI_UTIL_H

#include <node_api.h>
#include <stdio.h>
#include <string.h>

// Returns NULL from the calling function (with a pending JS error) when an N-API call fails.
#define CHECK(env, call)                                                                    \
  do {                                                                                      \
    if ((call) != napi_ok) {                                                                \
      napi_throw_error((env), "EINTERNAL", "N-API call failed: " #call);                    \
      return NULL;                                                                          \
    }                                                                                       \
  } while (0)

// Throws an Error carrying errno and syscall (the TypeScript wrappers turn errno into a
// code name); returns NULL for `return throw_errno(...)`.
static inline napi_value throw_errno(napi_env env, const char* syscall, int err) {
  napi_value msg, error, num, sys;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  napi_throw(env, error);
  return NULL;
}

// The packet I/O functions (packet_io.c), added to the module's exports by its init.
napi_value vipmux_packet_io_init(napi_env env, napi_value exports);

// sdNotify (sd_notify.c), added to the module's exports by its init.
napi_value vipmux_sd_notify_init(napi_env env, napi_value exports);

#endif
