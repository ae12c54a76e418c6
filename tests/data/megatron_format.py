"""Megatron-LM's indexed dataset (.bin + .idx), written and read here from the format
description alone (docs/data-format.md), independently of Mixtape's C++ code."""
import struct


def check(condition, message):
    if not condition:
        raise SystemExit("FAILED: " + message)


def write_megatron(prefix, documents, dtype_code=8, fmt="<H"):
    """Megatron's indexed dataset: one sequence per document, contiguous pointers."""
    size = struct.calcsize(fmt)
    with open(prefix + ".bin", "wb") as f:
        for doc in documents:
            f.write(b"".join(struct.pack(fmt, t) for t in doc))
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", dtype_code))
        f.write(struct.pack("<Q", len(documents)))
        f.write(struct.pack("<Q", len(documents) + 1))
        f.write(b"".join(struct.pack("<i", len(d)) for d in documents))
        pointer = 0
        for doc in documents:
            f.write(struct.pack("<q", pointer))
            pointer += size * len(doc)
        f.write(b"".join(struct.pack("<q", i) for i in range(len(documents) + 1)))


def read_megatron(prefix):
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    check(idx[:9] == b"MMIDIDX\x00\x00", "magic")
    version, = struct.unpack_from("<Q", idx, 9)
    code = idx[17]
    seqs, docs = struct.unpack_from("<QQ", idx, 18)
    check(version == 1, "version")
    fmt = {1: "<B", 2: "<b", 3: "<h", 4: "<i", 5: "<q", 8: "<H"}[code]
    size = struct.calcsize(fmt)
    lengths = struct.unpack_from(f"<{seqs}i", idx, 34)
    pointers = struct.unpack_from(f"<{seqs}q", idx, 34 + 4 * seqs)
    doc_idx = struct.unpack_from(f"<{docs}q", idx, 34 + 12 * seqs)
    check(len(idx) == 34 + 12 * seqs + 8 * docs, "idx size")
    check(doc_idx[0] == 0 and doc_idx[-1] == seqs, "document index bounds")
    with open(prefix + ".bin", "rb") as f:
        data = f.read()
    sequences = [list(struct.unpack_from(f"<{n}{fmt[1]}", data, p)) for n, p in zip(lengths, pointers)]
    return [sum(sequences[doc_idx[i]:doc_idx[i + 1]], []) for i in range(docs - 1)]
