{
  "targets": [
    {
      "target_name": "vipmux_native",
      "sources": ["native/vipmux_native.c", "native/packet_io.c", "native/sd_notify.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
