// Declarations shared by the addon's parts: the transport (seqpacket.c,
// which owns the module's init), the extraction syscalls (fsops.c) and the
// blob pipe reader (blobreader.c).
#pragma once
#include <node_api.h>

// Throws an Error whose code is the errno's name (e.g. "ENOENT"); returns NULL.
napi_value throw_errno(napi_env env, const char* what, int err);

// Adds fsops.c's functions to the module's exports.
napi_status fsops_define(napi_env env, napi_value exports);

// Adds blobreader.c's BlobReader and blobHashAvailable to the module's exports.
napi_status blobreader_define(napi_env env, napi_value exports);
