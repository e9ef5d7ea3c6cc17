// Blob pipes read off the main thread (src/blobs/blob-pipe.ts holds the policy).
//
//   new BlobReader(fd, algorithm | null, onChunk)   takes the fd; one thread per pipe
//     .setFlowing(b)  whether the consumer takes chunks. While it does, the
//                     thread fills CHUNK_BYTES blocks with what the pipe has
//                     (waiting for the first byte, then up to COALESCE_MS for
//                     more), hashes each, and the loop calls onChunk(error,
//                     chunk) for each in order; chunk null is EOF. Made paused.
//     .digest()       the hex digest of every byte read (once EOF was delivered)
//     .close()        cancels a read in flight, joins the thread, closes the fd
//   blobHashAvailable whether SHA-2 could be found in the Node process
//
// The thread reads one block ahead of the consumer: it reads and hashes the
// next block while JS handles the last one (the two threads work at once), and
// a paused consumer stops the reads after that one: backpressure reaches
// skopeo's writer once the pipe is full.
//
// Blocks are recycled: a chunk is handed out as a Buffer over its block, and
// the block goes back to a small pool when that Buffer is garbage collected
// (it cannot be referenced any more), to be read into again. Fresh memory per
// chunk cost more CPU than the hashing (page faults, unmapping: 2.1 against
// 0.8 CPU s/GiB, bench/RESULTS.md). A chunk much smaller than a block is
// copied out instead, and its block reused at once. The digest is
// OpenSSL's, the one inside the Node process (node:crypto's), found at run time
// with dlopen(NULL)/dlsym through libuv: the prebuilt addon links nothing but
// libc. Threads, locks and dlopen all come from libuv for the same reason
// (pthread_* and dlopen moved into libc only in glibc 2.34).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "addon.h"

// Name of the reader threads in /proc/self/task/*/comm (15 characters at most).
#define THREAD_NAME "cip-blob-reader"
// A read that has some bytes waits this long for more before handing them
// over: fewer, larger chunks for the loop, at little latency.
#define COALESCE_MS 1
#define THREAD_STACK (256 * 1024)
// Bytes per read, and the block a chunk is handed out in. A quarter of the
// pipe's capacity (BLOB_PIPE_BYTES): whole images at jobs 4 grew RSS by 76-90
// MiB with 1 MiB blocks and a pool of 32, 44-49 MiB with these (the old
// net.Socket path: 44-51), at the same single-stream speed (bench/RESULTS.md).
#define CHUNK_BYTES (256 * 1024)
// Below this, a chunk is copied into a Buffer of its size.
#define COPY_BELOW (CHUNK_BYTES / 4)
// Free blocks kept for reuse, process-wide (4 MiB); beyond this they are freed.
#define POOL_MAX 16

// --- recycled blocks ---------------------------------------------------------
static uv_once_t pool_once = UV_ONCE_INIT;
static uv_mutex_t pool_lock;
static void* pool[POOL_MAX];
static int pool_count;

static void pool_init(void) { uv_mutex_init(&pool_lock); }

static void* block_get(void) {
  uv_once(&pool_once, pool_init);
  void* block = NULL;
  uv_mutex_lock(&pool_lock);
  if (pool_count > 0) block = pool[--pool_count];
  uv_mutex_unlock(&pool_lock);
  return block ? block : malloc(CHUNK_BYTES);
}

static void block_put(void* block) {
  if (!block) return;
  uv_once(&pool_once, pool_init);
  uv_mutex_lock(&pool_lock);
  if (pool_count < POOL_MAX) {
    pool[pool_count++] = block;
    block = NULL;
  }
  uv_mutex_unlock(&pool_lock);
  free(block);
}

// V8 is told of a block while a Buffer holds it, so that garbage collection
// (which frees blocks for reuse) keeps pace with the chunks handed out. It
// mostly collects with 8-20 MiB of blocks held, but now and then lets dead
// chunks pile up to 50 MiB (whole images at jobs 4 and 8: RSS grew by 68 MiB
// in 2 of 168 bench measurements, by about 50 in the rest). So beyond
// HELD_SOFT_LIMIT blocks held by Buffers, each further block counts four
// times: the next collection comes sooner, and only when chunks pile up.
// (Blocks are handed out and released on the threads of the Node
// environments that hold them: atomic.)
#define HELD_SOFT_LIMIT 96
#define HELD_WEIGHT_OVER 4
static int blocks_held;

// How much the next block handed out counts for (its release gives back as much).
static intptr_t block_weight(void) {
  return __atomic_load_n(&blocks_held, __ATOMIC_RELAXED) >= HELD_SOFT_LIMIT ? HELD_WEIGHT_OVER : 1;
}

// Tells V8 of a block handed out with block_weight()'s weight.
static void block_held(napi_env env, intptr_t weight) {
  __atomic_add_fetch(&blocks_held, 1, __ATOMIC_RELAXED);
  int64_t ignored;
  napi_adjust_external_memory(env, weight * CHUNK_BYTES, &ignored);
}

// The finalizer of a handed-out chunk: its Buffer is gone, the block is free.
static void block_release(napi_env env, void* data, void* hint) {
  __atomic_sub_fetch(&blocks_held, 1, __ATOMIC_RELAXED);
  int64_t ignored;
  napi_adjust_external_memory(env, -(intptr_t)hint * CHUNK_BYTES, &ignored);
  block_put(data);
}

// --- SHA-2 from the process's OpenSSL --------------------------------------
typedef struct evp_md_ctx EVP_MD_CTX;
typedef struct evp_md EVP_MD;
static struct {
  int resolved, available;
  EVP_MD_CTX* (*ctx_new)(void);
  void (*ctx_free)(EVP_MD_CTX*);
  const EVP_MD* (*by_name)(const char*);
  int (*init)(EVP_MD_CTX*, const EVP_MD*, void*);
  int (*update)(EVP_MD_CTX*, const void*, size_t);
  int (*final)(EVP_MD_CTX*, unsigned char*, unsigned int*);
} ssl;

static void resolve_openssl(void) {
  if (ssl.resolved) return;
  ssl.resolved = 1;
  uv_lib_t self;
  if (uv_dlopen(NULL, &self) != 0) return;  // kept open: the symbols live as long as the process
  int ok = uv_dlsym(&self, "EVP_MD_CTX_new", (void**)&ssl.ctx_new) == 0 &&
           uv_dlsym(&self, "EVP_MD_CTX_free", (void**)&ssl.ctx_free) == 0 &&
           uv_dlsym(&self, "EVP_get_digestbyname", (void**)&ssl.by_name) == 0 &&
           uv_dlsym(&self, "EVP_DigestInit_ex", (void**)&ssl.init) == 0 &&
           uv_dlsym(&self, "EVP_DigestUpdate", (void**)&ssl.update) == 0 &&
           uv_dlsym(&self, "EVP_DigestFinal_ex", (void**)&ssl.final) == 0;
  ssl.available = ok && ssl.by_name("sha256") != NULL;
}

// --- the reader --------------------------------------------------------------
typedef struct {
  char* block;
  size_t length;
} chunk_t;

typedef struct {
  int fd, cancel_fd;
  napi_env env;
  napi_ref callback;
  napi_async_context async_context;
  uv_async_t async;
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t wake;
  // Under lock: what the loop wants, and what the thread has for it.
  int flowing;                // the consumer takes chunks: the thread may read
  int cancel;                 // close(): the thread stops
  chunk_t ready;              // a filled and hashed block for the loop (block NULL: none)
  char* spare;                // the empty block the thread reads into next, given by the loop
  int finished, error;        // after the ready chunk: EOF (error 0) or a read error; the thread is gone
  // The loop's own:
  int ended;  // EOF or the error was delivered
  EVP_MD_CTX* hash;
  int closed, finalized, handle_closed, thread_started, hooked;
} blob_reader_t;

// Fills buf with what the pipe gives: waits for the first byte, then takes
// what follows within COALESCE_MS. Returns the bytes read (0 and *error 0 is
// EOF); *error is set on a read error or cancellation.
static size_t fill(blob_reader_t* r, char* buf, size_t capacity, int* error) {
  size_t n = 0;
  for (;;) {
    ssize_t k = read(r->fd, buf + n, capacity - n);
    if (k > 0) {
      n += (size_t)k;
      if (n == capacity) return n;
      continue;
    }
    if (k == 0) return n;  // EOF (delivered as 0 on the next read if n > 0)
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      if (n == 0) *error = errno;  // else: hand over the bytes; the next read sees it again
      return n;
    }
    struct pollfd fds[2] = {{.fd = r->fd, .events = POLLIN}, {.fd = r->cancel_fd, .events = POLLIN}};
    int ready = poll(fds, 2, n > 0 ? COALESCE_MS : -1);
    if (ready < 0 && errno != EINTR) {
      if (n == 0) *error = errno;
      return n;
    }
    if (fds[1].revents) {
      *error = ECANCELED;
      return n;
    }
    if (ready == 0) return n;  // quiet for COALESCE_MS: hand over what there is
  }
}

// Reads and hashes block after block while the consumer is flowing, each once
// the loop has taken the last and given a spare block; ends after EOF or a
// read error.
static void reader_thread(void* arg) {
  blob_reader_t* r = arg;
  prctl(PR_SET_NAME, THREAD_NAME, 0, 0, 0);
  for (;;) {
    uv_mutex_lock(&r->lock);
    while (!r->cancel && !(r->flowing && !r->ready.block && r->spare)) uv_cond_wait(&r->wake, &r->lock);
    if (r->cancel) {
      uv_mutex_unlock(&r->lock);
      return;  // close() frees the spare block
    }
    char* block = r->spare;
    r->spare = NULL;
    uv_mutex_unlock(&r->lock);

    int error = 0;
    size_t n = fill(r, block, CHUNK_BYTES, &error);
    if (error == ECANCELED) {
      block_put(block);
      return;
    }
    if (n > 0 && r->hash) ssl.update(r->hash, block, n);

    uv_mutex_lock(&r->lock);
    if (n > 0) {
      r->ready = (chunk_t){block, n};
    } else {
      block_put(block);
      r->finished = 1;
      r->error = error;
    }
    uv_mutex_unlock(&r->lock);
    uv_async_send(&r->async);
    if (n == 0) return;  // EOF or a read error: nothing more to read
  }
}

static void on_handle_closed(uv_handle_t* handle) {
  blob_reader_t* r = handle->data;
  r->handle_closed = 1;
  if (r->finalized) free(r);
}

static void reader_cleanup(void* arg);

// Stops the thread (it is at most in one read() or one hash update of a
// chunk), then frees what the reader holds. Idempotent.
static void reader_close(blob_reader_t* r) {
  if (r->closed) return;
  r->closed = 1;
  if (r->thread_started) {
    uv_mutex_lock(&r->lock);
    r->cancel = 1;
    uv_cond_signal(&r->wake);
    uv_mutex_unlock(&r->lock);
    uint64_t one = 1;
    ssize_t ignored = write(r->cancel_fd, &one, sizeof one);
    (void)ignored;
    uv_thread_join(&r->thread);
  }
  close(r->fd);
  close(r->cancel_fd);
  uv_mutex_destroy(&r->lock);
  uv_cond_destroy(&r->wake);
  if (r->hash) ssl.ctx_free(r->hash);
  r->hash = NULL;
  uv_close((uv_handle_t*)&r->async, on_handle_closed);
  if (r->hooked) napi_remove_env_cleanup_hook(r->env, reader_cleanup, r);
  r->hooked = 0;
  block_put(r->ready.block);  // the thread is joined
  block_put(r->spare);
  r->ready.block = r->spare = NULL;
  if (r->callback) napi_delete_reference(r->env, r->callback);
  r->callback = NULL;
  if (r->async_context) napi_async_destroy(r->env, r->async_context);
  r->async_context = NULL;
}

static void reader_cleanup(void* arg) {
  blob_reader_t* r = arg;
  r->hooked = 0;  // being run: removing it is not allowed
  reader_close(r);
}

static napi_value errno_error(napi_env env, int err) {
  napi_value code, message, error;
  napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  return error;
}

// Gives the thread an empty block to read into next. Blocks are taken on the
// loop's thread, so all come from (and are freed to) one malloc arena: taken
// on the readers' threads, each thread's arena kept its own freed blocks, and
// whole images at jobs 8 grew RSS by 70-77 MiB instead of about 50.
static void give_spare(blob_reader_t* r) {
  uv_mutex_lock(&r->lock);
  int wanted = !r->spare && !r->finished;
  uv_mutex_unlock(&r->lock);
  if (!wanted) return;
  char* block = block_get();
  if (!block) napi_fatal_error("BlobReader", NAPI_AUTO_LENGTH, "out of memory for a read block", NAPI_AUTO_LENGTH);
  uv_mutex_lock(&r->lock);
  r->spare = block;  // only the loop gives: the slot is still empty
  uv_cond_signal(&r->wake);
  uv_mutex_unlock(&r->lock);
}

// Wakes the loop if a flowing consumer has something to be handed: a ready
// chunk, or the end.
static void wake_if_deliverable(blob_reader_t* r) {
  uv_mutex_lock(&r->lock);
  int deliverable = r->flowing && (r->ready.block || r->finished);
  uv_mutex_unlock(&r->lock);
  if (deliverable) uv_async_send(&r->async);
}

// Calls onChunk(error, bytes) with one ready chunk, or with the end (bytes
// null) or the read error.
static void deliver(blob_reader_t* r, chunk_t chunk, int error) {
  napi_env env = r->env;
  intptr_t weight = block_weight();
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[2], callback, global, result;
  napi_get_undefined(env, &argv[0]);
  if (!chunk.block && error) {
    argv[0] = errno_error(env, error);
    napi_get_undefined(env, &argv[1]);
  } else if (!chunk.block) {
    napi_get_null(env, &argv[1]);
  } else if (chunk.length >= COPY_BELOW &&
             napi_create_external_buffer(env, chunk.length, chunk.block, block_release, (void*)weight, &argv[1]) == napi_ok) {
    block_held(env, weight);  // back to the pool when no Buffer or view holds the memory any more
  } else {
    void* copy;  // a small chunk (its block is reused at once), or a runtime without external buffers
    napi_create_buffer_copy(env, chunk.length, chunk.block, &copy, &argv[1]);
    block_put(chunk.block);
  }
  napi_get_reference_value(env, r->callback, &callback);
  napi_get_global(env, &global);
  if (napi_make_callback(env, r->async_context, global, callback, 2, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

// On the loop: hand the ready chunk to JS while it is flowing (its callback
// may pause or close us; the thread fills the next meanwhile), or the end once
// the thread has finished. One per wake-up: when the thread has the next one
// ready before JS is done with this one, the loop is woken again and runs its
// timers and other I/O first, so a busy pipe holds it for one chunk at most.
static void on_async(uv_async_t* handle) {
  blob_reader_t* r = handle->data;
  if (r->closed || r->ended) return;
  chunk_t chunk = {NULL, 0};
  int last = 0, error = 0;
  uv_mutex_lock(&r->lock);
  if (r->flowing && r->ready.block) {
    chunk = r->ready;
    r->ready.block = NULL;
    uv_cond_signal(&r->wake);  // room for the next
  } else if (r->flowing && r->finished) {
    last = 1;
    error = r->error;
  }
  uv_mutex_unlock(&r->lock);
  if (!chunk.block && !last) return;
  if (chunk.block) give_spare(r);  // the thread reads on while JS takes this one
  if (last) {
    r->ended = 1;
    uv_unref((uv_handle_t*)&r->async);  // nothing more will come
  }
  deliver(r, chunk, error);
  if (!r->closed && !r->ended) wake_if_deliverable(r);
}

static void reader_finalize(napi_env env, void* data, void* hint) {
  blob_reader_t* r = data;
  r->finalized = 1;
  if (!r->closed) reader_close(r);
  else if (r->handle_closed) free(r);
}

static blob_reader_t* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  blob_reader_t* r = NULL;
  napi_unwrap(env, self, (void**)&r);
  return r;
}

static napi_value reader_new(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], self;
  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  int32_t fd;
  napi_valuetype algorithm_type, callback_type;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_typeof(env, argv[1], &algorithm_type) != napi_ok ||
      (algorithm_type != napi_string && algorithm_type != napi_null) || napi_typeof(env, argv[2], &callback_type) != napi_ok ||
      callback_type != napi_function) {
    napi_throw_type_error(env, NULL, "new BlobReader(fd: number, algorithm: string | null, onChunk: Function)");
    return NULL;
  }
  const EVP_MD* md = NULL;
  if (algorithm_type == napi_string) {
    char name[16];
    size_t length;
    napi_get_value_string_utf8(env, argv[1], name, sizeof name, &length);
    resolve_openssl();
    md = ssl.available ? ssl.by_name(name) : NULL;
    if (!md) {
      napi_throw_error(env, "ENOTSUP", "BlobReader: this digest algorithm is not available off the main thread");
      return NULL;
    }
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) return throw_errno(env, "fcntl(O_NONBLOCK)", errno);
  int cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (cancel_fd < 0) return throw_errno(env, "eventfd", errno);
  uv_loop_t* loop;
  napi_get_uv_event_loop(env, &loop);

  blob_reader_t* r = calloc(1, sizeof *r);
  r->fd = fd;
  r->cancel_fd = cancel_fd;
  r->env = env;
  uv_mutex_init(&r->lock);
  uv_cond_init(&r->wake);
  uv_async_init(loop, &r->async, on_async);
  r->async.data = r;
  uv_unref((uv_handle_t*)&r->async);
  if (md) {
    r->hash = ssl.ctx_new();
    ssl.init(r->hash, md, NULL);
  }
  napi_value name;
  napi_create_string_utf8(env, "containers-image-proxy:blob", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->async_context);
  napi_create_reference(env, argv[2], 1, &r->callback);
  napi_wrap(env, self, r, reader_finalize, NULL, NULL);
  napi_add_env_cleanup_hook(env, reader_cleanup, r);
  r->hooked = 1;
  uv_thread_options_t options = {.flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = THREAD_STACK};
  int e = uv_thread_create_ex(&r->thread, &options, reader_thread, r);
  if (e != 0) {
    reader_close(r);
    return throw_errno(env, "uv_thread_create", -e);
  }
  r->thread_started = 1;
  return self;
}

static napi_value reader_set_flowing(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool flowing;
  blob_reader_t* r = unwrap(env, info, &argc, argv);
  if (argc < 1 || napi_get_value_bool(env, argv[0], &flowing) != napi_ok) {
    napi_throw_type_error(env, NULL, "BlobReader.setFlowing(flowing: boolean)");
    return NULL;
  }
  if (!r || r->closed || r->ended) return NULL;  // nothing more to read: nothing to ask for
  // A flowing reader keeps the loop alive, as a reading socket does; a paused one does not.
  if (flowing) uv_ref((uv_handle_t*)&r->async);
  else uv_unref((uv_handle_t*)&r->async);
  if (flowing) give_spare(r);
  uv_mutex_lock(&r->lock);
  r->flowing = flowing;
  if (flowing) uv_cond_signal(&r->wake);
  uv_mutex_unlock(&r->lock);
  wake_if_deliverable(r);  // delivered from the loop, never inside this call
  return NULL;
}

static napi_value reader_digest(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  blob_reader_t* r = unwrap(env, info, &argc, NULL);
  napi_value result;
  if (!r || r->closed || !r->hash || !r->ended || r->error) {
    napi_throw_error(env, "EINVAL", "BlobReader: no digest (not hashing, closed, or the end not delivered)");
    return NULL;
  }
  unsigned char md[64];
  unsigned int length = 0;
  ssl.final(r->hash, md, &length);
  ssl.ctx_free(r->hash);
  r->hash = NULL;
  char hex[129];
  static const char digits[] = "0123456789abcdef";
  for (unsigned int i = 0; i < length; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  napi_create_string_latin1(env, hex, 2 * length, &result);
  return result;
}

static napi_value reader_close_method(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  blob_reader_t* r = unwrap(env, info, &argc, NULL);
  if (r) reader_close(r);
  return NULL;
}

napi_status blobreader_define(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"setFlowing", NULL, reader_set_flowing, NULL, NULL, NULL, napi_default, NULL},
      {"digest", NULL, reader_digest, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, reader_close_method, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value reader_class, available;
  napi_status status = napi_define_class(env, "BlobReader", NAPI_AUTO_LENGTH, reader_new, NULL, 3, methods, &reader_class);
  if (status != napi_ok) return status;
  resolve_openssl();
  napi_get_boolean(env, ssl.available, &available);
  napi_property_descriptor exported[] = {
      {"BlobReader", NULL, NULL, NULL, NULL, reader_class, napi_default, NULL},
      {"blobHashAvailable", NULL, NULL, NULL, NULL, available, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 2, exported);
}
