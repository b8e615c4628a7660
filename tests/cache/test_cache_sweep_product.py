"""The sweep's neighbour products without OpenBLAS's threads: the same bits as ``vecs @ q``."""

from __future__ import annotations

import numpy as np

from llmgw_kernel.replay.cache_sweep_inputs import _blas_threads, _chunks, _threaded_from, one_thread_product


def test_chunks_split_as_openblas_does() -> None:
    assert _chunks(3001, 2) == [(0, 1501), (1501, 3001)]
    assert _chunks(9, 4) == [(0, 4), (4, 8), (8, 9)]
    assert _chunks(2400, 1) == [(0, 2400)]


def test_products_bit_equal_to_numpys_around_the_threshold() -> None:
    """Every size from one thread's to twice the threshold (where the chunks stand in), at the
    sweep's 384 dimensions and at a small one: the bits of numpy's own (threaded) product."""
    rng = np.random.default_rng(7)
    product = one_thread_product()
    for dim, sizes in (
        (384, [1, 5, 1199, 1200, 1201, 1500, 2399, 2400, 2401, 2402, 2403, 3001, 5003, 7202]),
        (8, [57_600, 60_001]),
    ):
        v = rng.standard_normal((max(sizes) + 7, dim)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        sizes += rng.integers(1200, 7200, 30).tolist() if dim == 384 else []
        for n in sizes:
            lo = int(rng.integers(0, 7))
            q = v[int(rng.integers(0, len(v)))] + np.float32(0.05) * v[int(rng.integers(0, len(v)))]
            want, got = v[lo : lo + n] @ q, product(v[lo : lo + n], q)
            assert got.dtype == np.float32 and np.array_equal(want.view(np.int32), got.view(np.int32)), (dim, n)


def test_threads_known_and_the_rule_established_or_refused() -> None:
    """With threads, the check either establishes the rule from OpenBLAS's threshold (1,200 rows
    of 384 dimensions: on the machine it was measured on, an x86-64 AMD EPYC with numpy's
    scipy-openblas) or refuses it (0: numpy's own product) — never another size. Which one holds
    depends on the CPU's sgemv kernel, so it is not asserted here: another machine may fall back
    (slower, the same bits); benchmarks/replay_semantic_scale.py measures the speed."""
    threads = _blas_threads()
    assert threads >= 1
    if threads > 1:
        assert _threaded_from(384, threads) in (0, 1200)
