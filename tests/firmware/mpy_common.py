# Helpers shared by the MicroPython check scripts (mpy_*_check.py import it: a script's own
# folder is first on MicroPython's sys.path).
import os

import frames
import log
import wire


def rmtree(p):
    try:
        names = os.listdir(p)
    except OSError:
        return
    for n in names:
        os.remove(p + "/" + n)
    os.rmdir(p)


def value(seq, j):
    # a sample's content follows from its seq, so any corruption is seen
    return ((seq * 7 + j * 13) & 0x7FFF) - 0x4000


def log_encoder():
    """A compact log-frame encoder that fills one flash log record."""
    enc = frames.DataEncoder(wire.MODE_COMPACT, log=True)
    enc.cap = log.CAP_COMPACT
    return enc


def encode_record(enc, seq):
    """The log frame of samples seq .. seq + CAP_COMPACT - 1 (contents from value())."""
    enc.begin(seq, seq >> 24, (seq * 5000) & 0xFFFFFF, 20000)
    for i in range(log.CAP_COMPACT):
        s = seq + i
        enc.add(value(s, 0), value(s, 1), value(s, 2), value(s, 3), value(s, 4), value(s, 5))
    return enc.finish()


def read_checked(lg, from_seq=0, count=0, channels=6):
    """(seqs of the records read, the first ``channels`` values of every sample right?)"""
    seqs = []
    ok = True
    for rec in lg.read(from_seq, count):
        s0 = log.rec_seq(rec)
        seqs.append(s0)
        for i in range(log.rec_n(rec)):
            for j in range(channels):
                o = 4 + wire.DATA_HDR_SIZE + i * 12 + 2 * j
                v = rec[o] | rec[o + 1] << 8
                v = v - 0x10000 if v & 0x8000 else v
                ok = ok and v == value(s0 + i, j)
    return seqs, ok
