// rtedge_gpiocdev: the Linux GPIO character device (uAPI v2, <linux/gpio.h>)
// for rt-scale's gpiocdev backend. Plain ioctls, no libgpiod, so the same
// addon works on Raspberry Pi OS Bookworm (libgpiod 1.6) and Trixie (2.x):
// only the kernel's uAPI v2 matters (Linux 5.10 and later).
//
// Node-API, context-aware (NAPI_MODULE_INIT): it may be loaded in any worker
// thread, several at once, and again after a thread ended. Each environment
// keeps the line requests it opened; when the environment is torn down (the
// worker ends or crashes) a cleanup hook drives its outputs low and releases
// them, so a restarted HAL thread can request the lines again.
//
// JS API (every function synchronous; errors are Error with code = "ENOENT",
// "EACCES", "EBUSY"..., errno, syscall and path):
//   chipInfo(path) -> { name, label, lines }
//   requestLine(path, offset, { output, value, bias, consumer }) -> handle
//       bias: "as-is" | "disabled" | "pull-up" | "pull-down" (inputs)
//   get(handle) -> 0 | 1
//   set(handle, 0 | 1)
//   release(handle)            (an output is driven low first if lowOnRelease)
//   openHandles() -> number    (requests open in this environment)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_HANDLES 64

typedef struct {
  int fd;
  int output;
} Handle;

typedef struct {
  Handle handles[MAX_HANDLES];
} Env;

static const char *errno_code(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EMFILE: return "EMFILE";
    case EIO: return "EIO";
    default: return "EUNKNOWN";
  }
}

static void throw_errno(napi_env env, int e, const char *syscall, const char *path) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s %s: %s (%s)", syscall, path ? path : "", strerror(e), errno_code(e));
  napi_value m, err, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &err);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "code", v);
  napi_create_int32(env, e, &v);
  napi_set_named_property(env, err, "errno", v);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, err, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, err, "path", v);
  }
  napi_throw(env, err);
}

static void throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

static Env *env_data(napi_env env) {
  Env *d = NULL;
  napi_get_instance_data(env, (void **)&d);
  return d;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t len) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok) return 0;
  return 1;
}

static int get_int_prop(napi_env env, napi_value obj, const char *name, int64_t *out, int *present) {
  bool has = false;
  *present = 0;
  if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has) return 1;
  napi_value v;
  napi_valuetype t;
  napi_get_named_property(env, obj, name, &v);
  napi_typeof(env, v, &t);
  if (t == napi_undefined) return 1;
  if (t == napi_boolean) {
    bool b;
    napi_get_value_bool(env, v, &b);
    *out = b ? 1 : 0;
  } else if (napi_get_value_int64(env, v, out) != napi_ok) {
    return 0;
  }
  *present = 1;
  return 1;
}

static napi_value chip_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[256];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_string(env, argv[0], path, sizeof path)) {
    throw_type(env, "chipInfo(path): path must be a string");
    return NULL;
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", path);
    return NULL;
  }
  struct gpiochip_info ci;
  memset(&ci, 0, sizeof ci);
  if (ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, &ci) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "ioctl(GPIO_GET_CHIPINFO_IOCTL)", path);
    return NULL;
  }
  close(fd);
  napi_value o, v;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, ci.name, strnlen(ci.name, sizeof ci.name), &v);
  napi_set_named_property(env, o, "name", v);
  napi_create_string_utf8(env, ci.label, strnlen(ci.label, sizeof ci.label), &v);
  napi_set_named_property(env, o, "label", v);
  napi_create_uint32(env, ci.lines, &v);
  napi_set_named_property(env, o, "lines", v);
  return o;
}

static napi_value request_line(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[256];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_string(env, argv[0], path, sizeof path)) {
    throw_type(env, "requestLine(path, offset, options): path must be a string");
    return NULL;
  }
  uint32_t offset;
  if (napi_get_value_uint32(env, argv[1], &offset) != napi_ok) {
    throw_type(env, "requestLine(path, offset, options): offset must be a number");
    return NULL;
  }
  int64_t output = 0, value = 0;
  int has = 0;
  char bias[16] = "as-is";
  char consumer[GPIO_MAX_NAME_SIZE] = "rtedge";
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_object) {
      if (!get_int_prop(env, argv[2], "output", &output, &has) || !get_int_prop(env, argv[2], "value", &value, &has)) {
        throw_type(env, "requestLine: output and value must be booleans or numbers");
        return NULL;
      }
      bool hp = false;
      napi_value v;
      if (napi_has_named_property(env, argv[2], "bias", &hp) == napi_ok && hp) {
        napi_get_named_property(env, argv[2], "bias", &v);
        if (!get_string(env, v, bias, sizeof bias)) {
          throw_type(env, "requestLine: bias must be a string");
          return NULL;
        }
      }
      if (napi_has_named_property(env, argv[2], "consumer", &hp) == napi_ok && hp) {
        napi_get_named_property(env, argv[2], "consumer", &v);
        if (!get_string(env, v, consumer, sizeof consumer)) {
          throw_type(env, "requestLine: consumer must be a string");
          return NULL;
        }
      }
    }
  }
  Env *d = env_data(env);
  int slot = -1;
  for (int i = 0; i < MAX_HANDLES; i++)
    if (d->handles[i].fd < 0) {
      slot = i;
      break;
    }
  if (slot < 0) {
    throw_errno(env, EMFILE, "requestLine", path);
    return NULL;
  }

  struct gpio_v2_line_request req;
  memset(&req, 0, sizeof req);
  req.offsets[0] = offset;
  req.num_lines = 1;
  snprintf(req.consumer, sizeof req.consumer, "%s", consumer);
  if (output) {
    req.config.flags = GPIO_V2_LINE_FLAG_OUTPUT;
    // the initial value is part of the request: no glitch between request and first write
    req.config.num_attrs = 1;
    req.config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
    req.config.attrs[0].attr.values = value ? 1 : 0;
    req.config.attrs[0].mask = 1;
  } else {
    req.config.flags = GPIO_V2_LINE_FLAG_INPUT;
    if (strcmp(bias, "pull-up") == 0) req.config.flags |= GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
    else if (strcmp(bias, "pull-down") == 0) req.config.flags |= GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN;
    else if (strcmp(bias, "disabled") == 0) req.config.flags |= GPIO_V2_LINE_FLAG_BIAS_DISABLED;
    else if (strcmp(bias, "as-is") != 0) {
      throw_type(env, "requestLine: bias must be as-is, disabled, pull-up or pull-down");
      return NULL;
    }
  }
  int chip = open(path, O_RDWR | O_CLOEXEC);
  if (chip < 0) {
    throw_errno(env, errno, "open", path);
    return NULL;
  }
  if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req) < 0) {
    int e = errno;
    close(chip);
    char what[300];
    snprintf(what, sizeof what, "%s line %u", path, offset);
    throw_errno(env, e, "ioctl(GPIO_V2_GET_LINE_IOCTL)", what);
    return NULL;
  }
  close(chip); // the line request's fd lives on its own
  d->handles[slot].fd = req.fd;
  d->handles[slot].output = output ? 1 : 0;
  napi_value h;
  napi_create_int32(env, slot, &h);
  return h;
}

static Handle *handle_arg(napi_env env, napi_value v) {
  int32_t slot;
  if (napi_get_value_int32(env, v, &slot) != napi_ok || slot < 0 || slot >= MAX_HANDLES) {
    throw_type(env, "handle must be a number returned by requestLine");
    return NULL;
  }
  Handle *h = &env_data(env)->handles[slot];
  if (h->fd < 0) {
    throw_errno(env, EBADF, "gpio line", "(released handle)");
    return NULL;
  }
  return h;
}

static napi_value get_value(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    throw_type(env, "get(handle)");
    return NULL;
  }
  Handle *h = handle_arg(env, argv[0]);
  if (!h) return NULL;
  struct gpio_v2_line_values lv = {.bits = 0, .mask = 1};
  if (ioctl(h->fd, GPIO_V2_LINE_GET_VALUES_IOCTL, &lv) < 0) {
    throw_errno(env, errno, "ioctl(GPIO_V2_LINE_GET_VALUES_IOCTL)", NULL);
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, (lv.bits & 1) ? 1 : 0, &r);
  return r;
}

static napi_value set_value(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    throw_type(env, "set(handle, value)");
    return NULL;
  }
  Handle *h = handle_arg(env, argv[0]);
  if (!h) return NULL;
  int32_t v = 0;
  napi_get_value_int32(env, argv[1], &v);
  struct gpio_v2_line_values lv = {.bits = v ? 1 : 0, .mask = 1};
  if (ioctl(h->fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &lv) < 0) {
    throw_errno(env, errno, "ioctl(GPIO_V2_LINE_SET_VALUES_IOCTL)", NULL);
    return NULL;
  }
  return NULL;
}

static void release_handle(Handle *h) {
  if (h->fd < 0) return;
  if (h->output) {
    struct gpio_v2_line_values lv = {.bits = 0, .mask = 1};
    ioctl(h->fd, GPIO_V2_LINE_SET_VALUES_IOCTL, &lv); // outputs low before they are let go
  }
  close(h->fd);
  h->fd = -1;
  h->output = 0;
}

static napi_value release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t slot;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &slot) != napi_ok || slot < 0 || slot >= MAX_HANDLES) {
    throw_type(env, "release(handle)");
    return NULL;
  }
  release_handle(&env_data(env)->handles[slot]); // releasing twice is harmless
  return NULL;
}

static napi_value open_handles(napi_env env, napi_callback_info info) {
  (void)info;
  Env *d = env_data(env);
  int n = 0;
  for (int i = 0; i < MAX_HANDLES; i++)
    if (d->handles[i].fd >= 0) n++;
  napi_value r;
  napi_create_int32(env, n, &r);
  return r;
}

static void cleanup(void *arg) {
  Env *d = arg;
  for (int i = 0; i < MAX_HANDLES; i++) release_handle(&d->handles[i]);
}

static void finalize_env(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

NAPI_MODULE_INIT() {
  Env *d = malloc(sizeof *d);
  if (!d) return NULL;
  for (int i = 0; i < MAX_HANDLES; i++) {
    d->handles[i].fd = -1;
    d->handles[i].output = 0;
  }
  napi_set_instance_data(env, d, finalize_env, NULL);
  napi_add_env_cleanup_hook(env, cleanup, d);
  napi_property_descriptor props[] = {
      {"chipInfo", NULL, chip_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"requestLine", NULL, request_line, NULL, NULL, NULL, napi_enumerable, NULL},
      {"get", NULL, get_value, NULL, NULL, NULL, napi_enumerable, NULL},
      {"set", NULL, set_value, NULL, NULL, NULL, napi_enumerable, NULL},
      {"release", NULL, release, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openHandles", NULL, open_handles, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
