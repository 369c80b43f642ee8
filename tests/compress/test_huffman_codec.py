"""Canonical Huffman coding and the sparse codebook coding built on it."""

import numpy as np
import pytest

from edgecn.compress import huffman
from edgecn.compress.sparse import MAX_CODEBOOK, decode_tensor, encode_tensor


def _roundtrip(symbols, alphabet):
    counts = np.bincount(symbols, minlength=alphabet)
    lengths = huffman.code_lengths(counts)
    stream, nbits = huffman.encode(symbols, lengths)
    assert nbits == huffman.coded_bits(counts, lengths)
    assert len(stream) == (nbits + 7) // 8
    out = huffman.decode(stream, nbits, len(symbols), lengths)
    np.testing.assert_array_equal(out, symbols)
    return lengths, nbits


def test_random_symbols_round_trip_and_beat_fixed_width():
    rng = np.random.default_rng(0)
    symbols = rng.geometric(0.2, size=5000).clip(max=255) - 1
    lengths, nbits = _roundtrip(symbols, 256)
    assert nbits < 8 * symbols.size  # skewed data: better than 8 bits a symbol
    probs = np.bincount(symbols) / symbols.size
    entropy = -(probs[probs > 0] * np.log2(probs[probs > 0])).sum() * symbols.size
    assert nbits <= entropy + symbols.size  # Huffman is within one bit of the entropy


def test_single_symbol_costs_one_bit_each():
    lengths, nbits = _roundtrip(np.full(37, 5), 8)
    assert nbits == 37 and lengths[5] == 1 and lengths.sum() == 1


def test_empty_stream():
    lengths = huffman.code_lengths(np.zeros(4, dtype=np.int64))
    assert huffman.encode(np.zeros(0, dtype=np.int64), lengths) == (b"", 0)
    assert huffman.decode(b"", 0, 0, lengths).size == 0


def test_very_skewed_counts_are_length_limited():
    counts = np.array([2 ** i for i in range(40)], dtype=np.int64)  # Fibonacci-like depth > 16
    lengths = huffman.code_lengths(counts)
    assert lengths.max() <= huffman.MAX_LEN
    symbols = np.repeat(np.arange(40), 3)
    stream, nbits = huffman.encode(symbols, lengths)
    np.testing.assert_array_equal(huffman.decode(stream, nbits, symbols.size, lengths), symbols)


@pytest.mark.parametrize("stream,nbits,count,why", [
    (b"\x00", 9, 1, "length"),          # more bits than bytes
    (b"\x00", 8, 9, "shorter"),         # more symbols than bits
    (b"\xff", 8, 8, "no code"),         # bit pattern 1 is no code when only symbol 0 is used
    (b"\x00", 8, 3, "left over"),       # trailing bits
])
def test_inconsistent_streams_raise(stream, nbits, count, why):
    lengths = huffman.code_lengths(np.array([5, 0, 0]))
    with pytest.raises(huffman.HuffmanError, match=why):
        huffman.decode(stream, nbits, count, lengths)


def test_lengths_violating_kraft_are_rejected():
    with pytest.raises(huffman.HuffmanError, match="Kraft"):
        huffman.canonical_codes(np.array([1, 1, 1], dtype=np.uint8))


def _bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.int32)


@pytest.mark.parametrize("make", [
    lambda rng: np.zeros((0, 3), np.float32),                                    # empty layer
    lambda rng: np.zeros((4, 5), np.float32),                                    # all pruned
    lambda rng: np.full((3, 3), 0.25, np.float32),                               # one value, dense
    lambda rng: np.where(rng.random((64, 32, 3, 3)) < 0.9, 0,
                         rng.choice(rng.normal(size=16), (64, 32, 3, 3))).astype(np.float32),
    lambda rng: np.array([-0.0, 0.0, np.nan, 1.0, 0.0, -1.5], np.float32),      # -0.0 and NaN survive
    lambda rng: np.pad(np.ones(3, np.float32), (5000, 7000)),                    # gaps beyond any alphabet
])
def test_sparse_coding_is_bit_exact(make):
    a = make(np.random.default_rng(1))
    coded = encode_tensor(a)
    assert coded is not None
    back = decode_tensor(coded)
    assert back.shape == a.shape
    np.testing.assert_array_equal(_bits(back), _bits(a))


def test_long_gaps_use_the_filler_symbol():
    a = np.pad(np.ones(2, np.float32), (100_000, 0))
    coded = encode_tensor(a)
    assert coded.gap_symbols > 1  # fillers were needed
    assert coded.nbytes < 300  # 100,000 positions in a few hundred bytes


def test_too_many_distinct_values_is_not_coded():
    a = np.arange(1, MAX_CODEBOOK + 2, dtype=np.float32)
    assert encode_tensor(a) is None
