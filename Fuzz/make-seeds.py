#!/usr/bin/env python3
"""Writes the committed seed corpus, Fuzz/Corpus/<target>/, a handful of inputs per target.

Each seed is a valid input in the harness's own format (see the comments in
Fuzz/Sources/FuzzTargets/*Harness.swift). Rerun after changing an input format:
    python3 Fuzz/make-seeds.py
"""
import os
import random
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Corpus")


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def lp(data):
    return varint(len(data)) + data


def op(index, payload, client_delta=None):
    zigzag = None if client_delta is None else ((client_delta << 1) ^ (client_delta >> 63)) & (2**64 - 1)
    flags = b"\x00" if zigzag is None else b"\x01" + varint(zigzag)
    return bytes(8) + struct.pack(">Q", index) + varint(5 if index == 1 else 0) + lp(b"au") + flags + lp(payload)


def chunk(first, payloads):
    return varint(first) + varint(len(payloads)) + b"".join(op(first + i, p) for i, p in enumerate(payloads))


def record_frame(kind, key, body):
    header = struct.pack("<BBHII", kind, 0, 0, len(body), len(body))
    crc = zlib.crc32(body, zlib.crc32(header, zlib.crc32(key)))
    return header + struct.pack("<I", crc) + body


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as handle:
        handle.write(data)


def decode_seeds():
    key = b"doc\x00" + struct.pack(">Q", 1)
    ops_body = chunk(1, [b"hello", b"world" * 20])
    # Mode 0: a stored op-chunk frame under its key (kind index 3 = opChunk, key length 12).
    write("decode", "stored-op-chunk", bytes([0, 3, 12]) + key + record_frame(4, key, ops_body))
    # Mode 1: a document record body (kind index 2).
    write("decode", "document-body", bytes([1, 2]) + struct.pack("<QQqQQ", 10, 3, 1700000000000, 4096, 2))
    # Mode 2: a journal file header, base sequence 7.
    header = b"OPLOGJNL" + struct.pack("<IIQ", 1, 0, 7)
    write("decode", "journal-header", bytes([2]) + header + struct.pack("<II", zlib.crc32(header), 0))
    # Mode 5: a zlib stream with its expected size.
    text = b"the quick brown fox " * 8
    write("decode", "zlib-stream", bytes([5]) + struct.pack("<H", len(text)) + bytes([0, 5]) + zlib.compress(text))
    # Mode 6: a record frame built by the harness: kind index 3, same kind, zlib, level 6, no
    # flips, no cut, true raw length, key length 12, then the body.
    write("decode", "built-op-chunk-zlib", bytes([6, 3, 1, 1, 5, 0, 1, 0, 2, 0, 0, 12]) + key + ops_body)
    # Mode 7: a journal frame built by the harness: sequence 3, raw; body = ops entry + truncation.
    body = varint(2) + b"\x01" + lp(b"doc") + varint(1) + varint(2) + op(1, b"a") + op(2, b"b", -3)
    body += b"\x02" + lp(b"doc") + varint(2)
    write("decode", "built-journal-frame", bytes([7, 1, 3, 0, 0, 0, 1, 0, 2, 0, 0]) + body)
    # Mode 8: a revision key.
    write("decode", "revision-key", bytes([8]) + "dö/c".encode() + b"\x00" + struct.pack(">Q", 42))


def model_seeds():
    rng = random.Random(20240601)
    # Every byte string is a valid run; these mix all opcodes at random.
    for index, configuration in enumerate([0x00, 0x06, 0x38]):
        write("model", f"random-{index}", bytes([configuration, 0]) + bytes(rng.randrange(256) for _ in range(400)))
    # An append step: opcode 0, document, op count, per op a shape byte (0: new ID, no author, no
    # client time, incompressible) and a size byte, then (with 2+ ops) a duplicate-ID byte (1: no),
    # expected head (0: none), batch form (1: no).
    # A small map (configuration bit 0): 40 appends of 64 KiB fill it, then a deletion and more appends.
    fill = bytes([0x01, 0x00]) + bytes([0, 0, 1, 0, 0xFF, 0, 1]) * 40
    fill += bytes([9, 0]) + bytes([0, 1, 1, 0, 0x10, 0, 1]) * 3 + bytes([15, 0])
    write("model", "small-map-fill", fill)
    # Three appends of 4 ops, a snapshot at revision 4 (true state), a truncation below it + 1, a read
    # from the floor, a replay to the head, a reopen, a full comparison.
    story = bytes([0x00, 0x00]) + bytes([0, 0, 4, 0, 8, 0, 9, 0, 10, 0, 11, 1, 0, 1]) * 3
    story += bytes([6, 0, 3, 0, 0, 1]) + bytes([7, 0, 1]) + bytes([10, 0, 0, 0, 0, 2]) + bytes([12, 0, 0])
    story += bytes([14, 0, 15, 0])
    write("model", "snapshot-truncate-replay", story)


def damage_seeds():
    write("damage", "applied-intact", bytes([0x00]))
    write("damage", "journaled-intact", bytes([0x02]))
    # LMDB: one change to database 2 (ops), entry 0, value byte 20 flipped.
    write("damage", "ops-value-flip", bytes([0x00, 1, 2, 0, 0, 2, 20, 0, 0x10]))
    # LMDB, read-only: one change to database 3 (snapshots), entry 1, value cut short.
    write("damage", "snapshot-value-cut", bytes([0x04, 1, 3, 1, 0, 1, 9, 0]))
    # Journal, full mode: one flip at offset 100.
    write("damage", "journal-flip-full", bytes([0x03, 0, 1, 100, 0, 0, 0x04]))
    # Journal, relaxed mode: tail cut by 30 bytes.
    write("damage", "journal-cut", bytes([0x01, 0, 0, 30, 0]))


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    decode_seeds()
    model_seeds()
    damage_seeds()
    print(f"wrote seeds under {ROOT}")
