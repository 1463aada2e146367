"""Wire constants shared by the clip (MicroPython) and the host (CPython): the only copy.

firmware/wire.py is a symlink to this file; `tiltguard flash` copies it to the board. Keep it
importable by both: no f-strings, no typing, no CPython-only imports. Layouts and meanings are
in firmware/PROTOCOL.md; the golden vectors in tests/vectors/ prove both sides agree.
"""

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


PROTOCOL_VERSION = const(1)

# ---- GATT ------------------------------------------------------------------------------------
SERVICE_UUID = "d9394caa-0001-4a88-93cf-39d477401518"
STREAM_UUID = "d9394caa-0002-4a88-93cf-39d477401518"  # notify: data, log-data, reply, event frames
CONTROL_UUID = "d9394caa-0003-4a88-93cf-39d477401518"  # write with response: command frames
STATUS_UUID = "d9394caa-0004-4a88-93cf-39d477401518"  # read + notify: status frames
DIS_UUID16 = const(0x180A)
DIS_MANUFACTURER_UUID16 = const(0x2A29)
DIS_MODEL_UUID16 = const(0x2A24)
DIS_SERIAL_UUID16 = const(0x2A25)
DIS_FIRMWARE_UUID16 = const(0x2A26)
BATTERY_UUID16 = const(0x180F)
BATTERY_LEVEL_UUID16 = const(0x2A19)
NAME_PREFIX = "tiltguard"

# ---- MTU and sizing --------------------------------------------------------------------------
ATT_HEADER = const(3)  # opcode + handle in front of every notification
MTU_MIN = const(23)
MTU_MAX = const(247)
MAX_FRAME = const(244)  # MTU_MAX - ATT_HEADER: no frame is ever longer, on any link
# BLE data notifications leave the clip in bursts this far apart (PROTOCOL.md 1.1): two compact frames
# (three full ones) at 200 Hz, so the host wakes half as often; each wake-up costs host CPU of its own
NOTIFY_BURST_MS = const(190)

# ---- frame byte 0: (version << 4) | type; a first byte < 0x10 is a BLE segment header --------
T_DATA_COMPACT = const(0x1)
T_DATA_FULL = const(0x2)
T_LOG_COMPACT = const(0x3)
T_LOG_FULL = const(0x4)
T_COMMAND = const(0x5)
T_REPLY = const(0x6)
T_STATUS = const(0x7)
T_EVENT = const(0x8)
TYPE_NAMES = {
    1: "data_compact",
    2: "data_full",
    3: "log_compact",
    4: "log_full",
    5: "command",
    6: "reply",
    7: "status",
    8: "event",
}

CRC_SIZE = const(2)  # CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), little-endian, last 2 bytes
CRC_INIT = const(0xFFFF)

# BLE segmentation (only when a frame is longer than MTU-3): byte 0 = SEG_FIRST|SEG_LAST|counter
SEG_FIRST = const(0x08)
SEG_LAST = const(0x04)
SEG_COUNTER_MASK = const(0x03)

# ---- data frames (types 1-4) -----------------------------------------------------------------
# ver_type u8, seq u32 (index of the first sample), t_us u48 (3 x u16 LE words, time of the first
# sample), n u8 (samples), period u16 (sample interval in 1/4 us); then n samples; then CRC.
DATA_HDR_FMT = "<BI3HBH"
DATA_HDR_SIZE = const(14)
DATA_OVERHEAD = const(16)  # header + CRC
SAMPLE_COMPACT_FMT = "<6h"  # tilt, obliquity, rotation (0.01 deg); ax, ay, az (1/2048 g)
SAMPLE_FULL_FMT = "<9h"  # ... then gx, gy, gz (1/16 dps)
SAMPLE_COMPACT_SIZE = const(12)
SAMPLE_FULL_SIZE = const(18)
MAX_SAMPLES_COMPACT = const(19)  # (244 - 16) // 12
MAX_SAMPLES_FULL = const(12)  # (244 - 16) // 18
ANGLE_LSB_DEG = 0.01
ACC_LSB_G = 1.0 / 2048.0  # +-16 g
GYRO_LSB_DPS = 1.0 / 16.0  # +-2048 dps covers +-2000 dps
PERIOD_LSB_US = 0.25
ANGLE_MISSING = const(-32768)  # angle not available (not calibrated, no fusion) -> NaN on the host

MODE_COMPACT = const(0)
MODE_FULL = const(1)
MODE_NAMES = ("compact", "full")
RATES_HZ = (100, 200, 208)

# ---- command frames (host -> device, type 5) -------------------------------------------------
# ver_type u8, token u8 (echoed in the reply), cmd u8, args..., CRC.  Longest command: 20 bytes.
CMD_HDR_FMT = "<BBB"
CMD_HDR_SIZE = const(3)
MAX_COMMAND = const(20)  # MTU_MIN - ATT_HEADER: every command fits one write at any MTU

CMD_GET_STATUS = const(0x01)
CMD_START_STREAM = const(0x02)
CMD_STOP_STREAM = const(0x03)
CMD_SET_RATE = const(0x04)
CMD_SET_MODE = const(0x05)
CMD_CALIBRATE = const(0x06)
CMD_BUZZ = const(0x07)
CMD_TIME_SYNC = const(0x08)
CMD_LIST_LOGS = const(0x09)
CMD_DOWNLOAD_LOG = const(0x0A)
CMD_ERASE_LOGS = const(0x0B)
CMD_SET_CONFIG = const(0x0C)
CMD_GET_CONFIG = const(0x0D)
CMD_ABORT_DOWNLOAD = const(0x0E)
CMD_GET_INFO = const(0x0F)

# struct formats of each command's arguments (after the 3-byte header)
CMD_ARGS_FMT = {
    0x01: "<",
    0x02: "<",
    0x03: "<",
    0x04: "<H",  # rate_hz: 100, 200 or 208
    0x05: "<B",  # mode: MODE_COMPACT / MODE_FULL
    0x06: "<B",  # still_s: seconds to stand still, 0 = default 3
    0x07: "<BBB",  # pattern, intensity_pct (0 = default), repeat (0 = once); custom: + up to 6 x (on, off) in 10 ms
    0x08: "<q",  # host unix time in us
    0x09: "<",
    0x0A: "<II",  # from_seq, count (0 = to the end)
    0x0B: "<I",  # ERASE_MAGIC, so random bytes never erase the log
    0x0C: "<Bi",  # key, value
    0x0D: "<B",  # key
    0x0E: "<",
    0x0F: "<",
}
CMD_NAMES = {
    0x01: "get_status",
    0x02: "start_stream",
    0x03: "stop_stream",
    0x04: "set_rate",
    0x05: "set_mode",
    0x06: "calibrate",
    0x07: "buzz",
    0x08: "time_sync",
    0x09: "list_logs",
    0x0A: "download_log",
    0x0B: "erase_logs",
    0x0C: "set_config",
    0x0D: "get_config",
    0x0E: "abort_download",
    0x0F: "get_info",
}
# argument names, in CMD_ARGS_FMT order (buzz: custom pulses follow as (on, off) byte pairs)
CMD_ARGS = {
    0x04: ("rate_hz",),
    0x05: ("mode",),
    0x06: ("still_s",),
    0x07: ("pattern", "intensity_pct", "repeat"),
    0x08: ("host_unix_us",),
    0x0A: ("from_seq", "count"),
    0x0B: ("magic",),
    0x0C: ("key", "value"),
    0x0D: ("key",),
}
ERASE_MAGIC = const(0x45504957)  # b"WIPE" little-endian

BUZZ_ALERT = const(0)
BUZZ_RECOVERED = const(1)
BUZZ_ACK = const(2)
BUZZ_CUSTOM = const(3)
BUZZ_NAMES = ("alert", "recovered", "ack", "custom")
BUZZ_MAX_PULSES = const(6)

CFG_LINK = const(1)  # LINK_BLE / LINK_SERIAL / LINK_BOTH
CFG_ALWAYS_LOG = const(2)  # 0/1: log to flash even while streaming
CFG_CUE_THRESHOLD = const(3)  # on-device drift cue threshold, 0.01 deg above baseline; 0 = cue off
CFG_BONDED_ONLY = const(4)  # 0/1: only a bonded host may send commands other than get_status/get_info
CFG_IDLE_SLEEP_S = const(5)  # seconds idle before light sleep, 0 = never
CFG_NAMES = {1: "link", 2: "always_log", 3: "cue_threshold", 4: "bonded_only", 5: "idle_sleep_s"}
LINK_BLE = const(0)
LINK_SERIAL = const(1)
LINK_BOTH = const(2)

# ---- reply frames (device -> host, type 6) ---------------------------------------------------
# ver_type u8, token u8, cmd u8 (echo), err u8, payload..., CRC.
REPLY_HDR_FMT = "<BBBB"
REPLY_HDR_SIZE = const(4)
# struct formats of OK reply payloads (error replies carry no payload)
REPLY_PAYLOAD_FMT = {
    0x01: None,  # STATUS_FMT body
    0x02: "<IHB",  # next_seq (first live sample to come), rate_hz, mode
    0x03: "<I",  # next_seq
    0x04: "<H",  # rate_hz now in use
    0x05: "<B",  # mode now in use
    0x06: "<",  # accepted; EV_CALIBRATION_DONE follows
    0x07: "<",
    0x08: "<3H",  # device t_us (u48) when the command was handled
    0x09: "<IIIHBBH",  # first_seq, end_seq (exclusive), lost, segments, fill_pct, mode, rate_hz
    0x0A: "<II",  # first_seq actually sent (>= from_seq when older samples rotated out), count
    0x0B: "<",
    0x0C: "<Bi",  # key, value stored
    0x0D: "<Bi",  # key, value
    0x0E: "<I",  # samples sent before the abort
    0x0F: None,  # "<BBB" protocol version, board id, imu id; then ASCII firmware version (<= 12 bytes)
}
# field names of OK reply payloads, in REPLY_PAYLOAD_FMT order
REPLY_FIELDS = {
    0x02: ("next_seq", "rate_hz", "mode"),
    0x03: ("next_seq",),
    0x04: ("rate_hz",),
    0x05: ("mode",),
    0x06: (),
    0x07: (),
    0x08: ("t_us",),
    0x09: ("first_seq", "end_seq", "lost", "segments", "fill_pct", "mode", "rate_hz"),
    0x0A: ("first_seq", "count"),
    0x0B: (),
    0x0C: ("key", "value"),
    0x0D: ("key", "value"),
    0x0E: ("sent",),
}
INFO_FMT = "<BBB"

ERR_OK = const(0)
ERR_UNKNOWN_COMMAND = const(1)
ERR_BAD_LENGTH = const(2)
ERR_BAD_ARGUMENT = const(3)
ERR_BUSY = const(4)
ERR_NOT_BONDED = const(5)
ERR_STORAGE = const(6)
ERR_BAD_FRAME = const(7)  # CRC, version or type of the command frame wrong
ERR_NOT_READY = const(8)  # e.g. IMU missing
ERR_INTERNAL = const(9)
ERR_NAMES = (
    "ok",
    "unknown_command",
    "bad_length",
    "bad_argument",
    "busy",
    "not_bonded",
    "storage_error",
    "bad_frame",
    "not_ready",
    "internal",
)

# ---- status frames (device -> host, type 7; also the get_status reply payload) ---------------
# state u8 (ST_* flags), battery_pct u8 (255 unknown), battery_mv u16, log_fill_pct u8, mode u8,
# rate_hz u16, next_seq u32, dropped u32, log_lost u32, log_first_seq u32, t_us u48
STATUS_FMT = "<BBHBBHIIII3H"
STATUS_SIZE = const(30)
STATUS_FIELDS = (
    "state",
    "battery_pct",
    "battery_mv",
    "log_fill_pct",
    "mode",
    "rate_hz",
    "next_seq",
    "dropped",
    "log_lost",
    "log_first_seq",
)
ST_STREAMING = const(0x01)
ST_LOGGING = const(0x02)
ST_CALIBRATING = const(0x04)
ST_DOWNLOADING = const(0x08)
ST_CALIBRATED = const(0x10)
ST_BONDED = const(0x20)
ST_CHARGING = const(0x40)
ST_LOW_BATTERY = const(0x80)
STATE_NAMES = (
    "streaming",
    "logging",
    "calibrating",
    "downloading",
    "calibrated",
    "bonded",
    "charging",
    "low_battery",
)

# ---- event frames (device -> host, type 8) ---------------------------------------------------
# ver_type u8, code u8, seq u32 (next sample index when it happened), t_us u48, value i32, CRC.
EVENT_FMT = "<BBI3Hi"
EVENT_SIZE = const(16)  # without CRC
EV_BUTTON = const(1)  # value: 1 short press, 2 long press
EV_CALIBRATION_DONE = const(2)  # value: ERR_OK or ERR_NOT_READY (moved while calibrating)
EV_CUE = const(3)  # on-device drift cue buzzed; value: excess tilt in 0.01 deg
EV_LOG_ROTATED = const(4)  # oldest segment dropped; value: samples lost
EV_LOW_BATTERY = const(5)  # value: battery mV
EV_DOWNLOAD_DONE = const(6)  # value: samples sent
EV_BOOT = const(7)  # value: reset cause
EVENT_NAMES = {
    1: "button",
    2: "calibration_done",
    3: "cue",
    4: "log_rotated",
    5: "low_battery",
    6: "download_done",
    7: "boot",
}

# ---- serial framing --------------------------------------------------------------------------
# every frame is sent as 0x00 + COBS(frame) + 0x00; empty chunks between delimiters are ignored
SERIAL_DELIM = const(0x00)
SERIAL_MAX_ENCODED = const(248)  # 244 + 1 COBS overhead byte + 2 delimiters, rounded up


def sample_size(mode):
    """Bytes per sample on the wire for a stream mode."""
    return SAMPLE_FULL_SIZE if mode == MODE_FULL else SAMPLE_COMPACT_SIZE


def samples_per_frame(mtu, mode):
    """Samples per data frame at a negotiated ATT MTU.

    As many as fit one notification (MTU-3 bytes); when not even one fits (tiny MTU), frames
    are built full-size and sent in segments (see PROTOCOL.md, BLE segmentation).
    """
    size = sample_size(mode)
    cap = (MAX_FRAME - DATA_OVERHEAD) // size
    mtu = min(max(mtu, MTU_MIN), MTU_MAX)
    n = (mtu - ATT_HEADER - DATA_OVERHEAD) // size
    if n < 1:
        return cap
    return min(n, cap)


def period_q(rate_hz):
    """Nominal sample interval in the frame's units (1/4 us)."""
    return (4000000 + rate_hz // 2) // rate_hz
