// Declarations shared by the addon's two halves: the transport
// (seqpacket.c, which owns the module's init) and the extraction syscalls
// (fsops.c).
#pragma once
#include <node_api.h>

// Throws an Error whose code is the errno's name (e.g. "ENOENT"); returns NULL.
napi_value throw_errno(napi_env env, const char* what, int err);

// Adds fsops.c's functions to the module's exports.
napi_status fsops_define(napi_env env, napi_value exports);
