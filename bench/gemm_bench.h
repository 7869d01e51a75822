// GEMM with a constant weight, one thread: the JIT's generated GEMM
// (jit/gemm_codegen.h) against the interpreter's packed AVX2 kernel
// (kernels/packed_sgemm.h) and oneDNN's matmul, plus an AVX-512 FMA peak
// to read them against.
#pragma once

namespace kiln::bench {

// BM_Gemm/impl:{jit,packed,onednn}/m:{1,32,128}/n:{512,1024,2048} (N = K)
// and BM_FmaPeakAvx512.
void RegisterGemm();

}  // namespace kiln::bench
