"""A reader of TensorBoard event files written from the formats' specifications alone, to check
`mixtape report --tensorboard` with code that shares nothing with its writer.

TFRecord (tensorflow/core/lib/io/record_writer.cc): each record is a little-endian uint64
length, the masked CRC-32C of those 8 bytes (uint32), the data, the masked CRC-32C of the data.
masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32). CRC-32C is the Castagnoli CRC
(reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF).

tensorflow.Event (event.proto): wall_time = 1 (double), step = 2 (int64), file_version = 3
(string), summary = 5 (Summary). Summary (summary.proto): value = 1 (repeated Value). Value:
tag = 1 (string), simple_value = 2 (float). Protocol buffer wire types: 0 varint, 1 fixed64,
2 length-delimited, 5 fixed32 (https://protobuf.dev/programming-guides/encoding/).
"""
import struct


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(blob):
    """The data of each TFRecord in `blob`; raises ValueError on a bad length or CRC."""
    out, at = [], 0
    while at < len(blob):
        if at + 12 > len(blob):
            raise ValueError(f"byte {at}: a record header cut short")
        header = blob[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", blob[at + 8:at + 12])
        if length_crc != masked_crc(header):
            raise ValueError(f"byte {at}: the length's CRC is wrong")
        data = blob[at + 12:at + 12 + length]
        if len(data) != length or at + 16 + length > len(blob):
            raise ValueError(f"byte {at}: a record cut short")
        (data_crc,) = struct.unpack("<I", blob[at + 12 + length:at + 16 + length])
        if data_crc != masked_crc(data):
            raise ValueError(f"byte {at}: the data's CRC is wrong")
        out.append(data)
        at += 16 + length
    return out


def fields(message):
    """(field number, wire type, value) of a protocol buffer message: ints for varints, bytes
    for fixed-width and length-delimited fields."""
    out, at = [], 0

    def varint():
        nonlocal at
        value, shift = 0, 0
        while True:
            byte = message[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while at < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 1:
            out.append((number, wire, message[at:at + 8]))
            at += 8
        elif wire == 2:
            n = varint()
            out.append((number, wire, message[at:at + n]))
            at += n
        elif wire == 5:
            out.append((number, wire, message[at:at + 4]))
            at += 4
        else:
            raise ValueError(f"wire type {wire}")
    return out


def events(blob):
    """Each Event as a dict: wall_time, step, file_version (or None), values [(tag, float)]."""
    out = []
    for data in records(blob):
        event = {"wall_time": None, "step": 0, "file_version": None, "values": []}
        for number, wire, value in fields(data):
            if (number, wire) == (1, 1):
                event["wall_time"] = struct.unpack("<d", value)[0]
            elif (number, wire) == (2, 0):
                event["step"] = value
            elif (number, wire) == (3, 2):
                event["file_version"] = value.decode()
            elif (number, wire) == (5, 2):
                for n, w, v in fields(value):
                    if (n, w) != (1, 2):
                        raise ValueError(f"Summary field {n} (wire type {w})")
                    tag, simple = None, None
                    for n2, w2, v2 in fields(v):
                        if (n2, w2) == (1, 2):
                            tag = v2.decode()
                        elif (n2, w2) == (2, 5):
                            simple = struct.unpack("<f", v2)[0]
                    event["values"].append((tag, simple))
            else:
                raise ValueError(f"Event field {number} (wire type {wire})")
        out.append(event)
    return out
