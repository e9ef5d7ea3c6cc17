{
  "targets": [
    {
      "target_name": "seqpacket",
      "sources": ["native/seqpacket.c", "native/fsops.c", "native/blobreader.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
