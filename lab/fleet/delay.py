#!/usr/bin/python3
"""Holds every packet of an NFQUEUE queue for a fixed time, then lets it go: netem's delay, in user space.

The lab's kernel has no sch_netem (CONFIG_NET_SCH_NETEM is not set), but it has NFQUEUE
(xt_NFQUEUE, nfnetlink_queue). iptables sends the packets to queue QUEUE; this process learns
of each one (its id only: no payload is copied), and accepts it DELAY_MS after it arrived. The
kernel numbers a queue's packets in arrival order and a batch verdict accepts every id up to
the one named, so one verdict per tick releases everything that has waited long enough, in
order. Packets are never reordered or dropped here (loss is a separate nftables rule).

    delay.py QUEUE DELAY_MS NETNS...   (as root; queue QUEUE of each named network namespace)

One process serves every namespace: it opens its netlink socket inside each (setns through
libc, as `ip netns exec` does) and waits on all of them at once. The rules belong on INPUT
hooks (each side delays what it receives): a packet held on OUTPUT still counts against its
sending socket, and TCP's small-queue limit then stalls the sender (measured: 14 KB/s).

Python's standard library only (Debian's /usr/bin/python3): the netlink messages are packed by
hand, as in linux/netfilter/nfnetlink_queue.h.
"""
import collections
import ctypes
import os
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
# Enough room for every packet of a busy fleet over the delay (a full queue drops).
QUEUE_MAXLEN = 1 << 20


def attr(kind, payload):
    size = 4 + len(payload)
    return struct.pack('=HH', size, kind) + payload + b'\0' * (-size % 4)


def message(kind, queue, attrs, flags=NLM_F_REQUEST, seq=0):
    body = struct.pack('=BBH', socket.AF_UNSPEC, 0, socket.htons(queue)) + b''.join(attrs)
    return struct.pack('=IHHII', 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | kind, flags, seq, 0) + body


def configure(sock, queue):
    """Binds the queue and asks for metadata only; each request is acked, and a refusal is fatal."""
    requests = [
        attr(NFQA_CFG_CMD, struct.pack('!BxH', NFQNL_CFG_CMD_BIND, socket.AF_INET)),
        attr(NFQA_CFG_PARAMS, struct.pack('!IB', 0, NFQNL_COPY_META)),
        attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack('!I', QUEUE_MAXLEN)),
    ]
    for seq, request in enumerate(requests, 1):
        sock.send(message(NFQNL_MSG_CONFIG, queue, [request], NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = sock.recv(65536)
        kind = struct.unpack_from('=H', reply, 4)[0]
        errno = struct.unpack_from('=i', reply, 16)[0] if kind == NLMSG_ERROR else 0
        if errno:
            sys.exit(f'delay.py: configuring queue {queue} failed: {os.strerror(-errno)}')


def packet_ids(data):
    """The ids of the queued packets announced in one netlink datagram (several messages each)."""
    offset = 0
    while offset + 16 <= len(data):
        size, kind = struct.unpack_from('=IH', data, offset)
        if size < 16:
            break
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at = offset + 20  # past nlmsghdr (16) and nfgenmsg (4)
            while at + 4 <= offset + size:
                alen, akind = struct.unpack_from('=HH', data, at)
                if alen < 4:
                    break
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from('!I', data, at + 4)[0]
                at += (alen + 3) & ~3
        offset += (size + 3) & ~3


CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def open_in(netns, queue):
    """A bound, configured queue socket made inside network namespace `netns` (the process stays there)."""
    with open(f'/run/netns/{netns}') as fd:
        if libc.setns(fd.fileno(), CLONE_NEWNET) != 0:
            sys.exit(f'delay.py: setns {netns}: {os.strerror(ctypes.get_errno())}')
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.bind((0, 0))
    # A large receive buffer (root may force it), and no ENOBUFS errors: a burst must not end the run.
    sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    configure(sock, queue)
    return sock


def main():
    queue, delay = int(sys.argv[1]), int(sys.argv[2]) / 1000
    waiting = {open_in(ns, queue): collections.deque() for ns in sys.argv[3:]}  # (arrival, id), in id order
    print(f'delay.py: queue {queue} of {len(waiting)} namespaces, every packet held {delay * 1000:.0f} ms', flush=True)
    while True:
        heads = [q[0][0] for q in waiting.values() if q]
        timeout = max(0.0, min(heads) + delay - time.monotonic()) if heads else None
        for sock in select.select(list(waiting), [], [], timeout)[0]:
            now = time.monotonic()
            for _ in range(256):  # drain what is there without blocking
                try:
                    data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                waiting[sock].extend((now, pid) for pid in packet_ids(data))
        due = time.monotonic() - delay
        for sock, held in waiting.items():
            last = None
            while held and held[0][0] <= due:
                last = held.popleft()[1]
            if last is not None:
                sock.send(message(NFQNL_MSG_VERDICT_BATCH, queue, [attr(NFQA_VERDICT_HDR, struct.pack('!II', NF_ACCEPT, last))]))


if __name__ == '__main__':
    main()
