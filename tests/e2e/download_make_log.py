# MicroPython script (tests/e2e/test_download*.py): write runs into a clip log folder with the
# firmware's own log.py and frames.DataEncoder, exactly as the clip's logger does.
# argv: log dir, spec file. Spec: b"TGRS", u16 runs; per run "<IIIHBI" (seq0, t0_hi, t0_lo, period_q,
# mode, n) then n samples of 6 (compact) or 9 (full) int16. Prints one JSON line: the segments per run.
import json
import struct
import sys

import frames
import log
import wire

root, spec = sys.argv[1], sys.argv[2]
data = open(spec, "rb").read()
assert data[:4] == b"TGRS"
nruns = struct.unpack_from("<H", data, 4)[0]
off = 6
lg = log.Log(root, max_bytes=1 << 30)
out = []
for _ in range(nruns):
    seq0, t_hi, t_lo, period_q, mode, n = struct.unpack_from("<IIIHBI", data, off)
    off += struct.calcsize("<IIIHBI")
    k = 9 if mode == wire.MODE_FULL else 6
    fmt = "<%dh" % k
    t0 = (t_hi << 24) | t_lo
    enc = frames.DataEncoder(mode, log=True)
    enc.cap = log.CAP_FULL if mode == wire.MODE_FULL else log.CAP_COMPACT
    run = lg.start_run()
    i = 0
    while i < n:
        t = t0 + (i * period_q) // 4
        enc.begin(seq0 + i, t >> 24, t & 0xFFFFFF, period_q)
        m = min(enc.cap, n - i)
        for j in range(m):
            enc.add(*struct.unpack_from(fmt, data, off + (i + j) * 2 * k))
        f = enc.finish()
        lg.slot()[: len(f)] = f
        lg.commit()
        i += m
    off += n * 2 * k
    lg.stop_run()
    out.append({"run": run, "segments": [log._NAME % (s[0], s[1]) for s in lg._segs if s[0] == run]})
print(json.dumps(out))
