"""Self-contained HTML pages: inline CSS, inline SVG figures from matplotlib, a CSP that forbids loading anything."""

from __future__ import annotations

import html
import io
import itertools
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({
    "svg.fonttype": "none",          # text stays text: small files, the browser's font
    "svg.hashsalt": "tiltguard",     # stable ids, so the same data gives the same page
    "font.family": "sans-serif",
    "font.size": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
})

# Nothing may be fetched: styles are inline, figures are inline SVG, there are no scripts.
CSP = "default-src 'none'; style-src 'unsafe-inline'"
CSS = """
:root { color-scheme: light; --ink:#1d2430; --muted:#5b6675; --line:#d9dee5; --warn:#b54708; --ok:#067647; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #fff; }
main { max-width: 960px; margin: 0 auto; padding: 12px 16px 48px; }
h1 { font-size: 1.5rem; margin: 0.6em 0 0.2em; } h2 { font-size: 1.2rem; margin: 1.6em 0 0.4em;
     border-bottom: 1px solid var(--line); padding-bottom: 0.2em; }
.sub { color: var(--muted); margin: 0 0 1em; overflow-wrap: anywhere; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.card b { display: block; font-size: 1.25rem; } .card span { color: var(--muted); font-size: 0.85rem; }
figure { margin: 0.8em 0; } figure svg { width: 100%; max-width: 720px; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 0.9rem; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 4px 16px; }
.plots figure { margin: 0.4em 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.95rem; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; white-space: normal; }
.reading p { margin: 0.5em 0; } .flag { color: var(--warn); font-weight: 600; } .fine { color: var(--ok); }
.note { background: #f4f6f8; border-left: 4px solid var(--muted); padding: 8px 12px; margin: 1em 0; }
@media (max-width: 600px) { body { font-size: 15px; } main { padding: 8px 10px 32px; }
  th, td { padding: 5px 4px; font-size: 0.9rem; } }
"""

_counter = itertools.count(1)


def svg(fig, label: str) -> str:
    """A matplotlib figure as inline SVG markup (ids prefixed so several figures share a page)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # creator/date block: noise in a page
    prefix = f"f{next(_counter)}-"
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    # Responsive: keep the viewBox, let CSS size it.
    text = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)
    return text.replace("<svg", f'<svg role="img" aria-label="{html.escape(label)}" class="plot"', 1)


def figure(fig, label: str, caption: str = "") -> str:
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{svg(fig, label)}{cap}</figure>"


def grid(figures: list[str], caption: str = "") -> str:
    """Small figures side by side on a wide screen, one above the other on a phone."""
    cap = f"<p class='sub'>{html.escape(caption)}</p>" if caption else ""
    return f"<div class='plots'>{''.join(figures)}</div>{cap}"


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f'<div class="table-wrap"><table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>'


def cards(items: list[tuple[str, str]]) -> str:
    inner = "".join(f'<div class="card"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                    for k, v in items)
    return f'<div class="cards">{inner}</div>'


def _number(v) -> float | None:
    """v as a float, or None when it is missing, NaN or not a number (shown as a dash)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def fmt(v, spec: str = ".1f", unit: str = "") -> str:
    f = _number(v)
    if f is None:
        return "–"
    return f"{f:{spec}}{unit}"


def mmss(seconds) -> str:
    s = _number(seconds)
    if s is None:
        return "–"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
