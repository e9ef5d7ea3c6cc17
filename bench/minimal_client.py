#!/usr/bin/env python3
"""The smallest client of `skopeo experimental-image-proxy` that can stream a
blob: the baseline our TypeScript client is measured against.

It does only what the protocol needs (see /work/shared/DESIGN.md section 2):
a SOCK_SEQPACKET socketpair as skopeo's stdin, one JSON request per packet,
fds received with recvmsg (socket.recv_fds), and

  GetBlob:    read exactly `size` bytes 1 MiB at a time, THEN FinishPipe
              (the server only closes its end inside FinishPipe);
  GetRawBlob: (protocol 0.2.8) data + error fds, read data to EOF, then
              the error pipe (empty means success). No client-side hashing
              unless --verify is given.

Only the transfer is timed (request sent -> verdict known); spawning,
Initialize and OpenImage are not. Prints one JSON line:
  {"protocol": "0.2.8", "method": "GetBlob", "bytes": N, "seconds": S,
   "cpu": C, "skopeo_cpu": K}
with C and K the CPU seconds (user + sys) of this client and of skopeo
during the transfer.

With --metadata N it instead times N x (OpenImage, GetManifest, GetFullConfig,
CloseImage), reading each small document after its FinishPipe (safe for
documents that fit the pipe buffer), and prints {"cycles": N, "seconds": S}.

usage: minimal_client.py SKOPEO REFERENCE DIGEST SIZE {GetBlob,GetRawBlob} [--verify]
       minimal_client.py SKOPEO REFERENCE --metadata N
"""

import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import time

READ_SIZE = 1024 * 1024
# Replies can exceed the server's 32 KiB request buffer; receive generously.
MAX_REPLY = 1024 * 1024


class Proxy:
    def __init__(self, skopeo):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.child = subprocess.Popen([skopeo, "experimental-image-proxy"], stdin=theirs.fileno())
        theirs.close()

    def call(self, method, *args, nfds=0):
        self.sock.send(json.dumps({"method": method, "args": list(args)}).encode())
        data, fds, flags, _ = socket.recv_fds(self.sock, MAX_REPLY, 2)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise RuntimeError(f"{method}: truncated reply")
        reply = json.loads(data)
        if not reply["success"]:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"{method}: {reply['error']}")
        if len(fds) != nfds:
            raise RuntimeError(f"{method}: expected {nfds} fds, got {len(fds)}")
        return reply["value"], reply["pipeid"], fds

    def cpu_seconds(self):
        """skopeo's CPU seconds so far (user + sys, all threads), from /proc."""
        with open(f"/proc/{self.child.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def shutdown(self):
        # Shutdown has no reply: the server just exits.
        self.sock.send(json.dumps({"method": "Shutdown", "args": []}).encode())
        self.child.wait(timeout=30)
        self.sock.close()


# One buffer read into again and again (os.readv). os.read would allocate a
# fresh 1 MiB bytes object per call and shrink it to the bytes read: glibc
# serves that with mmap, mremap and munmap per read, and on this machine that
# cost 11 s (6 s sys) per 512 MiB instead of under 1 s.
BUFFER = memoryview(bytearray(READ_SIZE))


def read_exactly(fd, size):
    got = 0
    while got < size:
        n = os.readv(fd, [BUFFER[: min(READ_SIZE, size - got)]])
        if not n:
            break
        got += n
    return got


def read_to_eof(fd, hasher=None):
    got = 0
    while True:
        n = os.readv(fd, [BUFFER])
        if not n:
            return got
        got += n
        if hasher is not None:
            hasher.update(BUFFER[:n])


def read_all(fd):
    parts = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def fetch_document(proxy, method, image):
    _, pipeid, (fd,) = proxy.call(method, image, nfds=1)
    proxy.call("FinishPipe", pipeid)  # the writer is done: all bytes and EOF are in the pipe
    body = read_all(fd)
    os.close(fd)
    return json.loads(body)


def metadata(skopeo, reference, cycles):
    proxy = Proxy(skopeo)
    proxy.call("Initialize")
    start = time.perf_counter()
    for _ in range(cycles):
        image, _, _ = proxy.call("OpenImage", reference)
        fetch_document(proxy, "GetManifest", image)
        fetch_document(proxy, "GetFullConfig", image)
        proxy.call("CloseImage", image)
    seconds = time.perf_counter() - start
    proxy.shutdown()
    print(json.dumps({"cycles": cycles, "seconds": seconds}))


def main():
    if len(sys.argv) == 5 and sys.argv[3] == "--metadata":
        return metadata(sys.argv[1], sys.argv[2], int(sys.argv[4]))
    skopeo, reference, digest, size, method = sys.argv[1:6]
    verify = "--verify" in sys.argv[6:]
    size = int(size)
    proxy = Proxy(skopeo)
    protocol, _, _ = proxy.call("Initialize")
    image, _, _ = proxy.call("OpenImage", reference)

    def own_cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    cpu_start, skopeo_start = own_cpu(), proxy.cpu_seconds()
    start = time.perf_counter()
    if method == "GetBlob":
        _, pipeid, (fd,) = proxy.call("GetBlob", image, digest, size, nfds=1)
        got = read_exactly(fd, size)
        proxy.call("FinishPipe", pipeid)  # the server's verdict on digest and size
        os.close(fd)
    elif method == "GetRawBlob":
        _, _, (data_fd, error_fd) = proxy.call("GetRawBlob", image, digest, nfds=2)
        hasher = hashlib.sha256() if verify else None
        got = read_to_eof(data_fd, hasher)
        error = read_all(error_fd)
        os.close(data_fd)
        os.close(error_fd)
        if error:
            raise RuntimeError(f"GetRawBlob: {error.decode(errors='replace')}")
        if hasher is not None and "sha256:" + hasher.hexdigest() != digest:
            raise RuntimeError("GetRawBlob: digest mismatch")
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - start
    cpu, skopeo_cpu = own_cpu() - cpu_start, proxy.cpu_seconds() - skopeo_start

    if got != size:
        raise RuntimeError(f"{method}: got {got} bytes, expected {size}")
    proxy.call("CloseImage", image)
    proxy.shutdown()
    print(json.dumps({"protocol": protocol, "method": method, "bytes": got, "seconds": seconds, "cpu": cpu, "skopeo_cpu": skopeo_cpu}))


if __name__ == "__main__":
    main()
