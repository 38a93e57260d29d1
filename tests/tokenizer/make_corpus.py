#!/usr/bin/python3
"""Builds tests/tokenizer/corpus.txt, the text the tokenizer is checked on.

Deterministic (fixed seed, sorted file lists). Sources, all from Debian packages on
the build machine:
  - /usr/share/common-licenses/*                  English legal text
  - /usr/share/man/<lang>/**.gz (roff source)     ja ko zh_CN zh_TW ru uk de fr es pl cs tr
  - /usr/share/doc/*/changelog.Debian.gz          names with accents, odd punctuation
  - /usr/share/perl/*/pod/*.pod                   technical English
plus hand-made lines (scripts, emoji, combining marks, full-width and compatibility
characters that NFKC rewrites, unusual spaces, control characters, invalid UTF-8,
literal piece syntax) and seeded random byte/code-point lines.

The file is bytes, one test case per line ("\n" separated; no line contains "\n").
Usage: make_corpus.py OUT
"""
import glob
import gzip
import random
import sys

rng = random.Random(20240601)


def lines_of(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return data.split(b"\n")


def sample_files(pattern, n_lines, max_len=600):
    """n_lines lines sampled (in file order within each file) from files matching pattern."""
    files = sorted(glob.glob(pattern, recursive=True))
    pool = []
    for path in files:
        for line in lines_of(path):
            if len(line) <= max_len:
                pool.append(line)
    if len(pool) <= n_lines:
        return pool
    idx = sorted(rng.sample(range(len(pool)), n_lines))
    return [pool[i] for i in idx]


out = []
out += sample_files("/usr/share/common-licenses/*", 2500)
for lang, n in [("ja", 900), ("ko", 800), ("zh_CN", 800), ("zh_TW", 400), ("ru", 800),
                ("uk", 700), ("de", 900), ("fr", 900), ("es", 500), ("pl", 500),
                ("cs", 250), ("tr", 350)]:
    out += sample_files("/usr/share/man/%s/**/*.gz" % lang, n, 400)
out += sample_files("/usr/share/doc/*/changelog.Debian.gz", 2200, 300)
out += sample_files("/usr/share/perl/*/pod/*.pod", 1500, 400)

hand = """Hello, world!  This   has   extra   spaces.
   leading and trailing spaces   
\tTabs\tand\ttabs\t
Crème brûlée, naïve café, Ångström, Øresund, Straße, Œuvre, façade, jalapeño.
Ça va? ¿Qué tal? ¡Olé! «guillemets» „Anführungszeichen“ ‹single›
Zürich, Kraków, Łódź, Gdańsk, Brno, Plzeň, İstanbul, Ağrı, Iğdır, ığüşöç
Съешь же ещё этих мягких французских булок, да выпей чаю.
Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!
Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.
עברית: דג סקרן שט בים מאוכזב ולפתע מצא חברה
العربية: نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر
हिन्दी: ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले
ภาษาไทย: เป็นมนุษย์สุดประเสริฐเลิศคุณค่า
日本語の文章です。東京都渋谷区。カタカナとひらがな、漢字。
ｶﾀｶﾅ ﾊﾝｶｸ ｺﾝﾆﾁﾊ and ＦＵＬＬＷＩＤＴＨ ＡＢＣ １２３
中文测试：我们在这里测试分词器。繁體中文：資訊科技與臺灣。
한국어 문장입니다. 다람쥐 헌 쳇바퀴에 타고파.
Emoji: 😀 😃 😄 👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪 🇯🇵 ❤️ ✨ 🎉
Combining: e\u0301 a\u0308 o\u0302 n\u0303 A\u030a \u1100\u1161\u11a8 Z\u0335\u0336
Decomposed café: cafe\u0301 vs precomposed café
Ligatures and compatibility: ﬁne ﬂow ﬀ ﬃ ½ ¼ ² ³ ① ② Ⅻ ㍻ ㎞ ℃ ™ ℡ ﷺ
Unusual spaces: a\u00a0b c\u2003d e\u3000f g\u2009h i\u200bj k\ufeffl m\u2028n
Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(x) dx ≈ π ≠ ∞ 𝔸𝔹ℂ 𝒳𝒴 𝟘𝟙𝟚
Pieces as text: ▁ ▁▁ hello▁world <s> </s> <unk> <pad> <0x41> <0xZZ> <sep> [MASK]
Quotes ‘single’ “double” – en — em … ellipsis • bullet · middle ‰ ‱ † ‡
Numbers 0123456789 3.14159 -42 1e-9 0x7f 1,000,000 ٠١٢٣٤٥٦٧٨٩ ۰۱۲ 一二三
URLs: https://www.debian.org/doc/ mailto:user@example.org C:\\Windows\\System32
Code: for (int i = 0; i < n; ++i) { x[i] += y[i] * 2; } // comment
A sentence with the snowman ☃ and the comet ☄ and a user symbol <sep> inside.
Mixed: Hello世界Привет🌍مرحبا
""".split("\n")
for h in hand:
    out.append(h.encode("utf-8"))

# control characters, NUL, DEL, C1 controls
ctrl = [b"ctrl:\x01\x02\x03 bell\x07 backspace\x08 vt\x0b ff\x0c cr\r end",
        b"nul\x00byte in the middle", b"\x00", b"del\x7fchar", b"\r",
        "c1 controls \u0080\u0085\u009f here".encode("utf-8"),
        b"escape \x1b[31mred\x1b[0m text", b"\t \t \t", b" ", b"", b"  ", b"x"]
out += ctrl

# invalid UTF-8 of every common kind
bad = [b"lone continuation \x80 \xbf bytes", b"truncated 2-byte \xc3 end",
       b"truncated 3-byte \xe2\x82 end", b"truncated 4-byte \xf0\x9f\x98 end",
       b"overlong slash \xc0\xaf and nul \xc0\x80", b"overlong 3-byte \xe0\x80\xaf",
       b"surrogate \xed\xa0\x80 \xed\xbf\xbf", b"too big \xf4\x90\x80\x80 \xf5\x80\x80\x80",
       b"\xfe\xff bom-like bytes \xff\xfe", b"latin-1 caf\xe9 na\xefve cr\xe8me",
       b"\xe9t\xe9", b"mixed valid \xc3\xa9 and invalid \xc3\x28 and \xa0\xa1",
       b"\xf0\x28\x8c\xbc", b"\xe2\x28\xa1", b"end with lead byte \xe3",
       b"\x80\x80\x80\x80", "ok \ufffd replacement char itself".encode("utf-8")]
out += bad

# seeded random lines: random code points from interesting ranges, and random bytes
ranges = [(0x20, 0x7e), (0xa0, 0x24f), (0x300, 0x36f), (0x370, 0x3ff), (0x400, 0x4ff),
          (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x2000, 0x206f),
          (0x2100, 0x22ff), (0x3000, 0x30ff), (0x3300, 0x33ff), (0x4e00, 0x4fff),
          (0xac00, 0xad00), (0xf900, 0xfaff), (0xfb00, 0xfb4f), (0xfe30, 0xfe4f),
          (0xff00, 0xffef), (0x1d400, 0x1d7ff), (0x1f300, 0x1f64f), (0x1f900, 0x1f9ff)]
for _ in range(500):
    chars = []
    for _ in range(rng.randint(1, 40)):
        if rng.random() < 0.15:
            chars.append(" " * rng.randint(1, 3))
        else:
            lo, hi = rng.choice(ranges)
            chars.append(chr(rng.randint(lo, hi)))
    out.append("".join(chars).encode("utf-8", "surrogatepass"))
for _ in range(200):
    out.append(bytes(rng.choice(b"ab \x80\xc3\xa9\xe2\x96\x81\xf0\x9f\x98\x80\x00\x7fxyz")
                     for _ in range(rng.randint(1, 30))))

out = [l for l in out if b"\n" not in l]
with open(sys.argv[1], "wb") as f:
    f.write(b"\n".join(out) + b"\n")
print("%s: %d lines, %d bytes" % (sys.argv[1], len(out), sum(len(l) + 1 for l in out)))
