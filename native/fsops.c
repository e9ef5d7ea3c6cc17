// Filesystem calls that layer extraction needs and Node lacks. Paths are
// Buffers holding the exact bytes of the name (image file names need not be
// UTF-8), and nothing here follows a symlink in the last path component:
//   mknod(path, kind, mode, major, minor)   devices and fifos
//   utimes(path, sec, nsec)                 utimensat(AT_SYMLINK_NOFOLLOW), ns exact
//   futimes(fd, sec, nsec)                  futimens, ns exact
//   setXattr(path, name, value)             lsetxattr
//   fsetXattr(fd, name, value)              fsetxattr
//   listXattrs(path) -> string[]            llistxattr
//   getXattr(path, name) -> Buffer          lgetxattr
// All calls are synchronous: each is one short syscall on a local file, made
// by the extractor between entries.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "addon.h"

#define PATH_BYTES 4096
#define NAME_BYTES 256

// A NUL-terminated copy of a Buffer argument; false (with a TypeError thrown)
// when it is not a Buffer, is too long or holds a NUL byte.
static int path_arg(napi_env env, napi_value value, char* out, size_t capacity, const char* usage) {
  bool is_buffer = false;
  void* data;
  size_t length;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok || length >= capacity ||
      memchr(data, 0, length) != NULL) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  memcpy(out, data, length);
  out[length] = 0;
  return 1;
}

static int string_arg(napi_env env, napi_value value, char* out, size_t capacity, const char* usage) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, out, capacity, &length) != napi_ok || length >= capacity - 1) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

static int buffer_arg(napi_env env, napi_value value, void** data, size_t* length, const char* usage) {
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, data, length) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv, const char* usage) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  return 1;
}

static napi_value make_node(napi_env env, napi_callback_info info) {
  static const char usage[] = "mknod(path: Buffer, kind: 'char'|'block'|'fifo', mode, major, minor)";
  napi_value argv[5];
  char path[PATH_BYTES], kind[8];
  uint32_t mode, major, minor;
  if (!get_args(env, info, 5, argv, usage) || !path_arg(env, argv[0], path, sizeof path, usage) ||
      !string_arg(env, argv[1], kind, sizeof kind, usage))
    return NULL;
  if (napi_get_value_uint32(env, argv[2], &mode) != napi_ok || napi_get_value_uint32(env, argv[3], &major) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &minor) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  mode_t type = strcmp(kind, "char") == 0 ? S_IFCHR : strcmp(kind, "block") == 0 ? S_IFBLK : strcmp(kind, "fifo") == 0 ? S_IFIFO : 0;
  if (type == 0) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  // The system call, not glibc's mknod(): that symbol is versioned
  // GLIBC_2.33, and the prebuilt addon needs no glibc newer than Node's own
  // floor (2.28). aarch64 has only mknodat.
  if (syscall(SYS_mknodat, AT_FDCWD, path, type | (mode & 07777), makedev(major, minor)) != 0) return throw_errno(env, "mknod", errno);
  return NULL;
}

static int time_args(napi_env env, napi_value* argv, struct timespec times[2], const char* usage) {
  int64_t sec;
  uint32_t nsec;
  if (napi_get_value_int64(env, argv[0], &sec) != napi_ok || napi_get_value_uint32(env, argv[1], &nsec) != napi_ok ||
      nsec >= 1000000000u) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  // atime = mtime: tar's atime is rarely recorded and runtimes do the same.
  times[0].tv_sec = times[1].tv_sec = (time_t)sec;
  times[0].tv_nsec = times[1].tv_nsec = (long)nsec;
  return 1;
}

static napi_value set_times(napi_env env, napi_callback_info info) {
  static const char usage[] = "utimes(path: Buffer, seconds: number, nanoseconds: number)";
  napi_value argv[3];
  char path[PATH_BYTES];
  struct timespec times[2];
  if (!get_args(env, info, 3, argv, usage) || !path_arg(env, argv[0], path, sizeof path, usage) ||
      !time_args(env, argv + 1, times, usage))
    return NULL;
  if (utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, "utimensat", errno);
  return NULL;
}

static napi_value set_fd_times(napi_env env, napi_callback_info info) {
  static const char usage[] = "futimes(fd: number, seconds: number, nanoseconds: number)";
  napi_value argv[3];
  int32_t fd;
  struct timespec times[2];
  if (!get_args(env, info, 3, argv, usage)) return NULL;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (!time_args(env, argv + 1, times, usage)) return NULL;
  if (futimens(fd, times) != 0) return throw_errno(env, "futimens", errno);
  return NULL;
}

static napi_value set_xattr(napi_env env, napi_callback_info info) {
  static const char usage[] = "setXattr(path: Buffer, name: string, value: Buffer)";
  napi_value argv[3];
  char path[PATH_BYTES], name[NAME_BYTES];
  void* value;
  size_t length;
  if (!get_args(env, info, 3, argv, usage) || !path_arg(env, argv[0], path, sizeof path, usage) ||
      !string_arg(env, argv[1], name, sizeof name, usage) || !buffer_arg(env, argv[2], &value, &length, usage))
    return NULL;
  if (lsetxattr(path, name, value, length, 0) != 0) return throw_errno(env, "lsetxattr", errno);
  return NULL;
}

static napi_value set_fd_xattr(napi_env env, napi_callback_info info) {
  static const char usage[] = "fsetXattr(fd: number, name: string, value: Buffer)";
  napi_value argv[3];
  int32_t fd;
  char name[NAME_BYTES];
  void* value;
  size_t length;
  if (!get_args(env, info, 3, argv, usage)) return NULL;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (!string_arg(env, argv[1], name, sizeof name, usage) || !buffer_arg(env, argv[2], &value, &length, usage)) return NULL;
  if (fsetxattr(fd, name, value, length, 0) != 0) return throw_errno(env, "fsetxattr", errno);
  return NULL;
}

static napi_value list_xattrs(napi_env env, napi_callback_info info) {
  static const char usage[] = "listXattrs(path: Buffer)";
  napi_value argv[1];
  char path[PATH_BYTES];
  if (!get_args(env, info, 1, argv, usage) || !path_arg(env, argv[0], path, sizeof path, usage)) return NULL;
  ssize_t size = llistxattr(path, NULL, 0);
  char* names = NULL;
  // The list can grow between the two calls: ask again until it fits.
  while (size > 0) {
    names = realloc(names, (size_t)size);
    if (names == NULL) return throw_errno(env, "llistxattr", ENOMEM);
    ssize_t got = llistxattr(path, names, (size_t)size);
    if (got >= 0 || errno != ERANGE) {
      size = got;
      break;
    }
    size = llistxattr(path, NULL, 0);
  }
  if (size < 0) {
    int err = errno;
    free(names);
    return throw_errno(env, "llistxattr", err);
  }
  napi_value result, item;
  napi_create_array(env, &result);
  uint32_t index = 0;
  for (ssize_t at = 0; at < size; at += (ssize_t)strlen(names + at) + 1) {
    napi_create_string_utf8(env, names + at, NAPI_AUTO_LENGTH, &item);
    napi_set_element(env, result, index++, item);
  }
  free(names);
  return result;
}

static napi_value get_xattr(napi_env env, napi_callback_info info) {
  static const char usage[] = "getXattr(path: Buffer, name: string)";
  napi_value argv[2];
  char path[PATH_BYTES], name[NAME_BYTES];
  if (!get_args(env, info, 2, argv, usage) || !path_arg(env, argv[0], path, sizeof path, usage) ||
      !string_arg(env, argv[1], name, sizeof name, usage))
    return NULL;
  for (;;) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) return throw_errno(env, "lgetxattr", errno);
    void* data;
    napi_value result;
    if (napi_create_buffer(env, (size_t)size, &data, &result) != napi_ok) return NULL;
    ssize_t got = size == 0 ? 0 : lgetxattr(path, name, data, (size_t)size);
    if (got == size) return result;
    if (got >= 0 || errno != ERANGE) return throw_errno(env, "lgetxattr", got >= 0 ? EAGAIN : errno);
  }
}

napi_status fsops_define(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"mknod", NULL, make_node, NULL, NULL, NULL, napi_default, NULL},
      {"utimes", NULL, set_times, NULL, NULL, NULL, napi_default, NULL},
      {"futimes", NULL, set_fd_times, NULL, NULL, NULL, napi_default, NULL},
      {"setXattr", NULL, set_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"fsetXattr", NULL, set_fd_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"listXattrs", NULL, list_xattrs, NULL, NULL, NULL, napi_default, NULL},
      {"getXattr", NULL, get_xattr, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
}
