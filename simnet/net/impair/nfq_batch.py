"""One verdict for many queued packets: NFQUEUE's batch verdict, which the Python binding lacks.

The delay line holds packets that share a release time (without `reorder`, a packet never
leaves before the one queued ahead of it, so a long-delayed packet gathers the short-delayed
ones behind it into a pile). One verdict per packet would let them leave one system call, and
one kernel forwarding, after another: the last of k packets (k - 1) verdicts late. A real link
sends such a pile at wire speed. NFQNL_MSG_VERDICT_BATCH gives one verdict to every packet of a
queue up to a packet id, in one `sendmsg`, so the whole pile leaves at once.

What the kernel does with it (net/netfilter/nfnetlink_queue.c, `nfqnl_recv_verdict_batch`): it
walks the queue's list of held packets, which is in the order it queued them, i.e. by packet
id, takes each up to the first whose id comes after the given one (serial-number order, so the
id's wrap-around at 2^32 is no exception), then reinjects them in that order. So a batch is
only correct where the caller means to release *every* packet of that queue it holds with an
id up to the given one (the delay line checks this, `nfqueue_helper.Line`); a packet it has
verdicted already is no longer in the kernel's list, and one it has not read yet has a higher
id than every packet it has read (the kernel numbers and sends them in one order, under the
queue's lock).

The message (include/uapi/linux/netfilter/nfnetlink_queue.h, nfnetlink.h, linux/netlink.h),
32 bytes, sent to the kernel (port 0) on the queue's own netlink socket, since the kernel
accepts a verdict only from the socket bound to that queue:

    nlmsghdr   u32 length, u16 type (NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT_BATCH),
               u16 flags (NLM_F_REQUEST), u32 sequence, u32 port id (0: the kernel's to fill)
    nfgenmsg   u8 family (AF_UNSPEC), u8 version (NFNETLINK_V0), be16 res_id (queue number)
    nlattr     u16 length (12), u16 type (NFQA_VERDICT_HDR)
    verdict    be32 verdict (NF_ACCEPT), be32 packet id

Netlink headers are in host byte order, nfnetlink's payload in network order. No ACK is asked
for: the kernel answers only an error, as for the binding's own per-packet verdicts.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_NETFILTER = 12  # <linux/netlink.h>; Python's socket module lacks it
NFNL_SUBSYS_QUEUE = 3  # <linux/netfilter/nfnetlink.h>
NFNETLINK_V0 = 0
NFQNL_MSG_VERDICT_BATCH = 3  # <linux/netfilter/nfnetlink_queue.h>, enum nfqnl_msg_types
NFQA_VERDICT_HDR = 2  # enum nfqnl_attr_type
NLM_F_REQUEST = 0x1
NF_DROP, NF_ACCEPT = 0, 1  # <linux/netfilter.h>
AF_UNSPEC = 0

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")
_VERDICT_HDR = struct.Struct("!II")
_ATTR_LEN = _NLATTR.size + _VERDICT_HDR.size
MESSAGE_LEN = _NLMSGHDR.size + _NFGENMSG.size + _ATTR_LEN  # 32: every part is 4-aligned


def verdict_batch_message(queue: int, packet_id: int, verdict: int = NF_ACCEPT) -> bytes:
    """The netlink message giving `verdict` to every held packet of `queue` up to `packet_id`."""
    if not 0 <= queue <= 0xFFFF:
        raise ValueError(f"queue number {queue} is not a 16-bit number")
    return b"".join(
        (
            _NLMSGHDR.pack(
                MESSAGE_LEN, (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH, NLM_F_REQUEST, 0, 0
            ),
            _NFGENMSG.pack(AF_UNSPEC, NFNETLINK_V0, queue),
            _NLATTR.pack(_ATTR_LEN, NFQA_VERDICT_HDR),
            _VERDICT_HDR.pack(verdict, packet_id & 0xFFFFFFFF),
        )
    )


class BatchVerdict:
    """Batch verdicts for one bound queue, sent on that queue's netlink socket (`fd`, the
    binding's `get_fd()`; duplicated, so closing this leaves the binding's socket open)."""

    def __init__(self, fd: int, queue: int) -> None:
        self.queue = queue
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER, fileno=os.dup(fd)
        )
        self.sent = 0

    def accept_through(self, packet_id: int) -> None:
        """Accept every packet of the queue not verdicted yet with an id up to `packet_id`
        (OSError if the message could not be sent: then nothing was released)."""
        self.sock.sendto(verdict_batch_message(self.queue, packet_id), (0, 0))
        self.sent += 1

    def close(self) -> None:
        self.sock.close()
