# MicroPython script (run by test_fw_log.py under the unix port): exercises firmware/log.py
# and prints one JSON line of results per check. argv: check name, work dir, seed.
import json
import os
import random
import sys

import log
from mpy_common import encode_record, log_encoder, rmtree
from mpy_common import read_checked as verify

check, work, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(seed)


enc = log_encoder()


def write(lg, seq, nrec):
    for _ in range(nrec):
        f = encode_record(enc, seq)
        slot = lg.slot()
        slot[: len(f)] = f
        lg.commit()
        seq += log.CAP_COMPACT
    return seq


def seg_files(root):
    return sorted(n for n in os.listdir(root) if n.endswith(".seg"))


if check == "powerloss":
    out = []
    for trial in range(12):
        root = work + "/t%d" % trial
        rmtree(root)
        lg = log.Log(root, seg_bytes=4 * log.BLOCK, max_bytes=1 << 30)
        lg.start_run()
        blocks = random.randint(1, 9)
        nrec = blocks * log.PER_BLOCK  # the last block is the one being written at the power loss
        end = write(lg, 0, nrec)
        extra = random.randint(0, log.PER_BLOCK - 1)  # records still in RAM: lost with the power
        write(lg, end, extra)
        lg._f.close()  # power loss: no stop_run, no sync of the RAM block
        names = seg_files(root)
        path = root + "/" + names[-1]
        data = open(path, "rb").read()
        size = len(data)
        cut = random.randint(max(0, size - log.BLOCK), size)
        mode = random.choice(("truncate", "garbage", "erased"))
        tail = b""
        if mode == "garbage":
            tail = bytes(random.getrandbits(8) for _ in range(random.randint(1, size - cut + 200)))
        elif mode == "erased":  # NOR flash after an interrupted erase reads 0xFF
            tail = b"\xff" * (size - cut)
        with open(path, "wb") as f:
            f.write(data[:cut] + tail)
        complete = (sum(os.stat(root + "/" + n)[6] for n in names[:-1]) + cut) // log.REC
        lg2 = log.Log(root, seg_bytes=4 * log.BLOCK, max_bytes=1 << 30)
        seqs, ok = verify(lg2)
        # a new run after the recovery continues the sequence and reads back
        lg2.start_run()
        write(lg2, lg2.end_seq, 3)
        lg2.stop_run()
        seqs2, ok2 = verify(log.Log(root, seg_bytes=4 * log.BLOCK, max_bytes=1 << 30))
        out.append({
            "mode": mode, "appended": nrec + extra, "synced": nrec, "complete_before_cut": complete,
            "recovered": len(seqs), "prefix": seqs == [i * log.CAP_COMPACT for i in range(len(seqs))],
            "values_ok": ok and ok2, "torn": lg2.torn_records, "after_new_run": len(seqs2),
            "continues": seqs2[len(seqs):] == [(len(seqs) + i) * log.CAP_COMPACT for i in range(3)],
        })
        rmtree(root)
    print(json.dumps(out))

elif check == "recovery_tmp":
    # a crash during recovery leaves NAME.seg.tmp next to the intact original
    root = work + "/r"
    rmtree(root)
    lg = log.Log(root, max_bytes=1 << 30)
    lg.start_run()
    write(lg, 0, 40)
    lg.stop_run()
    names = seg_files(root)
    with open(root + "/" + names[-1] + ".tmp", "wb") as f:
        f.write(b"partial copy")
    with open(root + "/" + names[-1], "ab") as f:
        f.write(b"\x00" * 50)  # and a torn tail
    lg2 = log.Log(root, max_bytes=1 << 30)
    seqs, ok = verify(lg2)
    print(json.dumps({"recovered": len(seqs), "values_ok": ok, "tmp_left": [n for n in os.listdir(root) if n.endswith(".tmp")]}))

elif check == "resume":
    root = work + "/d"
    rmtree(root)
    lg = log.Log(root, seg_bytes=2 * log.BLOCK, max_bytes=1 << 30)
    lg.start_run()
    end = write(lg, 1000, 150)  # 150 records over several segments
    lg.stop_run()
    lg.start_run()
    end2 = write(lg, end, 7)  # a second run, still open: 7 records in the RAM block
    full, ok_full = verify(lg)
    cut = random.randint(1000, end2 - 1)
    a, ok_a = verify(lg, 1000, cut - 1000)  # first half of an interrupted download
    last = a[-1] + log.CAP_COMPACT  # where the host resumes: after the last sample it got
    b, ok_b = verify(lg, last)
    mid, _ = verify(lg, cut, 1)
    print(json.dumps({
        "full": full, "a": a, "b": b, "cut": cut, "ok": ok_full and ok_a and ok_b, "mid": mid,
        "first_seq": lg.first_seq, "end_seq": lg.end_seq, "end2": end2,
    }))

elif check == "read_while_writing":
    # a download is consumed while the writer goes on: blocks reach flash, segments open and the
    # oldest rotate away between two records the reader yields. Every record of the range comes
    # once, in order (trials with random pacing; ``rotating`` keeps a 4-segment budget)
    out = []
    for trial in range(24):
        root = work + "/w%d" % trial
        rmtree(root)
        rotating = trial % 2 == 1
        seg = 2 * log.BLOCK
        lg = log.Log(root, seg_bytes=seg, max_bytes=4 * seg if rotating else 1 << 30)
        lg.start_run()
        nrec = random.randint(20, 3 * log.PER_BLOCK) if not rotating else random.randint(7, 8) * log.PER_BLOCK
        end = write(lg, 0, nrec + random.randint(0, log.PER_BLOCK - 1))
        # what a backfill asks for: the newest samples, up to now (the RAM block included)
        from_seq = max(0, end - log.CAP_COMPACT * random.randint(1, 2 * log.PER_BLOCK))
        stop = end
        got = []
        writes0 = lg.writes
        for rec in lg.read(from_seq, stop - from_seq):
            got.append(log.rec_seq(rec))
            end = write(lg, end, random.choice((0, 0, 1, 1, 2, 5, 17)))
        want = list(range(from_seq - from_seq % log.CAP_COMPACT, stop, log.CAP_COMPACT))
        out.append({"ok": got == want, "n": len(want), "got_n": len(got), "flushes": lg.writes - writes0,
                    "rotations": lg.rotations, "bad": [x for x in got if x not in want][:3],
                    "missing": [x for x in want if x not in got][:3]})
        lg.stop_run()
    print(json.dumps(out))

elif check == "rotate":
    root = work + "/f"
    rmtree(root)
    seg = 2 * log.BLOCK
    lg = log.Log(root, seg_bytes=seg, max_bytes=3 * seg)
    lg.start_run()
    end = write(lg, 0, 10 * 2 * log.PER_BLOCK + 5)  # 10 segments and a bit into a 3-segment budget
    used = lg.used_bytes()
    lost, first = lg.lost, lg.first_seq
    lg.stop_run()
    seqs, ok = verify(lg)
    lg2 = log.Log(root, seg_bytes=seg, max_bytes=3 * seg)
    print(json.dumps({
        "end": end, "used": used, "max": 3 * seg, "lost": lost, "first_seq": first,
        "first_read": seqs[0], "n_read": len(seqs), "ok": ok, "lost_after_reboot": lg2.lost,
        "rotations": lg.rotations, "end_after_reboot": lg2.end_seq,
    }))
