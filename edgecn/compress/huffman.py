"""Canonical, length-limited Huffman coding of small integer alphabets (at most 256 symbols).

A code is described by its code lengths alone (one byte per symbol, 0 = unused), which is
all the file has to store: encoder and decoder both derive the canonical codes from the
lengths. Lengths are capped at ``MAX_LEN`` bits so decoding is a table lookup on a 16-bit
window; a decoder fed arbitrary bytes stops after ``count`` symbols or at the end of the
stream, whichever comes first, and raises ``HuffmanError`` on anything inconsistent.
"""

from __future__ import annotations

import heapq

import numpy as np

MAX_LEN = 16
"""Longest code in bits; a lookup table of at most 2^16 entries decodes one symbol per step."""

MAX_SYMBOLS = 256


class HuffmanError(ValueError):
    """The code lengths or the bitstream are inconsistent (a corrupt file)."""


def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code lengths for symbol frequencies ``counts`` (uint8, 0 for unused symbols).

    A single used symbol gets a 1-bit code, so every symbol costs at least one bit and the
    decoder's termination argument (``count <= bits``) holds. When the optimal code is
    longer than ``MAX_LEN``, frequencies are flattened until it fits (a few bits of loss on
    very skewed alphabets, irrelevant at these sizes).
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size > MAX_SYMBOLS:
        raise ValueError(f"alphabet must be 1-D with at most {MAX_SYMBOLS} symbols")
    lengths = np.zeros(counts.size, dtype=np.uint8)
    used = np.flatnonzero(counts > 0)
    if used.size == 1:
        lengths[used] = 1
    if used.size <= 1:
        return lengths
    weights = counts[used].copy()
    while True:
        depth = _huffman_depths(weights)
        if depth.max() <= MAX_LEN:
            lengths[used] = depth
            return lengths
        weights = (weights + 1) // 2  # flatten the distribution; stays >= 1


def _huffman_depths(weights: np.ndarray) -> np.ndarray:
    # Heap of (weight, tiebreak, leaves-under-this-node); merging adds one to every leaf's depth.
    depth = np.zeros(weights.size, dtype=np.int64)
    heap = [(int(w), i, [i]) for i, w in enumerate(weights)]
    heapq.heapify(heap)
    tiebreak = len(heap)
    while len(heap) > 1:
        w1, _, a = heapq.heappop(heap)
        w2, _, b = heapq.heappop(heap)
        depth[a] += 1
        depth[b] += 1
        heapq.heappush(heap, (w1 + w2, tiebreak, a + b))
        tiebreak += 1
    return depth


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical code values (uint32) for ``lengths``; validates them (Kraft inequality).

    Raises:
        HuffmanError: a length is above ``MAX_LEN`` or the lengths cannot form a prefix code.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or lengths.size > MAX_SYMBOLS:
        raise HuffmanError("code length table has the wrong shape")
    if lengths.size and (lengths.min() < 0 or lengths.max() > MAX_LEN):
        raise HuffmanError(f"code length outside 0..{MAX_LEN}")
    used = lengths > 0
    if np.sum(np.ldexp(1.0, -lengths[used])) > 1.0:
        raise HuffmanError("code lengths violate the Kraft inequality")
    codes = np.zeros(lengths.size, dtype=np.uint32)
    code, prev_len = 0, 0
    # Canonical order: by length, then by symbol value.
    for sym in sorted(np.flatnonzero(used), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev_len
        prev_len = int(lengths[sym])
        codes[sym] = code
        code += 1
    return codes


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Pack ``symbols`` with the canonical code for ``lengths``.

    Returns:
        ``(stream, nbits)``: the bitstream (MSB first, zero-padded to a byte) and its length in bits.
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    if symbols.size == 0:
        return b"", 0
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = canonical_codes(lengths).astype(np.int64)
    sym_len = lengths[symbols]
    if (sym_len == 0).any():
        raise ValueError("a symbol to encode has no code")
    nbits = int(sym_len.sum())
    starts = np.cumsum(sym_len) - sym_len
    owner = np.repeat(np.arange(symbols.size), sym_len)
    bit_in_code = np.arange(nbits) - starts[owner]
    shift = sym_len[owner] - 1 - bit_in_code
    bits = ((codes[symbols][owner] >> shift) & 1).astype(np.uint8)
    return np.packbits(bits).tobytes(), nbits


def _decode_table(lengths: np.ndarray) -> tuple[list[int], list[int], int]:
    """For every window of the longest code's width: the symbol its prefix decodes to and
    that code's length (0 = no code), and the width."""
    codes = canonical_codes(lengths)
    width = max(int(lengths.max(initial=0)), 1)
    table_sym = np.zeros(1 << width, dtype=np.int64)
    table_len = np.zeros(1 << width, dtype=np.int64)
    for sym in np.flatnonzero(lengths):
        n = int(lengths[sym])
        lo = int(codes[sym]) << (width - n)
        table_sym[lo:lo + (1 << (width - n))] = sym
        table_len[lo:lo + (1 << (width - n))] = n
    return table_sym.tolist(), table_len.tolist(), width


def decode(stream: bytes, nbits: int, count: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``count`` symbols from the first ``nbits`` bits of ``stream``.

    Raises:
        HuffmanError: the stream is too short, has bits left over, or holds an invalid code.
    """
    if count < 0 or nbits < 0 or nbits > 8 * len(stream):
        raise HuffmanError("bitstream length does not match its header")
    if count == 0:
        if nbits:
            raise HuffmanError("bitstream has bits but no symbols")
        return np.zeros(0, dtype=np.int64)
    if count > nbits:  # every code is at least one bit long: this bounds the loop by the file size
        raise HuffmanError("bitstream is shorter than its symbol count")
    table_sym, table_len, width = _decode_table(np.asarray(lengths, dtype=np.int64))
    # 24-bit windows at every byte: a window of up to 16 bits at any bit offset lies inside one.
    b = np.frombuffer(stream + b"\0\0\0", dtype=np.uint8).astype(np.int64)
    w24 = ((b[:-2] << 16) | (b[1:-1] << 8) | b[2:]).tolist()
    out = [0] * count
    pos, mask, top = 0, (1 << width) - 1, 24 - width
    for i in range(count):
        window = (w24[pos >> 3] >> (top - (pos & 7))) & mask
        n = table_len[window]
        if n == 0:
            raise HuffmanError("bitstream holds a bit pattern that is no code")
        out[i] = table_sym[window]
        pos += n
        if pos > nbits:
            raise HuffmanError("bitstream ends in the middle of a code")
    if pos != nbits:
        raise HuffmanError("bitstream has bits left over after the last symbol")
    return np.asarray(out, dtype=np.int64)


def coded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Size in bits of a stream with symbol frequencies ``counts`` under ``lengths``."""
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))
