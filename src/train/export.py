#!/usr/bin/python3
"""Exports a train.py checkpoint to a sparsetf model file (docs/file-format.md, version 1).

Layout: 64-byte header; protobuf Manifest at offset 64 (encoded here by hand: varints,
fixed64 offsets/sizes, fixed32 CRC-32C, packed shapes); data_offset rounded up to 4096;
every tensor at a 64-byte aligned offset in model_tensor_list() order (model.tensor_names),
then `tokenizer.model` (dtype u8, the SentencePiece .model bytes). All weights fp32 LE.

usage: export.py --ckpt runs/sparse/ckpt.pt --spm spm8k.model --name NAME --out M.stf
"""

import argparse
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import ARCH_KINDS, ATTN_KINDS, FF_KINDS, OUT_KINDS, Config, tensor_names  # noqa: E402

DTYPE_F32, DTYPE_U8 = 1, 2
PAGE = 4096
ALIGN = 64

# ------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)
# ------------------------------------------------------------------------------------------

try:
    import crcmod.predefined
    _crc_fn = crcmod.predefined.mkCrcFun("crc-32c")

    def crc32c(data):
        return _crc_fn(bytes(data))
except ImportError:  # slow pure-Python fallback
    _TAB = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TAB.append(_c)

    def crc32c(data):
        crc = 0xFFFFFFFF
        for b in bytes(data):
            crc = _TAB[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


# ------------------------------------------------------------------------------------------
# Protobuf wire format (proto/model.proto)
# ------------------------------------------------------------------------------------------

def varint(n):
    assert n >= 0
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint((field << 3) | wire)


def f_varint(field, v):
    return key(field, 0) + varint(v) if v else b""  # proto3: zero is the default


def f_bytes(field, b):
    return key(field, 2) + varint(len(b)) + b


def f_fixed64(field, v):
    return key(field, 1) + struct.pack("<Q", v)


def f_fixed32(field, v):
    return key(field, 5) + struct.pack("<I", v)


CONFIG_FIELDS = [  # (field number, name) as in message Config
    (1, "arch"), (2, "d_model"), (3, "n_heads"), (4, "n_layers"), (5, "d_ff"),
    (6, "vocab_size"), (7, "max_seq_len"), (8, "ff"), (9, "ff_block"), (10, "ff_rank"),
    (11, "attn"), (12, "qkv_modules"), (13, "out"), (14, "out_modules"), (15, "sru_units"),
    (16, "bos_id"), (17, "eos_id"), (19, "lsh_period"), (20, "lsh_phase"),
    (21, "lsh_n_hashes"), (22, "lsh_n_buckets"), (23, "lsh_chunk_len"),
    (24, "lsh_chunks_before"), (25, "lsh_cache_len"), (26, "lsh_drop_len"),
    # 18 (weights): the exporter writes f32 only, the default
]


def lsh_pattern(c):
    """The file names LSH sub-layers as l % lsh_period == lsh_phase (period 0: none); the
    trainer's bit mask must be such a pattern over the model's attention sub-layers."""
    n = c.n_layers * (2 if c.arch == "terraformer" else 1)
    want = [(c.lsh_layers >> l) & 1 for l in range(n)]
    if c.lsh_layers >> n:
        raise ValueError("lsh_layers names a sub-layer >= %d" % n)
    if not any(want):
        return 0, 0
    for per in range(1, n + 1):
        for ph in range(per):
            if want == [int(l % per == ph) for l in range(n)]:
                return per, ph
    raise ValueError("lsh_layers %#x is not periodic: the file format cannot store it" %
                     c.lsh_layers)


def encode_config(c):
    vals = c.to_dict()
    vals["lsh_period"], vals["lsh_phase"] = lsh_pattern(c)
    vals.update(arch=ARCH_KINDS[c.arch], ff=FF_KINDS[c.ff], attn=ATTN_KINDS[c.attn],
                out=OUT_KINDS[c.out])
    return b"".join(f_varint(num, int(vals[name])) for num, name in CONFIG_FIELDS)


def encode_tensor(name, dtype, shape, offset, nbytes, crc):
    packed = b"".join(varint(int(s)) for s in shape)
    return (f_bytes(1, name.encode()) + f_varint(2, dtype) + f_bytes(3, packed) +
            f_fixed64(4, offset) + f_fixed64(5, nbytes) + f_fixed32(6, crc))


def encode_manifest(c, entries, name, generator):
    body = f_varint(1, 1) + f_bytes(2, encode_config(c))
    for e in entries:
        body += f_bytes(3, encode_tensor(*e))
    return body + f_bytes(4, name.encode()) + f_bytes(5, generator.encode())


def round_up(n, a):
    return (n + a - 1) // a * a


def write_model(path, c, arrays, tokenizer_bytes, name, generator):
    """arrays: {tensor name: float32 ndarray} with every name of tensor_names(c)."""
    tensors = []
    for n in tensor_names(c):
        a = np.ascontiguousarray(arrays[n], dtype="<f4")
        tensors.append((n, DTYPE_F32, a.shape, a.tobytes()))
    if tokenizer_bytes is not None:
        tensors.append(("tokenizer.model", DTYPE_U8, (len(tokenizer_bytes),), tokenizer_bytes))
    # the manifest's size does not depend on offsets/crcs (fixed width), so size it first
    placeholder = [(n, dt, sh, 0, len(b), 0) for n, dt, sh, b in tensors]
    msize = len(encode_manifest(c, placeholder, name, generator))
    data_offset = round_up(64 + msize, PAGE)
    entries, off = [], data_offset
    for n, dt, sh, b in tensors:
        off = round_up(off, ALIGN)
        entries.append((n, dt, sh, off, len(b), crc32c(b)))
        off += len(b)
    file_size = off
    manifest = encode_manifest(c, entries, name, generator)
    assert len(manifest) == msize
    header = (b"SPARSETF" + struct.pack("<II", 1, 64) +
              struct.pack("<QQQQ", 64, msize, data_offset, file_size) +
              struct.pack("<I", crc32c(manifest)) + b"\0" * 12)
    assert len(header) == 64
    tmp = path + ".partial"
    with open(tmp, "wb") as fh:
        fh.write(header)
        fh.write(manifest)
        for (n, dt, sh, b), e in zip(tensors, entries):
            fh.write(b"\0" * (e[3] - fh.tell()))
            fh.write(b)
        assert fh.tell() == file_size
    os.replace(tmp, path)
    return file_size


def load_checkpoint(path):
    import torch
    ck = torch.load(path, map_location="cpu")
    c = Config(**ck["config"])
    arrays = {n: t.detach().float().numpy() for n, t in ck["state"].items()}
    return c, arrays, ck


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--spm", required=True, help="SentencePiece .model to embed")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    c, arrays, ck = load_checkpoint(a.ckpt)
    tok = open(a.spm, "rb").read()
    args = ck.get("args", {})
    gen = "sparsetf src/train/train.py preset=%s seed=%s steps=%s batch=%s seq=%s lr=%s" % (
        args.get("preset"), args.get("seed"), ck.get("total_steps", ck.get("step")), args.get("batch"),
        args.get("seq"), args.get("lr"))
    n = write_model(a.out, c, arrays, tok, a.name, gen)
    print("%s: %d bytes, %d tensors + tokenizer" % (a.out, n, len(tensor_names(c))))


if __name__ == "__main__":
    main()
