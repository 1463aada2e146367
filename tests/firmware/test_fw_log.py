"""Flash log (firmware/log.py) under the MicroPython unix port: power loss, resume, rotation."""

import json
from pathlib import Path

import pytest

from tests.mpy import run_mpy

HERE = Path(__file__).parent
PER_BLOCK = 4096 // 128
CAP = 9  # compact samples per record


def _run(check, tmp_path, seed=1):
    out = run_mpy(HERE / "mpy_log_check.py", check, str(tmp_path), str(seed), timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seed", [1, 2])
def test_power_loss_loses_at_most_the_unsynced_block(tmp_path, seed):
    trials = _run("powerloss", tmp_path, seed)
    modes = {t["mode"] for t in trials}
    assert len(trials) == 12 and len(modes) >= 2
    for t in trials:
        # every record wholly written before the cut survives, nothing after it is invented
        assert t["recovered"] == t["complete_before_cut"], t
        assert t["prefix"] and t["values_ok"], t
        # at most the block being written (plus what was still in RAM) is gone
        assert t["appended"] - t["recovered"] <= 2 * PER_BLOCK - 1, t
        assert t["synced"] - t["recovered"] <= PER_BLOCK, t
        assert t["continues"] and t["after_new_run"] == t["recovered"] + 3, t


def test_crash_during_recovery_leaves_no_temp_and_keeps_records(tmp_path):
    r = _run("recovery_tmp", tmp_path)
    assert r["recovered"] == 40 and r["values_ok"]
    assert r["tmp_left"] == []


def test_download_resumes_from_a_sequence_number(tmp_path):
    r = _run("resume", tmp_path, seed=5)
    full = r["full"]
    assert r["ok"]
    assert full[0] == 1000 and len(full) == 157  # both runs, including the unsynced RAM block
    assert full == sorted(set(full))
    assert r["a"] + r["b"] == full  # an interrupted download + its resume = everything, once
    assert r["a"][-1] <= r["cut"] - 1 < r["a"][-1] + CAP
    assert r["mid"][0] <= r["cut"] < r["mid"][0] + CAP and len(r["mid"]) == 1
    assert r["first_seq"] == 1000 and r["end_seq"] == r["end2"]


def test_full_flash_rotates_and_counts_the_loss(tmp_path):
    r = _run("rotate", tmp_path)
    assert r["used"] <= r["max"]
    assert r["rotations"] >= 7
    assert r["first_seq"] > 0 and r["lost"] == r["first_seq"]  # samples 0..first_seq-1 were dropped
    assert r["first_read"] == r["first_seq"]
    assert r["n_read"] * CAP == r["end"] - r["first_seq"]
    assert r["ok"]
    assert r["lost_after_reboot"] == r["lost"] and r["end_after_reboot"] == r["end"]


def test_power_cut_on_real_littlefs_keeps_every_synced_block(tmp_path):
    """The log on MicroPython's own littlefs (VfsLfs2) over a RAM block device; the power is cut
    before a random block-device operation and the clip reboots on what the flash held."""
    out = run_mpy(HERE / "mpy_lfs_check.py", str(tmp_path), "7", heap="16M", timeout=120)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    trials = r["trials"]
    assert r["total_ops"] > 100 and len(trials) >= 8
    assert len({t["written"] for t in trials}) >= 3  # cuts landed at different points
    for t in trials:
        assert t["prefix"] and t["ok"], t  # earlier records intact, in order
        assert t["synced"] <= t["recovered"] <= t["written"], t  # every synced block survives
        assert t["written"] - t["recovered"] <= PER_BLOCK, t  # at most the unsynced block is lost
        assert t["after"] == t["recovered"] + 5, t  # and logging goes on after the reboot
