#!/usr/bin/env python3
"""PROTOCOL-LEVEL FAKE PROXY -- TEST-ONLY. Never ship or use this as skopeo.

Why it exists: real skopeo never sends a malformed reply, an oversized one,
stray or missing fds, a reply to no request, or hangs in Shutdown, so the
client's handling of those faults cannot be tested against it. This script
speaks just enough of `skopeo experimental-image-proxy`'s wire protocol to
misbehave on purpose.

How it is run: as the library's `skopeoCommand`
(`['python3', '.../fake_skopeo.py']`). Its argv (`experimental-image-proxy`
and any flags) is ignored. fd 0 is the AF_UNIX SOCK_SEQPACKET socket; one
JSON request per packet, one JSON reply per packet, fds as SCM_RIGHTS.

Environment:
  FAKE_PROXY_VERSION   what Initialize answers (default 0.2.8; '0.2.2'
                       provokes ProxyTooOldError, 'banana' a ProtocolError)
  FAKE_PROXY_SCENARIO  how to answer the first request of the method the
                       scenario is about (see SCENARIOS: OpenImage or
                       GetManifest); every other request is served normally,
                       so a test can reach the fault (open an image, then
                       fetch its manifest) and check afterwards that the
                       client is still in step. 'shutdown-hangs' instead
                       ignores SIGTERM and never exits on Shutdown.

The normal behaviour is a tiny well-behaved proxy: OpenImage(Optional) hands
out ids 1, 2, ...; CloseImage; GetManifest / GetFullConfig send a small
document through a pipe whose write end is closed only in FinishPipe (the
real server's "pipe trap"); GetBlob serves BLOB whatever the digest, replies
with its size and, in FinishPipe, checks size then digest with skopeo's own
messages; Shutdown exits 0.
"""

import hashlib
import json
import os
import signal
import socket
import sys
import time

VERSION = os.environ.get("FAKE_PROXY_VERSION", "0.2.8")
SCENARIO = os.environ.get("FAKE_PROXY_SCENARIO", "normal")

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + "a" * 64
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
# What GetBlob serves: small enough to sit in a pipe buffer whole.
BLOB = b"fake blob bytes\n" * 200
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()

# A byte sequence that cannot be parsed as JSON.
MALFORMED = b'{"success": tru'
# Over the 32 KiB the server's own request buffer holds: the client must not
# assume replies fit in it (skopeo 1.18 sends 46.5 KB GetLayerInfo replies).
HUGE = "x" * 100_000


def ok(value, pipeid=0):
    return {"success": True, "value": value, "pipeid": pipeid, "error": ""}


def failure(message, code=None):
    reply = {"success": False, "value": None, "pipeid": 0, "error": message}
    if code is not None:
        reply["error_code"] = code
    return reply


class FakeProxy:
    def __init__(self, sock):
        self.sock = sock
        self.next_image = 1
        self.next_pipe = 1
        self.pipes = {}  # pipeid -> write end, closed by FinishPipe
        self.pipe_errors = {}  # pipeid -> what FinishPipe answers (GetBlob's verdict)

    def send(self, reply, fds=()):
        data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            sys.exit(0)  # the client closed the socket: exit like skopeo does
        return json.loads(data)

    def new_pipe(self, content):
        """A pipe holding `content`; returns (pipeid, read end)."""
        r, w = os.pipe()
        os.write(w, content)  # small documents fit in the pipe buffer
        pipeid = self.next_pipe
        self.next_pipe += 1
        self.pipes[pipeid] = w
        return pipeid, r

    def send_with_fds(self, reply, fds):
        self.send(reply, fds)
        for fd in fds:
            os.close(fd)  # the client now holds its own copies

    def serve_normally(self, method, args):
        if method in ("OpenImage", "OpenImageOptional"):
            image = self.next_image
            self.next_image += 1
            self.send(ok(image))
        elif method == "CloseImage":
            self.send(ok(None))
        elif method in ("GetManifest", "GetFullConfig"):
            content, value = (MANIFEST, MANIFEST_DIGEST) if method == "GetManifest" else (CONFIG, None)
            pipeid, r = self.new_pipe(content)
            self.send_with_fds(ok(value, pipeid), [r])
        elif method == "GetBlob":
            self.get_blob(args, BLOB, len(BLOB))
        elif method == "FinishPipe":
            pipeid = args[0] if args else None
            w = self.pipes.pop(pipeid, None)
            error = self.pipe_errors.pop(pipeid, None)
            if w is None:
                self.send(failure(f"invalid pipe id {args!r}"))
            else:
                os.close(w)
                self.send(failure(error) if error else ok(None))
        elif method == "Shutdown":
            sys.exit(0)
        else:
            self.send(failure(f"unknown method {method}"))


    def get_blob(self, args, content, value, verdict=None):
        """Serves `content` for GetBlob(image, digest, size) and replies `value`.
        FinishPipe then answers `verdict`, or what skopeo's writer would: a
        size complaint, overwritten by a digest complaint."""
        digest, size = args[1], args[2]
        if verdict is None:
            if len(content) != size:
                verdict = f"expected {size} bytes in blob, got {len(content)}"
            if "sha256:" + hashlib.sha256(content).hexdigest() != digest:
                verdict = f"corrupted blob, expecting {digest}"
        pipeid, r = self.new_pipe(content)
        self.pipe_errors[pipeid] = verdict
        self.send_with_fds(ok(value, pipeid), [r])

    def run(self):
        request = self.recv()
        if request.get("method") != "Initialize":
            self.send(failure("the first request must be Initialize"))
            sys.exit(2)
        self.send(ok(VERSION))
        target, handler = SCENARIOS.get(SCENARIO, (None, None))
        while True:
            request = self.recv()
            method, args = request.get("method"), request.get("args", [])
            if method == target and handler is not None:
                handler(self, method, args)
                handler = None  # once only
            elif method == "Shutdown" and SCENARIO == "shutdown-hangs":
                # Never exits on its own; SIGTERM is ignored (see main), so
                # only SIGKILL ends it.
                while True:
                    time.sleep(3600)
            else:
                self.serve_normally(method, args)


# --- scenarios: each answers the first request of its target method --------


def malformed_json(proxy, method, args):
    proxy.send(MALFORMED)


def huge_string_value(proxy, method, args):
    # Valid JSON, 100 KB, but the value has the wrong type for OpenImage.
    proxy.send(ok(HUGE))


def huge_valid_reply(proxy, method, args):
    # Valid JSON, 100 KB, and a correct reply: extra fields are ignored.
    image = proxy.next_image
    proxy.next_image += 1
    reply = ok(image)
    reply["padding"] = HUGE
    proxy.send(reply)


def unexpected_fd(proxy, method, args):
    # OpenImage never carries an fd; attach a pipe's read end anyway.
    r, w = os.pipe()
    os.close(w)
    image = proxy.next_image
    proxy.next_image += 1
    proxy.send_with_fds(ok(image), [r])


def too_many_fds(proxy, method, args):
    # More fds than the client's control buffer has room for (MSG_CTRUNC).
    fds = []
    for _ in range(12):
        r, w = os.pipe()
        os.close(w)
        fds.append(r)
    proxy.send_with_fds(ok(1), fds)


def missing_fd(proxy, method, args):
    # GetManifest with a pipeid but no fd.
    pipeid, r = proxy.new_pipe(MANIFEST)
    os.close(r)
    proxy.send(ok(MANIFEST_DIGEST, pipeid))


def missing_pipeid(proxy, method, args):
    # GetManifest with its fd but no "pipeid" key at all.
    pipeid, r = proxy.new_pipe(MANIFEST)
    reply = ok(MANIFEST_DIGEST)
    del reply["pipeid"]
    proxy.send_with_fds(reply, [r])


def wrong_type(proxy, method, args):
    # OpenImage must return an integer id.
    proxy.send(ok("seven"))


def exit_without_reply(proxy, method, args):
    os._exit(3)


def close_socket_stay_alive(proxy, method, args):
    # The socket goes away but the process does not: only the socket's EOF
    # tells the client, and it must not wait for an exit that never comes.
    proxy.sock.close()  # the socket object owns fd 0
    while True:
        time.sleep(3600)


def unknown_error_code(proxy, method, args):
    proxy.send(failure("the flux capacitor is out of alignment", code="flux-capacitor"))


def duplicate_reply(proxy, method, args):
    # Answers the request, then answers it again.
    proxy.serve_normally(method, args)
    proxy.send(ok(999))


def blob_size_unreported(proxy, method, args):
    # The source cannot tell the blob's size (a registry without
    # Content-Length): GetBlob's reply value is -1.
    proxy.get_blob(args, BLOB, -1)


def blob_miscounted_complaint(proxy, method, args):
    # FinishPipe complains about a byte count that is not what was sent.
    proxy.get_blob(args, BLOB, len(BLOB), verdict=f"expected {args[2]} bytes in blob, got {len(BLOB) - 1}")


def blob_other_bytes(proxy, method, args):
    # Other bytes than the digest names, and a verdict that only mentions
    # the size: only the client's own hash can catch it.
    other = BLOB.replace(b"fake", b"evil")
    proxy.get_blob(args, other, len(other), verdict=f"expected {args[2]} bytes in blob, got {len(other)}")


# name -> (the method whose first request misbehaves, how)
SCENARIOS = {
    "malformed-json": ("OpenImage", malformed_json),
    "huge-string-value": ("OpenImage", huge_string_value),
    "huge-valid-reply": ("OpenImage", huge_valid_reply),
    "unexpected-fd": ("OpenImage", unexpected_fd),
    "too-many-fds": ("OpenImage", too_many_fds),
    "missing-fd": ("GetManifest", missing_fd),
    "missing-pipeid": ("GetManifest", missing_pipeid),
    "wrong-type": ("OpenImage", wrong_type),
    "exit-without-reply": ("OpenImage", exit_without_reply),
    "close-socket-stay-alive": ("OpenImage", close_socket_stay_alive),
    "unknown-error-code": ("OpenImage", unknown_error_code),
    "duplicate-reply": ("OpenImage", duplicate_reply),
    "blob-size-unreported": ("GetBlob", blob_size_unreported),
    "blob-miscounted-complaint": ("GetBlob", blob_miscounted_complaint),
    "blob-other-bytes": ("GetBlob", blob_other_bytes),
    # "shutdown-hangs" is handled in run() and main(): Shutdown never returns.
}


def main():
    if SCENARIO == "shutdown-hangs":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=0)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        print("fake_skopeo: fd 0 is not an AF_UNIX SOCK_SEQPACKET socket", file=sys.stderr)
        sys.exit(2)
    try:
        FakeProxy(sock).run()
    except (BrokenPipeError, ConnectionResetError):
        sys.exit(0)


if __name__ == "__main__":
    main()
