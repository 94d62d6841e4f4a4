{
  "targets": [
    {
      "target_name": "rtedge_gpiocdev",
      "sources": ["gpiocdev.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"]
    }
  ]
}
