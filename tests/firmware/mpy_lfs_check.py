# MicroPython script (test_fw_log.py): the flash log on a real littlefs (VfsLfs2) over a RAM block
# device whose power is cut at a chosen block-device write. argv: work dir (unused), seed.
import json
import os
import random
import sys

import log
from mpy_common import encode_record, log_encoder, read_checked

seed = int(sys.argv[2])
random.seed(seed)
BS = 4096
NB = 96


class RamBD:
    """Block device with littlefs's extended interface; snapshot = flash contents at the power cut."""

    def __init__(self, data=None):
        self.data = bytearray(data) if data is not None else bytearray(b"\xff" * (BS * NB))
        self.ops = 0
        self.cut_at = None
        self.snapshot = None
        self.state_at_cut = None
        self.lg = None

    def readblocks(self, n, buf, off=0):
        a = n * BS + off
        buf[:] = self.data[a : a + len(buf)]

    def _op(self):
        self.ops += 1
        if self.ops == self.cut_at and self.snapshot is None:
            self.snapshot = bytes(self.data)  # power lost before this operation
            lg = self.lg
            self.state_at_cut = (lg.records_written, lg.records_written - lg._fill // log.REC) if lg else (0, 0)

    def writeblocks(self, n, buf, off=None):
        self._op()
        a = n * BS + (off or 0)
        if off is None:  # plain interface: erase + write
            self.data[n * BS : (n + 1) * BS] = b"\xff" * BS
        self.data[a : a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return NB
        if op == 5:
            return BS
        if op == 6:  # erase
            self._op()
            self.data[arg * BS : (arg + 1) * BS] = b"\xff" * BS
            return 0
        return 0


enc = log_encoder()


def write(lg, seq, nrec):
    for _ in range(nrec):
        f = encode_record(enc, seq)  # seq < 2**24 here: t_hi = seq >> 24 = 0
        lg.put(f, len(f))
        seq += log.CAP_COMPACT
    return seq


def read_all(lg):
    return read_checked(lg, 0, channels=1)


# dry run to count the block-device operations of a full session
bd = RamBD()
os.VfsLfs2.mkfs(bd)
base = bytes(bd.data)
os.mount(os.VfsLfs2(bd), "/lfs")
lg = log.Log("/lfs/log", seg_bytes=4 * BS, max_bytes=60 * BS)
ops0 = bd.ops
lg.start_run()
write(lg, 0, 300)
lg.stop_run()
total_ops = bd.ops - ops0
os.umount("/lfs")

out = []
for trial in range(10):
    bd = RamBD(base)
    os.mount(os.VfsLfs2(bd), "/lfs")
    lg = log.Log("/lfs/log", seg_bytes=4 * BS, max_bytes=60 * BS)
    bd.lg = lg
    bd.cut_at = bd.ops + random.randint(1, total_ops)
    lg.start_run()
    write(lg, 0, 300)
    lg.stop_run()
    os.umount("/lfs")
    if bd.snapshot is None:
        continue
    written, synced = bd.state_at_cut
    after = RamBD(bd.snapshot)  # reboot on what the flash held when the power went
    os.mount(os.VfsLfs2(after), "/lfs")
    lg2 = log.Log("/lfs/log", seg_bytes=4 * BS, max_bytes=60 * BS)
    seqs, ok = read_all(lg2)
    lg2.start_run()  # and the clip keeps logging after the reboot
    write(lg2, lg2.end_seq, 5)
    lg2.stop_run()
    seqs2, ok2 = read_all(lg2)
    os.umount("/lfs")
    out.append({"written": written, "synced": synced, "recovered": len(seqs),
                "prefix": seqs == [i * log.CAP_COMPACT for i in range(len(seqs))], "ok": ok and ok2,
                "after": len(seqs2)})
print(json.dumps({"total_ops": total_ops, "trials": out}))
