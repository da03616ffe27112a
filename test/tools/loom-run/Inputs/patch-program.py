"""Replaces bytes in a Loom program file and reseals its checksum.

    patch-program.py PROGRAM OLD NEW

Tests use it to build programs the compiler would never write (a name that
climbs out of --outputs), which the loader must still refuse by its own
rules rather than only by the checksum. The checksum (format 1.1) is a
64-bit FNV-1a of the file with its own 8 bytes read as zero; the field is
found as the aligned 8 bytes that hold the checksum of the file around them.
"""
import struct
import sys

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
MASK = (1 << 64) - 1


def fnv1a(data):
    h = FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h


def checksum_offset(data):
    for at in range(0, len(data) - 7, 8):
        stored = struct.unpack_from("<Q", data, at)[0]
        if stored and fnv1a(data[:at] + bytes(8) + data[at + 8:]) == stored:
            return at
    sys.exit("patch-program.py: no checksum found (not a format 1.1 program)")


path, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = bytearray(open(path, "rb").read())
at = checksum_offset(bytes(data))
if len(old) != len(new) or data.count(old) < 1:
    sys.exit("patch-program.py: OLD must occur and be as long as NEW")
data = bytearray(bytes(data).replace(old, new))
data[at:at + 8] = bytes(8)
struct.pack_into("<Q", data, at, fnv1a(bytes(data)))
open(path, "wb").write(data)
