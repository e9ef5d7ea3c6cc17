// Native transport for containers-image-proxy (the extraction syscalls are
// in fsops.c, the blob pipe reader in blobreader.c).
//
// Node has neither SOCK_SEQPACKET nor SCM_RIGHTS, so this addon provides the
// few syscalls the protocol needs and nothing else:
//   socketPair()            -> [parentFd, childFd], both CLOEXEC
//   createSecretFd(buffer)  -> a sealed, CLOEXEC memfd holding the bytes
//   setPipeSize(fd, bytes)  F_SETPIPE_SZ: fewer wake-ups on blob pipes
//   readAll(fd, max, cb)    a small pipe (manifest, config) read to EOF with
//                           one poll handle: no net.Socket per metadata call
//   new Channel(fd, onPacket)
//     .send(buffer)         one packet, never blocks
//     .ref() / .unref()     whether a waiting reply keeps the event loop alive
//     .close()              stops polling, then closes the fd
// Readiness comes from a libuv poll handle on the main loop: no thread ever
// blocks on the socket. Each received packet is delivered whole (its length is
// learned with MSG_PEEK|MSG_TRUNC first) with the fds that came with it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "addon.h"

// The proxy sends at most two fds per reply; anything beyond this is a
// protocol error that we detect through MSG_CTRUNC.
#define MAX_FDS 8

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), NULL, "N-API call failed: " #call); \
      return NULL;                                         \
    }                                                      \
  } while (0)

typedef struct {
  uv_poll_t poll;
  int fd;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  int closing;     // close() was called; no more callbacks into JS
  int finalized;   // the JS object is gone; free on handle close
  int handle_closed;  // libuv is done with the poll handle
  int hooked;      // env cleanup hook registered
} channel_t;

napi_value throw_errno(napi_env env, const char* what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errno_value;
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
  return NULL;
}

static napi_value socket_pair(napi_env env, napi_callback_info info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
    return throw_errno(env, "socketpair(AF_UNIX, SOCK_SEQPACKET)", errno);
  napi_value result, a, b;
  CHECK(env, napi_create_array_with_length(env, 2, &result));
  CHECK(env, napi_create_int32(env, fds[0], &a));
  CHECK(env, napi_create_int32(env, fds[1], &b));
  CHECK(env, napi_set_element(env, result, 0, a));
  CHECK(env, napi_set_element(env, result, 1, b));
  return result;
}

// A secret (auth JSON) must reach the child without touching argv or a file
// another user could read: an anonymous, sealed memory file that the child
// inherits and opens as /proc/self/fd/N.
static napi_value create_secret_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data;
  size_t length;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "createSecretFd expects a Buffer");
    return NULL;
  }
  int fd = memfd_create("containers-image-proxy-auth", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return throw_errno(env, "memfd_create", errno);
  size_t done = 0;
  while (done < length) {
    ssize_t n = write(fd, (char*)data + done, length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, "write(memfd)", err);
    }
    done += (size_t)n;
  }
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "fcntl(F_ADD_SEALS)", err);
  }
  napi_value result;
  CHECK(env, napi_create_int32(env, fd, &result));
  return result;
}

// mknod(path, kind: 'char' | 'block' | 'fifo', mode, major, minor)
// setPipeSize(fd, bytes) -> the new capacity, or -errno (callers may ignore failure).
static napi_value set_pipe_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, size;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &size) != napi_ok) {
    napi_throw_type_error(env, NULL, "setPipeSize(fd: number, size: number)");
    return NULL;
  }
  int r = fcntl(fd, F_SETPIPE_SZ, size);
  napi_value result;
  CHECK(env, napi_create_int32(env, r < 0 ? -errno : r, &result));
  return result;
}

static void on_handle_closed(uv_handle_t* handle) {
  channel_t* ch = (channel_t*)handle->data;
  ch->handle_closed = 1;
  if (ch->finalized) free(ch);
}

static void env_cleanup(void* arg);

// Stop watching BEFORE the fd is closed (closing a watched fd crashed a
// prototype). uv_close unregisters the fd synchronously, so the fd can be
// closed right after it: callers see it gone at once.
static void channel_shutdown(channel_t* ch) {
  if (ch->closing) return;
  ch->closing = 1;
  uv_poll_stop(&ch->poll);
  uv_close((uv_handle_t*)&ch->poll, on_handle_closed);
  close(ch->fd);
  ch->fd = -1;
  if (ch->hooked) {
    napi_remove_env_cleanup_hook(ch->env, env_cleanup, ch);
    ch->hooked = 0;
  }
  if (ch->callback) {
    napi_delete_reference(ch->env, ch->callback);
    ch->callback = NULL;
  }
  if (ch->async_context) {
    napi_async_destroy(ch->env, ch->async_context);
    ch->async_context = NULL;
  }
}

static void env_cleanup(void* arg) {
  channel_t* ch = (channel_t*)arg;
  ch->hooked = 0;  // being run; removing it now is not allowed
  channel_shutdown(ch);
}

// Calls onPacket(error, data, fds). Returns 0 if the channel may go on.
static int deliver(channel_t* ch, napi_value error, napi_value data, napi_value fds) {
  napi_env env = ch->env;
  napi_value callback, recv, result;
  napi_value argv[3] = {error, data, fds};
  if (napi_get_reference_value(env, ch->callback, &callback) != napi_ok) return -1;
  napi_get_global(env, &recv);  // napi_make_callback needs an object receiver
  napi_status status =
      napi_make_callback(env, ch->async_context, recv, callback, 3, argv, &result);
  if (status == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  return ch->closing ? -1 : 0;
}

static napi_value make_error(napi_env env, const char* code_str, const char* msg) {
  napi_value code, message, error;
  napi_create_string_utf8(env, code_str, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  return error;
}

// readAll(fd, maxBytes, callback(error, data)): reads a pipe to EOF, then
// closes it and calls back once. The reader owns the fd from the call on.
typedef struct {
  uv_poll_t poll;
  int fd;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  char* data;
  size_t length, capacity, max;
  int done;
} reader_t;

static void reader_free(uv_handle_t* handle) {
  reader_t* r = (reader_t*)handle->data;
  free(r->data);
  free(r);
}

static void reader_cleanup(void* arg);

// Unregisters and closes before calling into JS: the callback may open fds
// that reuse this number, and uv_close must not touch them.
static void reader_release(reader_t* r) {
  r->done = 1;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t*)&r->poll, reader_free);
  close(r->fd);
  napi_remove_env_cleanup_hook(r->env, reader_cleanup, r);
}

static void reader_cleanup(void* arg) {
  reader_t* r = (reader_t*)arg;
  r->done = 1;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t*)&r->poll, reader_free);
  close(r->fd);
}

static void reader_finish(reader_t* r, int err) {
  napi_env env = r->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[2], callback, global, result;
  if (err) {
    char msg[128];
    snprintf(msg, sizeof msg, err == EFBIG ? "the pipe carried more than the limit" : "read: %s", strerror(err));
    argv[0] = make_error(env, err == EFBIG ? "EFBIG" : uv_err_name(-err), msg);
    napi_get_undefined(env, &argv[1]);
  } else {
    void* out;
    napi_get_undefined(env, &argv[0]);
    napi_create_buffer_copy(env, r->length, r->length ? r->data : "", &out, &argv[1]);
  }
  napi_get_reference_value(env, r->callback, &callback);
  napi_delete_reference(env, r->callback);
  napi_async_context context = r->async_context;
  reader_release(r);  // r is freed later, by the close callback; do not use it below
  napi_get_global(env, &global);
  if (napi_make_callback(env, context, global, callback, 2, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_async_destroy(env, context);
  napi_close_handle_scope(env, scope);
}

static void reader_on_poll(uv_poll_t* handle, int status, int events) {
  reader_t* r = (reader_t*)handle->data;
  if (r->done) return;
  if (status < 0) return reader_finish(r, -status);
  for (;;) {
    if (r->capacity - r->length < 65536) {
      size_t capacity = r->capacity ? r->capacity * 2 : 65536;
      char* grown = realloc(r->data, capacity);
      if (!grown) return reader_finish(r, ENOMEM);
      r->data = grown;
      r->capacity = capacity;
    }
    ssize_t n = read(r->fd, r->data + r->length, r->capacity - r->length);
    if (n > 0) {
      r->length += (size_t)n;
      if (r->length > r->max) return reader_finish(r, EFBIG);
      continue;
    }
    if (n == 0) return reader_finish(r, 0);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    return reader_finish(r, errno);
  }
}

static napi_value read_all(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  double max;
  napi_valuetype type;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_double(env, argv[1], &max) != napi_ok || napi_typeof(env, argv[2], &type) != napi_ok ||
      type != napi_function) {
    napi_throw_type_error(env, NULL, "readAll(fd: number, maxBytes: number, callback: Function)");
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return throw_errno(env, "fcntl(O_NONBLOCK)", errno);
  uv_loop_t* loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  reader_t* r = calloc(1, sizeof *r);
  r->fd = fd;
  r->env = env;
  r->max = (size_t)max;
  int e = uv_poll_init(loop, &r->poll, fd);
  if (e != 0) {
    free(r);
    return throw_errno(env, "uv_poll_init", -e);
  }
  r->poll.data = r;
  napi_value name;
  napi_create_string_utf8(env, "containers-image-proxy:pipe", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->async_context);
  napi_create_reference(env, argv[2], 1, &r->callback);
  napi_add_env_cleanup_hook(env, reader_cleanup, r);
  uv_poll_start(&r->poll, UV_READABLE | UV_DISCONNECT, reader_on_poll);
  return NULL;
}

static void close_received_fds(struct msghdr* msg) {
  for (struct cmsghdr* c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int* fds = (int*)CMSG_DATA(c);
    for (int i = 0; i < count; i++) close(fds[i]);
  }
}

// Receives one whole packet. Returns 1 if one was delivered, 0 when the
// socket has nothing more for now, -1 when the channel must stop.
static int receive_one(channel_t* ch) {
  napi_env env = ch->env;
  napi_value undefined, null_value;
  napi_get_undefined(env, &undefined);
  napi_get_null(env, &null_value);

  // Learn the packet's real length without consuming it (and without a
  // control buffer, so no fds are installed by the peek).
  char probe;
  ssize_t length;
  do {
    length = recv(ch->fd, &probe, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  } while (length < 0 && errno == EINTR);
  if (length < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "recv(MSG_PEEK): %s", strerror(errno));
    deliver(ch, make_error(env, uv_err_name(-errno), msg), undefined, undefined);
    return -1;
  }

  void* data = NULL;
  napi_value buffer;
  if (napi_create_buffer(env, length > 0 ? (size_t)length : 1, &data, &buffer) != napi_ok)
    return -1;

  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = data, .iov_len = length > 0 ? (size_t)length : 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do {
    n = recvmsg(ch->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    char text[128];
    snprintf(text, sizeof text, "recvmsg: %s", strerror(errno));
    deliver(ch, make_error(env, uv_err_name(-errno), text), undefined, undefined);
    return -1;
  }
  if (n == 0 && msg.msg_controllen == 0) {
    // The peer closed its end (the server never sends empty packets).
    deliver(ch, null_value, null_value, undefined);
    return -1;
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
    close_received_fds(&msg);
    const char* text = (msg.msg_flags & MSG_TRUNC)
                           ? "reply packet was truncated"
                           : "reply carried more file descriptors than allowed; they were closed";
    return deliver(ch, make_error(env, (msg.msg_flags & MSG_TRUNC) ? "EMSGTRUNC" : "ECTRUNC", text),
                   undefined, undefined) == 0 ? 1 : -1;
  }

  napi_value fds;
  napi_create_array(env, &fds);
  uint32_t count = 0;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int* list = (int*)CMSG_DATA(c);
    for (int i = 0; i < k; i++) {
      napi_value fd;
      napi_create_int32(env, list[i], &fd);
      napi_set_element(env, fds, count++, fd);
    }
  }
  return deliver(ch, undefined, buffer, fds) == 0 ? 1 : -1;
}

static void on_poll(uv_poll_t* handle, int status, int events) {
  channel_t* ch = (channel_t*)handle->data;
  if (ch->closing) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(ch->env, &scope) != napi_ok) return;
  if (status < 0) {
    napi_value undefined;
    napi_get_undefined(ch->env, &undefined);
    deliver(ch, make_error(ch->env, uv_err_name(status), uv_strerror(status)), undefined,
            undefined);
    channel_shutdown(ch);
  } else {
    int r;
    // One packet per loop turn at most a few times, so a flood cannot starve
    // the rest of the event loop.
    for (int i = 0; i < 16 && !ch->closing; i++) {
      r = receive_one(ch);
      if (r <= 0) {
        if (r < 0) channel_shutdown(ch);
        break;
      }
    }
  }
  napi_close_handle_scope(ch->env, scope);
}

static void channel_finalize(napi_env env, void* data, void* hint) {
  channel_t* ch = (channel_t*)data;
  ch->finalized = 1;
  if (!ch->closing) channel_shutdown(ch);
  else if (ch->handle_closed) free(ch);
}

static channel_t* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  channel_t* ch = NULL;
  napi_unwrap(env, self, (void**)&ch);
  return ch;
}

static napi_value channel_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  int32_t fd;
  napi_valuetype type;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_typeof(env, argv[1], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "new Channel(fd: number, onPacket: Function)");
    return NULL;
  }
  uv_loop_t* loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  channel_t* ch = calloc(1, sizeof *ch);
  ch->fd = fd;
  ch->env = env;
  int r = uv_poll_init(loop, &ch->poll, fd);
  if (r != 0) {
    free(ch);
    return throw_errno(env, "uv_poll_init", -r);
  }
  ch->poll.data = ch;
  napi_value name;
  napi_create_string_utf8(env, "containers-image-proxy:socket", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &ch->async_context);
  napi_create_reference(env, argv[1], 1, &ch->callback);
  napi_wrap(env, self, ch, channel_finalize, NULL, NULL);
  napi_add_env_cleanup_hook(env, env_cleanup, ch);
  ch->hooked = 1;
  r = uv_poll_start(&ch->poll, UV_READABLE | UV_DISCONNECT, on_poll);
  if (r != 0) {
    channel_shutdown(ch);
    return throw_errno(env, "uv_poll_start", -r);
  }
  return self;
}

static napi_value channel_send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  channel_t* ch = unwrap(env, info, &argc, argv);
  if (!ch || ch->closing) {
    napi_throw_error(env, "ECLOSED", "channel is closed");
    return NULL;
  }
  void* data;
  size_t length;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "send expects a Buffer");
    return NULL;
  }
  ssize_t n;
  do {
    n = send(ch->fd, data, length, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "send", errno);
  return NULL;
}

static napi_value channel_ref(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  channel_t* ch = unwrap(env, info, &argc, NULL);
  if (ch && !ch->closing) uv_ref((uv_handle_t*)&ch->poll);
  return NULL;
}

static napi_value channel_unref(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  channel_t* ch = unwrap(env, info, &argc, NULL);
  if (ch && !ch->closing) uv_unref((uv_handle_t*)&ch->poll);
  return NULL;
}

static napi_value channel_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  channel_t* ch = unwrap(env, info, &argc, NULL);
  if (ch) channel_shutdown(ch);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"send", NULL, channel_send, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, channel_ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, channel_unref, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, channel_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value channel_class;
  CHECK(env, napi_define_class(env, "Channel", NAPI_AUTO_LENGTH, channel_new, NULL, 4, methods,
                               &channel_class));
  napi_property_descriptor exported[] = {
      {"Channel", NULL, NULL, NULL, NULL, channel_class, napi_default, NULL},
      {"socketPair", NULL, socket_pair, NULL, NULL, NULL, napi_default, NULL},
      {"createSecretFd", NULL, create_secret_fd, NULL, NULL, NULL, napi_default, NULL},
      {"setPipeSize", NULL, set_pipe_size, NULL, NULL, NULL, napi_default, NULL},
      {"readAll", NULL, read_all, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, 5, exported));
  CHECK(env, fsops_define(env, exports));
  CHECK(env, blobreader_define(env, exports));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
