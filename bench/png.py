"""PNG bar charts without a plotting library: a tiny raster, a 5x7 font, zlib.

Only what the reports need: horizontal bars in groups, one colour per series, the value
printed beside each bar, linear or logarithmic scale. Text is drawn in capitals (the font
has no lower case); characters it lacks are drawn as '?'.
"""
import math
import struct
import zlib

_FONT = {
    "A": (14, 17, 17, 31, 17, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14), "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14), "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14), "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    " ": (0,) * 7, "-": (0, 0, 0, 31, 0, 0, 0), ".": (0, 0, 0, 0, 0, 12, 12),
    "/": (0, 1, 2, 4, 8, 16, 0), ":": (0, 12, 12, 0, 12, 12, 0),
    "%": (24, 25, 2, 4, 8, 19, 3), "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    "+": (0, 4, 4, 31, 4, 4, 0), ",": (0, 0, 0, 0, 12, 4, 8), "_": (0, 0, 0, 0, 0, 0, 31),
    "=": (0, 0, 31, 0, 31, 0, 0), "<": (2, 4, 8, 16, 8, 4, 2), ">": (8, 4, 2, 1, 2, 4, 8),
    "*": (0, 4, 21, 14, 21, 4, 0), "#": (10, 10, 31, 10, 31, 10, 10),
    "!": (4, 4, 4, 4, 4, 0, 4), "?": (14, 17, 1, 2, 4, 0, 4),
    "'": (12, 4, 8, 0, 0, 0, 0), ";": (0, 12, 12, 0, 12, 4, 8),
    "[": (14, 8, 8, 8, 8, 8, 14), "]": (14, 2, 2, 2, 2, 2, 14),
}
_SUBST = {"µ": "u", "×": "X", "–": "-", "≤": "<", "≥": ">"}
SCALE = 2
CHAR_W, CHAR_H = 6 * SCALE, 8 * SCALE

PALETTE = [(66, 133, 244), (219, 68, 55), (244, 180, 0), (15, 157, 88), (171, 71, 188),
           (0, 172, 193), (255, 112, 67), (120, 144, 156)]
WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)


class Canvas:
    def __init__(self, width, height, bg=WHITE):
        self.w, self.h = width, height
        self.px = bytearray(bytes(bg) * (width * height))

    def rect(self, x, y, w, h, color):
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(self.w, int(x + w)), min(self.h, int(y + h))
        if x1 <= x0 or y1 <= y0:
            return
        row = bytes(color) * (x1 - x0)
        for yy in range(y0, y1):
            i = (yy * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def text(self, x, y, s, color=BLACK):
        for ch in str(s):
            glyph = _FONT.get(_SUBST.get(ch, ch).upper(), _FONT["?"])
            for r, bits in enumerate(glyph):
                for c in range(5):
                    if bits & (16 >> c):
                        self.rect(x + c * SCALE, y + r * SCALE, SCALE, SCALE, color)
            x += CHAR_W

    def png(self) -> bytes:
        raw = b"".join(b"\0" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(kind, data):
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
        return (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s) -> int:
    return len(str(s)) * CHAR_W


def bar_chart(title, groups, series, unit="", log=None, width=1000, fmt="{:.3g}") -> bytes:
    """groups: [(group label, {series name: value})]; series: ordered names (colours).
    A value of None or a string is drawn as a grey stub labelled 'n/a' or with the string;
    a series absent from a group gets no row there. Returns PNG bytes."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    values = [v for _, vals in groups for v in vals.values() if number(v) and v > 0]
    if log is None:
        log = bool(values) and max(values) / min(values) > 50
    vmax = max(values) if values else 1.0
    vmin = min(values) if values else 1.0
    label_w = max([text_width(s) for s in series] + [0]) + 20
    bar_h, gap = CHAR_H + 4, 10
    plot_x = label_w
    plot_w = width - plot_x - 140
    rows = sum(len([n for n in series if n in vals]) for _, vals in groups)
    height = 50 + len(groups) * (CHAR_H + 6 + gap) + rows * (bar_h + 2) + 30
    cv = Canvas(width, height)
    cv.text(10, 10, title)
    cv.text(10, 10 + CHAR_H + 4, f"{unit}{' (log scale)' if log else ''}", (90, 90, 90))
    lo = math.log10(vmin) - 0.3 if log else 0.0
    hi = math.log10(vmax) if log else vmax

    def length(v):
        if v is None or v <= 0:
            return 0
        if log:
            return plot_w * max(0.02, (math.log10(v) - lo) / max(hi - lo, 1e-9))
        return plot_w * v / hi if hi > 0 else 0

    y = 50
    for label, vals in groups:
        cv.text(10, y, label, (40, 40, 40))
        y += CHAR_H + 6
        for i, name in enumerate(series):
            if name not in vals:
                continue
            color = PALETTE[i % len(PALETTE)]
            cv.text(10, y + 2, name, color)
            v = vals[name]
            if not number(v):
                cv.rect(plot_x, y, 6, bar_h, GREY)
                cv.text(plot_x + 12, y + 2, "n/a" if v is None else v, (120, 120, 120))
            else:
                n = length(v)
                cv.rect(plot_x, y, n, bar_h, color)
                cv.text(plot_x + n + 6, y + 2, fmt.format(v), BLACK)
            y += bar_h + 2
        y += gap
    return cv.png()
