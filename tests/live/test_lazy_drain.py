"""The live pipeline analyses its pending frames only when something is due (core.provisional's trigger may
fire, a look waits for samples, the analyser's hop): the provisional and final strides are those of analysing
every frame at once, and each provisional stride is given while handling the same frame as then."""

from __future__ import annotations

import asyncio
import binascii

import numpy as np
import pytest
from tiltguard.live.config import LiveConfig
from tiltguard.live.pipeline import LiveSession
from tiltguard.protocol import frames as fr
from tiltguard.protocol import wire as w
from tiltguard.transport.base import Received
from tiltguard.transport.replay import ReplayTransport


def _empty(raw: bytes) -> bytes:
    """The data frame ``raw`` with no samples: its header with n = 0 and a good CRC."""
    head = bytearray(raw[:w.DATA_HDR_SIZE])
    head[11] = 0
    return bytes(head) + binascii.crc_hqx(bytes(head), 0xFFFF).to_bytes(2, "little")


def _one_by_one(drift_run, sdir, eager: bool, empty_at: int | None = None):
    """Frames handed over one at a time, as a live link does; drained when the session wants (or always).
    ``empty_at``: before that frame, one that holds no samples (valid CRC, n = 0)."""
    src = ReplayTransport(drift_run / "raw.csv")
    asyncio.run(src.open())
    s = LiveSession(sdir, src, LiveConfig(), source="replay")
    if eager:
        s._wanted_now = lambda f: True
    given_at: list[float] = []   # per provisional stride: the end of the newest frame when it was given
    drains = 0

    async def go():
        nonlocal drains
        s._setup()
        for k, raw in enumerate(src._frames):
            if k == empty_at:
                empty = _empty(raw)
                await s._on_frame(Received(empty, fr.decode_frame(empty), 0.0))
            await s._on_frame(Received(raw, fr.decode_frame(raw), 0.0))
            if s._urgent:
                n0 = len(s.stride_timing)
                await s._drain()
                drains += 1
                given_at.extend([s.t_stream_s] * (len(s.stride_timing) - n0))
        s._finish()

    asyncio.run(go())
    return s, np.array(given_at), drains, len(src._frames)


@pytest.fixture(scope="module")
def both(drift_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lazy")
    return _one_by_one(drift_run, tmp / "lazy", eager=False), _one_by_one(drift_run, tmp / "eager", eager=True)


def test_lazy_draining_gives_the_same_strides(both):
    (lazy, _, _, _), (eager, _, _, _) = both
    assert len(lazy._provisional_rows) > 100
    np.testing.assert_array_equal(np.concatenate(lazy._provisional_rows), np.concatenate(eager._provisional_rows))
    assert len(lazy.analyzer.strides) > 100
    np.testing.assert_array_equal(lazy.analyzer.strides.to_numpy(float), eager.analyzer.strides.to_numpy(float))
    assert lazy.summary["n_strides"] == eager.summary["n_strides"] and lazy.summary["alerts"] == eager.summary["alerts"]


def test_each_stride_comes_with_the_same_frame_as_when_every_frame_is_analysed(both):
    (lazy, given_at, drains, frames), (_, eager_at, eager_drains, _) = both
    assert len(given_at) == len(lazy.stride_timing) > 100
    np.testing.assert_array_equal(given_at, eager_at)
    # mostly the frame whose samples let it be read (else the next one: the look wants 10 ms past the contact)
    got = np.array(lazy.stride_timing)[:, 3]
    assert np.mean(given_at == got) > 0.7 and np.all(given_at - got < 0.07)
    # and most frames were not analysed on their own: a few drains per stride, not one per frame
    assert eager_drains == frames and drains < 0.4 * frames


def test_a_frame_of_no_samples_once_strides_are_given_changes_nothing(drift_run, tmp_path, both):
    (lazy, _, _, frames), _ = both
    s, _, _, _ = _one_by_one(drift_run, tmp_path / "s", eager=False, empty_at=frames // 2)
    assert s.provisional is not None and s.decoder.counters.frames_ok == frames + 1   # logged, counted
    np.testing.assert_array_equal(np.concatenate(s._provisional_rows), np.concatenate(lazy._provisional_rows))
