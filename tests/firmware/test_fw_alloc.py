"""Zero heap allocation per sample in the firmware's ring writer and its consumers (stream framing
+ serial send, flash log records), measured with gc.mem_alloc under the MicroPython unix port."""

from tests.firmware._mpyapp import run_check


def test_ring_and_consumers_allocate_nothing_per_sample(tmp_path):
    r = run_check("alloc", tmp_path)
    assert r["samples"] == 2000
    assert r["frames_sent"] >= 2000 // 19 - 1  # the work really happened: frames out...
    assert r["records"] >= 2000 // 9  # ...and log records, through several 4 kB block writes
    assert r["blocks"] >= 5
    assert r["ring_bytes"] == 0
    assert r["parts"] == [0, 0, 0]  # pump_stream, flush (COBS + write), pump_log
