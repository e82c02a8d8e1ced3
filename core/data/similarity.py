"""Text normalisation and near-duplicate search (MinHash with LSH banding), vectorised over a whole table.

The permutations and the LSH band layout come from datasketch (its default
``affine32`` scheme), so a signature here equals ``datasketch.MinHash`` fed the
same shingle hashes. The per-row work is done in numpy over all rows at once
because datasketch's per-object API costs tens of microseconds a row, which is
too slow for a million rows (see benchmarks/bench_import_dedup.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from datasketch import MinHash, MinHashLSH
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NUM_PERM = 64
DEFAULT_THRESHOLD = 0.8
SEED = 1
_U32 = np.uint32
# Fixed key so shingle hashes are the same in every process and release.
_HASH_KEY = "stillroom-shingl"  # 16 bytes, as siphash needs
_MIX = np.uint64(0x9E3779B97F4A7C15)


def normalise(texts: pd.Series) -> pd.Series:
    """Unicode NFKC, lower case (ß folded to ss, as casefold does), runs of whitespace collapsed, trimmed."""
    arr = pc.utf8_lower(pc.utf8_normalize(_arrow(texts), "NFKC"))
    # Arrow has no casefold; ß is the case-folding difference that real text meets ("STRASSE" = "straße").
    arr = pc.replace_substring(arr, "ß", "ss")
    # Only runs of two or more, or a lone tab or newline, need replacing: far cheaper than every \s+.
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"\s\s+|[^\S ]", " "))
    return pd.Series(arr, index=texts.index, dtype="str")


def _arrow(texts: pd.Series) -> pa.Array:
    arr = pa.array(texts.astype("str"), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


@lru_cache(maxsize=8)
def permutations(num_perm: int = NUM_PERM, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(_U32), b.astype(_U32)


@lru_cache(maxsize=16)
def bands(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(b, r): datasketch's choice of bands and rows per band for this threshold.

    Missed pairs weigh nine times false candidates: every candidate is verified
    against its full signature afterwards, so a false candidate only costs a
    comparison while a missed one is a duplicate left in.
    """
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    return lsh.b, lsh.r


def _fmix32(hv: np.ndarray) -> np.ndarray:
    # MurmurHash3's finaliser, as datasketch applies it before its affine32 permutations.
    hv = hv ^ (hv >> _U32(16))
    hv = hv * _U32(0x85EBCA6B)
    hv = hv ^ (hv >> _U32(13))
    hv = hv * _U32(0xC2B2AE35)
    return hv ^ (hv >> _U32(16))


def _fold32(h: np.ndarray) -> np.ndarray:
    return ((h >> np.uint64(32)) ^ h).astype(_U32)


@dataclass(frozen=True)
class Shingles:
    """Hashed shingles (word unigrams and bigrams) of each row, grouped by row."""

    hashes: np.ndarray  # uint32, grouped by row: row i owns hashes[starts[i]:starts[i] + counts[i]]
    starts: np.ndarray
    counts: np.ndarray


def shingle(normalised: pd.Series) -> tuple[Shingles, Shingles]:
    """Unigram and bigram shingles of already-normalised texts (punctuation ignored)."""
    arr = _arrow(normalised)
    words = pc.utf8_split_whitespace(pc.replace_substring_regex(arr, r"[^\w\s]+", " "))
    flat = pc.list_flatten(words)
    parents = pc.list_parent_indices(words).to_numpy(zero_copy_only=False)
    # Leading or trailing spaces split off empty strings: they are no words.
    nonempty = pc.not_equal(flat, "")
    flat, parents = pc.filter(flat, nonempty), parents[nonempty.to_numpy(zero_copy_only=False)]
    counts = np.bincount(parents, minlength=len(normalised)).astype(np.int64)
    encoded = pc.dictionary_encode(flat)
    vocab = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    vocab_hash = pd.util.hash_array(vocab, hash_key=_HASH_KEY, categorize=False) if len(vocab) \
        else np.zeros(0, np.uint64)
    token = vocab_hash[encoded.indices.to_numpy(zero_copy_only=False)]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    unigrams = Shingles(_fold32(token), starts, counts)
    # A bigram pairs each token with the next one of the same row.
    pair_counts = np.maximum(counts - 1, 0)
    same_row = np.ones(len(token), dtype=bool)
    same_row[np.cumsum(counts)[counts > 0] - 1] = False  # a row's last token starts no bigram
    first = token[same_row]
    second = token[np.flatnonzero(same_row) + 1]
    bigram = (first * _MIX) ^ second
    pair_starts = np.concatenate([[0], np.cumsum(pair_counts)[:-1]]).astype(np.int64)
    return unigrams, Shingles(_fold32(bigram), pair_starts, pair_counts)


def _min_into(out: np.ndarray, sh: Shingles, a: np.ndarray, b: np.ndarray, chunk_rows: int = 256) -> None:
    """out[row] = min(out[row], min over the row's shingles of each permutation), a block of rows at a time.

    Blocks keep the (shingles x permutations) temporary small enough to stay in
    cache; rows without shingles are left as they are.
    """
    hv = _fmix32(sh.hashes)
    ends = sh.starts + sh.counts
    for r0 in range(0, len(out), chunk_rows):
        r1 = min(r0 + chunk_rows, len(out))
        has = sh.counts[r0:r1] > 0
        if not has.any():
            continue
        s0 = sh.starts[r0]
        permuted = hv[s0:ends[r1 - 1], None] * a + b
        mins = np.minimum.reduceat(permuted, sh.starts[r0:r1][has] - s0, axis=0)
        block = out[r0:r1]
        block[has] = np.minimum(block[has], mins)


def signatures(normalised: pd.Series, *, num_perm: int = NUM_PERM) -> tuple[np.ndarray, np.ndarray]:
    """(n, num_perm) MinHash signatures and a mask of rows that have at least one word."""
    unigrams, bigrams = shingle(normalised)
    a, b = permutations(num_perm)
    sig = np.full((len(normalised), num_perm), np.iinfo(_U32).max, dtype=_U32)
    for part in (unigrams, bigrams):
        _min_into(sig, part, a, b)
    return sig, unigrams.counts > 0


def _band_keys(sig: np.ndarray, b: int, r: int) -> list[np.ndarray]:
    keys = []
    for band in range(b):
        key = np.zeros(len(sig), dtype=np.uint64)
        for col in sig[:, band * r:(band + 1) * r].T:
            key = (key ^ col.astype(np.uint64)) * _MIX
        keys.append(key)
    return keys


def _anchor_pairs(key: np.ndarray, rows: np.ndarray, priority: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair every row with the first row of its bucket (lowest priority, then lowest index).

    Linking to one anchor rather than to every bucket member keeps the candidate
    count linear even for large buckets; connectivity is what clustering needs.
    """
    order = np.lexsort((rows, priority, key))
    k, rws = key[order], rows[order]
    start = np.ones(len(k), dtype=bool)
    start[1:] = k[1:] != k[:-1]
    anchor = rws[np.maximum.accumulate(np.where(start, np.arange(len(k)), 0))]
    keep = anchor != rws
    return anchor[keep], rws[keep]


def similarity(sig: np.ndarray, left: np.ndarray, right: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Estimated Jaccard similarity of row pairs: the share of equal MinHash values."""
    out = np.empty(len(left), dtype=np.float32)
    for s in range(0, len(left), chunk):
        e = s + chunk
        out[s:e] = (sig[left[s:e]] == sig[right[s:e]]).mean(axis=1)
    return out


def candidate_pairs(sig: np.ndarray, usable: np.ndarray, *, threshold: float,
                    priority: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verified (anchor, other, similarity) pairs whose estimated similarity reaches ``threshold``."""
    b, r = bands(threshold, sig.shape[1])
    rows = np.flatnonzero(usable)
    prio = np.zeros(len(rows), dtype=np.int8) if priority is None else priority[rows]
    lefts, rights = [], []
    for key in _band_keys(sig[rows], b, r):
        left, right = _anchor_pairs(key, rows, prio)
        lefts.append(left)
        rights.append(right)
    left, right = np.concatenate(lefts or [np.zeros(0, np.int64)]), np.concatenate(rights or [np.zeros(0, np.int64)])
    if len(left):
        packed = np.unique(left.astype(np.int64) * len(sig) + right)
        left, right = packed // len(sig), packed % len(sig)
    sim = similarity(sig, left, right)
    ok = sim >= threshold
    return left[ok], right[ok], sim[ok]


def clusters(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """For each row, the lowest row index of its connected cluster of near duplicates."""
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    first = pd.Series(np.arange(n)).groupby(labels).transform("min").to_numpy()
    return first
