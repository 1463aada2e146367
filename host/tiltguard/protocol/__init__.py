"""The clip <-> host wire protocol (firmware/PROTOCOL.md): constants, frames, serial and BLE framing."""

from tiltguard.protocol import wire
from tiltguard.protocol.frames import (
    Command,
    DataFrame,
    Event,
    FrameError,
    Reply,
    SampleBatch,
    Status,
    crc16,
    decode_data_frames,
    decode_frame,
    encode_frame,
    frames_to_recording,
    to_arrays,
    to_recording,
)
from tiltguard.protocol.stream import SeqTracker, StreamDecoder

__all__ = [
    "wire",
    "Command",
    "DataFrame",
    "Event",
    "FrameError",
    "Reply",
    "SampleBatch",
    "Status",
    "crc16",
    "decode_data_frames",
    "decode_frame",
    "encode_frame",
    "frames_to_recording",
    "to_arrays",
    "to_recording",
    "SeqTracker",
    "StreamDecoder",
]
