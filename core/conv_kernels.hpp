// conv_kernels.hpp: the register-blocked inner kernels of core/conv.cpp's direct convolution
// (internal: included by core/conv.cpp and its tests only). Both are GEMMs whose B operand is never
// materialised (no im2col): row k of B is the input itself shifted by off[k] floats, B[k, q] =
// in[off[k] + q]. For a zero-padded image laid out as stride phases (core/conv.cpp), q = oh*Wq + ow
// runs over output positions on a grid Wq wide and off[k] is the start of tap k = (c, i, j), so B
// is the im2col matrix. Written on Eigen's packet math, so they vectorise for the ISA the float
// engine is built for (AVX-512 with -march=native on the reference machine, AVX2 for the portable
// build). Each has a scalar reference (__ref) with the same summation order, using fused
// multiply-adds: on hosts whose packet math fuses (x86-64-v3 and later, NEON) the two agree bit for
// bit. Also the register-tiled transpose that lays the output gradient out for the second kernel.
// Not here: padding, threading, layouts (core/conv.cpp).
#pragma once

#include <cstdint>

namespace bitgrad::core::conv_kernels {

// SIMD width in floats (16 with AVX-512, 8 with AVX2).
int64_t lanes();
// Rows per packed weight block of shifted_gemm.
int64_t block_o();

// out[o, q] = sum_{k < k_count} w[o, k] * in[off[k] + q] for o < o_blocks*block_o(), q < q_count,
// row o of out at out + o*ldo. The weights come packed in blocks of block_o() rows,
// wpack[(b*k_count + k)*block_o() + r] = w[b*block_o() + r, k]. Columns are computed in whole SIMD
// vectors: up to lanes()-1 columns past q_count are written too, and `in` is read up to
// off[k] + q_count + lanes() - 1. Single-threaded; no allocation.
void shifted_gemm(const float* in, const int64_t* off, int64_t k_count, const float* wpack,
                  int64_t o_blocks, float* out, int64_t ldo, int64_t q_count);
void shifted_gemm__ref(const float* in, const int64_t* off, int64_t k_count, const float* wpack,
                       int64_t o_blocks, float* out, int64_t ldo, int64_t q_count);

// The weight gradient's reduction, transposed: for k < k_count and o < o_pad (a multiple of
// lanes()), dwt[k*o_pad + o] += sum over positions p = (r, t), r < rows, t < cols, in row-major
// order, of in[off[k] + r*in_ld + t] * gt[(r*cols + t)*o_pad + o]. gt holds the output gradient one
// position per row (o contiguous). Single-threaded; no allocation.
void shifted_gemm_wgrad(const float* in, const int64_t* off, int64_t k_count, int64_t rows,
                        int64_t cols, int64_t in_ld, const float* gt, int64_t o_pad, float* dwt);
void shifted_gemm_wgrad__ref(const float* in, const int64_t* off, int64_t k_count, int64_t rows,
                             int64_t cols, int64_t in_ld, const float* gt, int64_t o_pad,
                             float* dwt);

// gt[p*o_pad + o] = g[o*hw + p] for p < hw, o < o_count: the output gradient of one image turned
// one position per row for shifted_gemm_wgrad (columns o_count..o_pad-1 are not written). Square
// tiles of lanes() x lanes() go through registers; a pure copy, so equal to the reference exactly.
void transpose_to_rows(const float* g, int64_t o_count, int64_t hw, float* gt, int64_t o_pad);
void transpose_to_rows__ref(const float* g, int64_t o_count, int64_t hw, float* gt, int64_t o_pad);

}  // namespace bitgrad::core::conv_kernels
