"""Lossless sparse + codebook coding of one weight tensor (the stage after weight sharing).

A tensor is stored as its non-zero entries: a codebook of the distinct values (float32,
sorted by bit pattern), the Huffman-coded codebook index of every entry, and the
Huffman-coded gaps between entries. "Zero" means the bit pattern of +0.0, so -0.0 and NaN
survive bit-exact.

Gaps use the paper's filler trick with a ``gap_bits`` alphabet: symbol ``g < M`` (``M =
2**gap_bits - 1``) means "skip g zero positions, then one entry"; symbol ``M`` is the filler,
"skip M positions, no entry", so gaps of any length fit a bounded alphabet. Because the
symbols are Huffman-coded anyway, ``gap_bits`` only sets the alphabet size; the encoder
tries 1..8 and keeps the smallest. A tensor with no zeros stores no gap stream at all.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edgecn.compress import huffman

MAX_CODEBOOK = 256
"""More distinct non-zero values than this (an un-shared layer) and the tensor is stored raw."""


@dataclasses.dataclass
class CodedTensor:
    """One tensor in its coded form; ``sections`` are the binary parts the file stores."""

    shape: tuple[int, ...]
    count: int
    codebook: np.ndarray            # float32, distinct non-zero values
    index_lengths: np.ndarray       # uint8 Huffman code lengths, one per codebook entry
    index_stream: bytes
    index_nbits: int
    gap_bits: int                   # 0: no zeros, no gap stream
    gap_lengths: np.ndarray
    gap_symbols: int
    gap_stream: bytes
    gap_nbits: int

    @property
    def nbytes(self) -> int:
        """Bytes of payload: codebook, both Huffman tables and both bitstreams."""
        return (self.codebook.nbytes + self.index_lengths.size + len(self.index_stream)
                + self.gap_lengths.size + len(self.gap_stream))

    def breakdown_bits(self) -> dict[str, int]:
        """Bits spent on indices, positions and tables (codebook + code lengths)."""
        return {"index": 8 * len(self.index_stream), "position": 8 * len(self.gap_stream),
                "tables": 8 * (self.codebook.nbytes + self.index_lengths.size + self.gap_lengths.size)}


def encode_tensor(array: np.ndarray) -> CodedTensor | None:
    """Code a float32 array; ``None`` when it has more than ``MAX_CODEBOOK`` distinct non-zeros."""
    array = np.asarray(array, dtype=np.float32, order="C")
    bits = array.reshape(-1).view(np.int32)
    positions = np.flatnonzero(bits)
    values, labels = np.unique(bits[positions], return_inverse=True)
    if values.size > MAX_CODEBOOK:
        return None
    index_lengths = huffman.code_lengths(np.bincount(labels, minlength=values.size))
    index_stream, index_nbits = huffman.encode(labels, index_lengths)
    gap_bits, gap_lengths, gap_syms = 0, np.zeros(0, np.uint8), np.zeros(0, np.int64)
    if positions.size < bits.size:
        gap_bits, gap_syms, gap_lengths = _best_gap_code(positions)
    gap_stream, gap_nbits = huffman.encode(gap_syms, gap_lengths)
    return CodedTensor(tuple(array.shape), int(positions.size), values.view(np.float32).copy(),
                       index_lengths, index_stream, index_nbits, gap_bits, gap_lengths,
                       int(gap_syms.size), gap_stream, gap_nbits)


def _gap_symbols(gaps: np.ndarray, gap_bits: int) -> np.ndarray:
    filler = (1 << gap_bits) - 1
    n_fill = gaps // filler
    # Each gap becomes n_fill filler symbols followed by its remainder.
    reps = np.repeat(np.arange(gaps.size), n_fill + 1)
    syms = np.full(reps.size, filler, dtype=np.int64)
    last = np.cumsum(n_fill + 1) - 1
    syms[last] = gaps % filler
    return syms


def _best_gap_code(positions: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    gaps = np.diff(np.concatenate([[-1], positions])) - 1
    best = None
    for gap_bits in range(1, 9):
        syms = _gap_symbols(gaps, gap_bits)
        counts = np.bincount(syms, minlength=1 << gap_bits)
        lengths = huffman.code_lengths(counts)
        cost = (huffman.coded_bits(counts, lengths) + 7) // 8 + lengths.size
        if best is None or cost < best[0]:
            best = (cost, gap_bits, syms, lengths)
    return best[1], best[2], best[3]


def decode_tensor(coded: CodedTensor) -> np.ndarray:
    """The exact float32 array ``coded`` was made from.

    Raises:
        huffman.HuffmanError: the parts are inconsistent (a corrupt file).
    """
    numel = int(np.prod(coded.shape, dtype=np.int64))
    if coded.count > numel or coded.codebook.size > MAX_CODEBOOK:
        raise huffman.HuffmanError("more entries than the tensor has positions")
    if coded.index_lengths.size != coded.codebook.size:
        raise huffman.HuffmanError("index code table does not match the codebook")
    labels = huffman.decode(coded.index_stream, coded.index_nbits, coded.count, coded.index_lengths)
    if coded.gap_bits == 0:
        if coded.count != numel:
            raise huffman.HuffmanError("dense tensor has fewer entries than positions")
        positions = np.arange(numel)
    else:
        positions = _decode_positions(coded, numel)
    out = np.zeros(numel, dtype=np.int32)
    out[positions] = coded.codebook.view(np.int32)[labels]
    return out.view(np.float32).reshape(coded.shape)


def _decode_positions(coded: CodedTensor, numel: int) -> np.ndarray:
    if not 1 <= coded.gap_bits <= 8 or coded.gap_lengths.size != 1 << coded.gap_bits:
        raise huffman.HuffmanError("gap code has an invalid alphabet")
    syms = huffman.decode(coded.gap_stream, coded.gap_nbits, coded.gap_symbols, coded.gap_lengths)
    filler = (1 << coded.gap_bits) - 1
    is_entry = syms != filler
    if int(is_entry.sum()) != coded.count or (coded.count and not is_entry[-1]):
        raise huffman.HuffmanError("gap stream does not match the entry count")
    # Every symbol advances by its value; an entry also occupies one position.
    advance = syms + is_entry
    ends = np.cumsum(advance)
    positions = ends[is_entry] - 1
    if positions.size and positions[-1] >= numel:
        raise huffman.HuffmanError("gap stream points past the end of the tensor")
    return positions
