"""COBS serial framing (PROTOCOL.md 1.3), allocation-free: 0x00 + COBS(frame) + 0x00."""

import micropython


@micropython.viper
def encode_into(src, n: int, dst, off: int) -> int:
    """COBS-encode src[0:n] into dst at off; return the end offset. Needs n + n // 254 + 1 bytes."""
    s = ptr8(src)
    d = ptr8(dst)
    code_pos = off
    o = off + 1
    code = 1
    i = 0
    while i < n:
        b = s[i]
        if b == 0:
            d[code_pos] = code
            code_pos = o
            o += 1
            code = 1
        else:
            d[o] = b
            o += 1
            code += 1
            if code == 0xFF and i + 1 < n:
                d[code_pos] = code
                code_pos = o
                o += 1
                code = 1
        i += 1
    d[code_pos] = code
    return o


def frame_into(src, n, dst):
    """0x00 + COBS(src[0:n]) + 0x00 into dst; return the length to write."""
    dst[0] = 0
    end = encode_into(src, n, dst, 1)
    dst[end] = 0
    return end + 1


@micropython.viper
def decode_into(src, n: int, dst, cap: int) -> int:
    """Decode the COBS chunk src[0:n] (no delimiters) into dst; return its length or -1 if invalid."""
    s = ptr8(src)
    d = ptr8(dst)
    i = 0
    o = 0
    while i < n:
        code = s[i]
        if code == 0:
            return -1
        i += 1
        end = i + code - 1
        if end > n:
            return -1
        while i < end:
            b = s[i]
            if b == 0 or o >= cap:
                return -1
            d[o] = b
            o += 1
            i += 1
        if code < 0xFF and i < n:
            if o >= cap:
                return -1
            d[o] = 0
            o += 1
    return o


class Deframer:
    """Collect incoming serial bytes; feed() returns a decoded frame length (in .out) or 0.

    Oversized or undecodable chunks are dropped and counted in .rejects.
    """

    def __init__(self, cap=64):
        self.raw = bytearray(cap + cap // 254 + 2)
        self.out = bytearray(cap)
        self.n = 0
        self.over = False
        self.rejects = 0

    def feed(self, byte):
        if byte != 0:
            if self.n < len(self.raw):
                self.raw[self.n] = byte
                self.n += 1
            else:
                self.over = True
            return 0
        n = self.n
        over = self.over
        self.n = 0
        self.over = False
        if n == 0:
            return 0
        m = -1 if over else decode_into(self.raw, n, self.out, len(self.out))
        if m <= 0:
            self.rejects += 1
            return 0
        return m
