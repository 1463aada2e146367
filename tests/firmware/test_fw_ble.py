"""BLE GATT server (firmware/ble.py + app.py) against the fake low-level bluetooth module."""

import numpy as np
import pytest

from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire

from tests.firmware._mpyapp import data_seqs, decode_notifications, replies, run_check


@pytest.fixture(scope="module")
def ble_run(tmp_path_factory):
    return run_check("ble", tmp_path_factory.mktemp("ble"))


def test_services_registered_and_advertised(ble_run):
    r = ble_run
    assert len(set(r["handles"])) == 4
    assert r["uuids"] == [wire.STREAM_UUID, wire.CONTROL_UUID, wire.STATUS_UUID, "0x2a19"]
    assert r["dis"] == ["tiltguard", "tiltguard-ref", "0001", "0.1.0"]
    adv, resp = (bytes.fromhex(h) for h in r["adv"])
    assert len(adv) <= 31 and len(resp) <= 31
    uuid_le = bytes.fromhex(wire.SERVICE_UUID.replace("-", ""))[::-1]
    assert adv[3:5] == b"\x11\x07" and adv[5:21] == uuid_le
    assert resp[1] == 0x09 and resp[2:].decode() == "tiltguard-test"
    assert r["irq_errors"] == []


def test_peripheral_mtu_exchange_sizes_frames(ble_run):
    r = ble_run
    assert r["mtu1"] == 100  # the clip asked for 247, the central allowed 100
    assert r["mtu_after"] == 247
    got = decode_notifications(r["c1"])
    sizes = sorted({f.n for f in got if isinstance(f, fr.DataFrame)})
    # full frames at MTU 100 hold 6 compact samples, at 247 they hold 19 (wire.samples_per_frame)
    assert wire.samples_per_frame(100, 0) in sizes and wire.samples_per_frame(247, 0) in sizes
    assert all(len(bytes.fromhex(h)) <= 247 - 3 for h in r["c1"])


def test_enomem_is_retried_without_loss(ble_run):
    r = ble_run
    assert r["enomem"] > 10  # the fake stack ran out of buffers many times
    got = decode_notifications(r["c1"])
    assert replies(got)[0] == (5, wire.CMD_START_STREAM, 0)
    seqs = data_seqs(got)
    assert len(seqs) > 1000
    assert np.array_equal(seqs, np.arange(seqs[0], seqs[0] + len(seqs)))  # in order, no gap, no dup


def test_notifications_truncated_to_mtu_are_segmented(ble_run):
    r = ble_run
    assert r["mtu2"] == 23
    assert r["notify_max_c2"] == 20  # never more than MTU-3 on the air
    got = decode_notifications(r["c2"])
    assert any(isinstance(f, fr.DataFrame) and f.n == 19 for f in got)  # whole frames rebuilt


def test_reconnect_backfills_from_the_log(ble_run):
    r = ble_run
    assert r["logging_while_away"] and r["readvertising"]
    first = decode_notifications(r["c1"])
    second = decode_notifications(r["c2"])
    assert [x[1:] for x in replies(second)] == [(wire.CMD_START_STREAM, 0), (wire.CMD_DOWNLOAD_LOG, 0)]
    log_frames = [f for f in second if isinstance(f, fr.DataFrame) and f.is_log]
    assert log_frames and log_frames[0].seq <= r["acked"]
    assert any(isinstance(f, fr.Event) and f.code == wire.EV_DOWNLOAD_DONE for f in second)
    seqs = np.union1d(data_seqs(first), data_seqs(second))
    assert np.array_equal(seqs, np.arange(seqs[0], seqs[-1] + 1))  # zero missing over the drop
    assert seqs[-1] > r["log_end_before_reconnect"]


def test_bonded_only_refuses_unbonded_control(ble_run):
    got = decode_notifications(ble_run["c3"])
    assert replies(got) == [
        (10, wire.CMD_GET_STATUS, 0),  # status is open to anyone
        (11, wire.CMD_BUZZ, wire.ERR_NOT_BONDED),
        (12, wire.CMD_BUZZ, 0),  # after pairing + bonding
    ]
    assert ble_run["bonds"] == 1
