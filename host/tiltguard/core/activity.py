"""Activity per sample: standing / walking / running / stopped, from the accelerometer alone.

Features are orientation-free (they use ``|a|``), so this runs before alignment and works for a clip worn
any way round:

* still: moving standard deviation of ``|a|`` below ``still_std_g``;
* running: a flight phase in every step -- the moving minimum of the (30 ms smoothed) ``|a|`` drops
  below ``flight_g`` while the moving maximum exceeds ``impact_g``;
* walking: moving but not running.

Still samples before the first running or after the last are ``standing``, those in between ``stopped``.
Short label flickers are removed with binary opening/closing (``min_bout_s``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

try:   # the C filter behind ndimage.uniform_filter1d (see _moving_mean)
    from scipy.ndimage import _nd_image
except ImportError:   # pragma: no cover
    _nd_image = None

def _private_filter_ok() -> bool:
    """The private C call still takes these arguments and gives the public wrapper's numbers (checked once)."""
    x = np.arange(40.0) ** 1.5
    try:
        out = np.empty_like(x)
        _nd_image.uniform_filter1d(x, 5, 0, out, 0, 0.0, 0)
        return bool(np.array_equal(out, ndimage.uniform_filter1d(x, 5, mode="nearest")))
    except Exception:  # noqa: BLE001 - any failure: use the public wrapper
        return False


if _nd_image is not None and not _private_filter_ok():   # pragma: no cover
    _nd_image = None

STANDING, WALKING, RUNNING, STOPPED = 0, 1, 2, 3
NAMES = ("standing", "walking", "running", "stopped")


@dataclass
class ActivityConfig:
    window_s: float = 1.0       # feature window (about one stride)
    still_std_g: float = 0.05   # |a| std below this is still
    flight_g: float = 0.45      # |a| minimum below this within a window = flight phase
    impact_g: float = 1.6       # |a| maximum above this within a window = running impact
    min_bout_s: float = 2.0     # bouts shorter than this are merged into their neighbours


def _lowpass_mag(acc_g: np.ndarray, fs_hz: float) -> np.ndarray:
    """``|a|`` smoothed by a ~30 ms moving average (keeps flight dips and impacts, drops noise), float32."""
    # contiguous columns (no copy when the caller already has float32 channel rows; read-only here)
    a = np.asarray(acc_g).T.astype(np.float32, order="C", copy=False)
    mag = np.multiply(a[0], a[0])
    tmp = np.multiply(a[1], a[1])
    mag += tmp
    mag += np.multiply(a[2], a[2], out=tmp)
    np.sqrt(mag, out=mag)
    return _moving_mean(mag, max(1, int(round(0.03 * fs_hz))))


def _moving_mean(x: np.ndarray, size: int) -> np.ndarray:
    """``ndimage.uniform_filter1d(x, size, mode="nearest")`` of a 1-D array: the same C filter, called without
    the wrapper's argument handling (which costs more than the filter on a live window)."""
    if _nd_image is None or x.ndim != 1:
        return ndimage.uniform_filter1d(x, size, mode="nearest")
    out = np.empty_like(x)
    _nd_image.uniform_filter1d(x, size, 0, out, 0, 0.0, 0)   # axis 0; mode 0: "nearest"
    return out


def classify(acc_g: np.ndarray, fs_hz: float, config: ActivityConfig | None = None, *,
             first_run_s: float | None = None, t_s: np.ndarray | None = None) -> np.ndarray:
    """Activity code per sample (``STANDING``, ``WALKING``, ``RUNNING``, ``STOPPED``; uint8).

    Parameters
    ----------
    acc_g : (N, 3) specific force in g, any frame.
    fs_hz : nominal sample rate, Hz.
    first_run_s, t_s : when the first running of the session is already known (a window of a longer
        session), still samples before ``first_run_s`` are standing, later ones stopped.
    """
    cfg = config or ActivityConfig()
    n = len(acc_g)
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    w = max(3, int(round(cfg.window_s * fs_hz)))
    mag = _lowpass_mag(acc_g, fs_hz)
    mean = _moving_mean(mag, w)
    sq = _moving_mean(mag * mag, w)
    var = sq - mean * mean
    # moving min < flight and moving max > impact, as "any sample in the window" counts (cheaper, exact)
    near = np.empty((2, n), dtype=bool)
    np.less(mag, cfg.flight_g, out=near[0])
    np.greater(mag, cfg.impact_g, out=near[1])
    near = _any_near(near, w)            # both tests in one pass
    running = near[0] & near[1]
    del near
    del mag, mean, sq

    thr = _sqrt_below(cfg.still_std_g, var.dtype)
    # std < still_std_g, as the variance below the threshold that makes it so (no square roots)
    std_low = var < thr if thr is not None else np.sqrt(np.maximum(var, 0.0)) < cfg.still_std_g
    still = std_low & ~running
    del std_low
    del var
    b = max(1, int(round(cfg.min_bout_s * fs_hz)))
    # fill short holes (a step without clear flight), then drop short blips
    running = _close_open(running, b)
    still = _close_open(still, b) & ~running

    code = np.full(n, WALKING, dtype=np.uint8)
    code[running] = RUNNING
    code[still] = STOPPED
    if first_run_s is not None and t_s is not None:
        first_run = int(np.searchsorted(t_s, first_run_s))
    else:
        first_run = int(np.argmax(running)) if running.any() else n
        # a whole session at hand: still after the last running is standing too
        if running.any():
            tail = code[n - int(np.argmax(running[::-1])):]
            tail[tail == STOPPED] = STANDING
    head = code[:first_run]
    head[head == STOPPED] = STANDING
    return code


def _sqrt_below(c: float, dtype):
    """The threshold T with ``sqrt(max(v, 0)) < c  <=>  v < T`` for every ``v`` of ``dtype``: the smallest
    value whose square root reaches ``c`` (square roots are correctly rounded and monotone, so the test
    needs no square roots). Negative ``v`` are below T as ``sqrt(0) < c``; NaN is below nothing either way.
    None when ``c * c`` is not a normal number, or ``c`` is not a plain Python number (a numpy scalar is
    compared at its own precision): the caller then takes the square roots."""
    if type(c) not in (float, int):
        return None
    return _sqrt_below_cached(c, np.dtype(dtype))


@functools.lru_cache(maxsize=16)   # the same threshold every call: searching it costs more than the test
def _sqrt_below_cached(c: float, dtype: np.dtype):
    c = np.asarray(c, dtype=dtype)
    cc = np.asarray(c * c, dtype=dtype)
    if not (c > 0 and np.isfinite(cc) and cc >= np.finfo(dtype).tiny):
        return None
    ints = {2: np.int16, 4: np.int32, 8: np.int64}[c.dtype.itemsize]
    # the answer lies within a few units in the last place of c * c: test the neighbours at once
    near = (cc.reshape(1).view(ints) + np.arange(-64, 65, dtype=ints)).view(c.dtype)
    reach = np.sqrt(near) >= c
    if reach[0] or not reach[-1]:
        return None
    return near[np.argmax(reach)]


def _any_near(mask: np.ndarray, w: int) -> np.ndarray:
    """True where ``mask`` holds within the window of ``w`` samples that ``scipy.ndimage``'s
    ``minimum_filter1d``/``maximum_filter1d`` use (``[i - w // 2, i + w - w // 2 - 1]``, clipped); along
    the last axis of (N,) or (k, N) masks."""
    n = mask.shape[-1]
    left, right = w // 2, w - w // 2 - 1
    c = np.zeros(mask.shape[:-1] + (n + 1,), dtype=np.int32)
    mask.cumsum(axis=-1, dtype=np.int32, out=c[..., 1:])
    upper = np.empty(c.shape[:-1] + (n,), dtype=np.int32)
    k = max(n - right - 1, 0)
    upper[..., :k] = c[..., right + 1: right + 1 + k]
    upper[..., k:] = c[..., n:]
    lower = np.zeros_like(upper)
    if left < n:
        lower[..., left:] = c[..., : n - left]
    return upper > lower


def _close_open(mask: np.ndarray, min_len: int) -> np.ndarray:
    """``_drop_short(~_drop_short(~mask, min_len, keep_edges=True), min_len)``; a live window is often all
    one label, which needs no run lengths: with no True the result is ``mask``, with no False it is
    ``mask`` unless the one run is short."""
    if not mask.any():
        return mask.copy()
    if mask.all():
        return mask.copy() if len(mask) >= min_len else np.zeros_like(mask)
    return _drop_short(~_drop_short(~mask, min_len, keep_edges=True), min_len)


def _drop_short(mask: np.ndarray, min_len: int, keep_edges: bool = False) -> np.ndarray:
    """``mask`` without its True runs shorter than ``min_len`` samples (run-length form of an opening).

    ``keep_edges``: runs touching either end are kept whatever their length (holes at the ends of a
    recording are not holes).
    """
    b = bouts(mask)
    if len(b) == 0:
        return mask
    short = (b[:, 1] - b[:, 0]) < min_len
    if keep_edges:
        short &= (b[:, 0] > 0) & (b[:, 1] < len(mask))
    if not short.any():
        return mask
    out = mask.copy()
    n = len(mask) + 1
    d = np.bincount(b[short, 0], minlength=n) - np.bincount(b[short, 1], minlength=n)
    out[np.cumsum(d[:-1]) > 0] = False
    return out


def bouts(mask: np.ndarray) -> np.ndarray:
    """``(K, 2)`` array of ``[start, stop)`` sample indices of the True runs of ``mask``."""
    mask = np.asarray(mask, bool)
    m = np.empty(len(mask) + 2, dtype=bool)
    m[0] = m[-1] = False
    m[1:-1] = mask
    d = np.not_equal(m[1:], m[:-1]).nonzero()[0]
    return d.reshape(-1, 2)
