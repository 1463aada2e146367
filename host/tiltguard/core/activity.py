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
    # moving min < flight and moving max > impact, as "any sample in the window" counts (cheaper, exact)
    near = np.empty((2, n), dtype=bool)
    np.less(mag, cfg.flight_g, out=near[0])
    np.greater(mag, cfg.impact_g, out=near[1])
    near = _any_near(near, w)            # both tests in one pass
    running = near[0] & near[1]
    del near
    still = _still_where(mag, w, ~running, cfg.still_std_g)
    del mag
    b = max(1, int(round(cfg.min_bout_s * fs_hz)))
    # fill short holes (a step without clear flight), then drop short blips
    running, runs = _close_open(running, b)
    still = _close_open(still, b)[0] & ~running

    # WALKING, or RUNNING (= WALKING + 1) where running, in one pass (a masked store over long runs costs more)
    code = np.add(running, np.uint8(WALKING), dtype=np.uint8)
    code[still] = STOPPED
    if first_run_s is not None and t_s is not None:
        first_run = int(np.searchsorted(t_s, first_run_s))
    else:
        first_run = int(runs[0, 0]) if len(runs) else n
        # a whole session at hand: still after the last running is standing too
        if len(runs):
            tail = code[int(runs[-1, 1]):]
            tail[tail == STOPPED] = STANDING
    head = code[:first_run]
    head[head == STOPPED] = STANDING
    return code


def _still_where(mag: np.ndarray, w: int, need: np.ndarray, still_std_g: float) -> np.ndarray:
    """``need`` & (moving std of ``mag`` over ``w`` samples, as ``uniform_filter1d``, < ``still_std_g``).

    The std is only worked out around the ``need`` samples (mostly the few stretches between running bouts):
    each stretch with the ``w`` samples it reads, clipped at the ends as mode "nearest" does, gathered into
    one array. When the stretches cover most of the record the std is taken over all of it instead.
    """
    n = len(mag)
    left, right = w // 2, w - w // 2 - 1
    b = bouts(need)
    if len(b) == 0:
        return np.zeros(n, dtype=bool)
    if len(b) > 1:      # stretches whose windows touch are taken as one
        cut = np.flatnonzero(b[1:, 0] - b[:-1, 1] > left + right) + 1
        b = np.column_stack((b[np.concatenate(([0], cut)), 0], b[np.concatenate((cut - 1, [len(b) - 1])), 1]))
    lens = b[:, 1] - b[:, 0] + left + right
    total = int(lens.sum())
    if total > n // 2:
        return need & _std_below(mag, w, still_std_g)
    # gathered stretch k: samples b[k, 0] - left ... b[k, 1] + right - 1 (clipped) from offset off[k]
    off = np.cumsum(lens) - lens
    idx = np.arange(total) + np.repeat(b[:, 0] - left - off, lens)
    low = _std_below(mag[_clip_idx(idx, n)], w, still_std_g)
    # back to the record: the stretch itself, whose windows lay wholly inside its gathered samples
    core = b[:, 1] - b[:, 0]
    start = np.cumsum(core) - core
    j = np.arange(int(core.sum()))
    still = np.zeros(n, dtype=bool)
    still[j + np.repeat(b[:, 0] - start, core)] = low[j + np.repeat(off + left - start, core)]
    return still & need


def _clip_idx(i: np.ndarray, n: int) -> np.ndarray:
    """Indices clipped to ``[0, n)`` in place."""
    np.maximum(i, 0, out=i)
    np.minimum(i, n - 1, out=i)
    return i


def _std_below(mag: np.ndarray, w: int, c: float) -> np.ndarray:
    """Moving standard deviation (``uniform_filter1d`` of ``mag`` and ``mag**2``, w samples) < ``c``."""
    mean = _moving_mean(mag, w)
    var = _moving_mean(mag * mag, w)
    var -= mean * mean
    thr = _sqrt_below(c, var.dtype)
    # std < c, as the variance below the threshold that makes it so (no square roots)
    return var < thr if thr is not None else np.sqrt(np.maximum(var, 0.0)) < c


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


_RUNS_FROM = 100_000   # from this many samples _any_near works on runs (fewer passes), below on counts (fewer calls)


def _any_near(mask: np.ndarray, w: int) -> np.ndarray:
    """True where ``mask`` holds within the window of ``w`` samples that ``scipy.ndimage``'s
    ``minimum_filter1d``/``maximum_filter1d`` use (``[i - w // 2, i + w - w // 2 - 1]``, clipped); along
    the last axis of (N,) or (k, N) masks."""
    n = mask.shape[-1]
    left, right = w // 2, w - w // 2 - 1
    if n >= _RUNS_FROM:
        return _widen_runs(mask.reshape(-1, n), left, right).reshape(mask.shape)
    # running count, padded so that every window is one difference of two shifted views (no clipped copies):
    # c[j] = count of mask[:min(max(j - left, 0), n)]
    c = np.empty(mask.shape[:-1] + (n + w,), dtype=np.int32)
    c[..., :left + 1] = 0
    mask.cumsum(axis=-1, dtype=np.int32, out=c[..., left + 1: left + 1 + n])
    c[..., left + 1 + n:] = c[..., left + n: left + n + 1]
    return c[..., w:] > c[..., :n]


def _widen_runs(mask: np.ndarray, left: int, right: int) -> np.ndarray:
    """``_any_near`` of the rows of a (k, N) mask in run-length form: every True run ``[a, b)`` widened to
    ``[a - right, b + left)`` (clipped to its row) and painted, the rows laid end to end."""
    k, n = mask.shape
    m = np.zeros((k, n + 2), dtype=bool)
    m[:, 1:-1] = mask
    f = m.ravel()
    # edges of the padded rows laid end to end (a 1-D nonzero: far cheaper than a 2-D one): per row start,
    # stop, start, stop, ...
    e = np.not_equal(f[1:], f[:-1]).nonzero()[0]
    if len(e) == 0:
        return np.zeros((k, n), dtype=bool)
    row = e[0::2] // (n + 2)
    start = np.maximum(e[0::2] - row * (n + 2) - right, 0) + row * n
    stop = np.minimum(e[1::2] - row * (n + 2) + left, n) + row * n
    # widened runs that overlap the one before join it (starts and stops both increase along the rows)
    new = start[1:] > stop[:-1]
    runs = np.column_stack((start[np.concatenate(([True], new))], stop[np.concatenate((new, [True]))]))
    return _paint(runs, k * n).reshape(k, n)


def _paint(runs: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool, True over the sorted, disjoint ``[start, stop)`` ``runs``: False, True, False, ... repeated
    over the lengths between their bounds (one pass)."""
    cuts = np.concatenate(([0], runs.ravel(), [n]))
    return np.repeat(np.arange(len(cuts) - 1) % 2 == 1, np.diff(cuts))


def _close_open(mask: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``mask`` with its interior False runs shorter than ``min_len`` filled (holes at the ends of a recording
    are not holes), then its True runs shorter than ``min_len`` dropped (a closing, then an opening, in
    run-length form); and the ``bouts`` of the result. A live window is often all one label: no run lengths."""
    n = len(mask)
    if not mask.any():
        return mask.copy(), np.zeros((0, 2), dtype=np.intp)
    if mask.all():
        if n >= min_len:
            return mask.copy(), np.array([[0, n]], dtype=np.intp)
        return np.zeros_like(mask), np.zeros((0, 2), dtype=np.intp)
    b = bouts(mask)
    keep_hole = b[1:, 0] - b[:-1, 1] >= min_len
    start = b[np.concatenate(([True], keep_hole)), 0]
    stop = b[np.concatenate((keep_hole, [True])), 1]
    long = stop - start >= min_len
    runs = np.column_stack((start[long], stop[long]))
    if len(runs) == len(b):           # nothing filled or dropped
        return mask.copy(), b
    return _paint(runs, n), runs


def bouts(mask: np.ndarray) -> np.ndarray:
    """``(K, 2)`` array of ``[start, stop)`` sample indices of the True runs of ``mask``."""
    mask = np.asarray(mask, bool)
    m = np.empty(len(mask) + 2, dtype=bool)
    m[0] = m[-1] = False
    m[1:-1] = mask
    d = np.not_equal(m[1:], m[:-1]).nonzero()[0]
    return d.reshape(-1, 2)
