"""A minimal safetensors writer for the reference scripts in tools/ (independent of adabatch).

write_safetensors(path, entries, metadata): entries are (name, dtype code, shape, raw little-endian
bytes) in file order; metadata is a dict of strings stored as __metadata__. The header is padded
with spaces to a multiple of 8 bytes, as the format allows.
"""
import json
import struct


def write_safetensors(path, entries, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, code, shape, data in entries:
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
