// anchor.hpp: the virtual anchor of VA-QKD (SEEDS.md §1): the teacher's logits quantized on the fly to
// b bits, z_VA = Q(z_T, b), used as an extra soft target. The paper leaves Q unspecified; ours (a design
// choice, documented in docs/distill.md when the methods land): per sample, a uniform b-bit grid over
// that sample's logit range [min, max] with 2^b levels, each logit rounded to the nearest level (ties
// to the lower level), except that only the teacher's arg-max may take the top level: every other
// logit is capped one level below it. So the anchor keeps the teacher's arg-max (the first maximal
// index, as argmax takes it), takes at most 2^b distinct values per sample, and is a plain Tensor: it
// carries no gradient and costs one pass over the logits, no backward.
// feature_anchor is the same idea for the feature-map and contrastive variants (also our design): a
// uniform b-bit grid per group without the arg-max rule (features have no class ranking to keep).
// Not here: the losses that use them (distill/objective.hpp), the training loop (apps/).
#pragma once

#include "core/tensor.hpp"

namespace bitgrad::distill {

// teacher_logits [B, C] (C >= 2), bits in 1..8 -> the anchor [B, C]. A sample whose logits are all
// equal keeps them. Throws bitgrad::Error for another shape, bits outside 1..8 or a non-finite logit.
core::Tensor virtual_anchor(const core::Tensor& teacher_logits, int bits);

// features [B, D] (an embedding: one group per sample) or [B, C, ...] (a feature map: one group per
// sample and channel, over the remaining positions), bits in 1..8 -> the same shape, each value
// rounded to the nearest of 2^b levels spread uniformly over its group's [min, max] (ties to the lower
// level); a group whose values are all equal keeps them. So a ReLU feature map keeps 0 and its
// per-channel peak, like a b-bit activation with a per-channel clip at the peak. A plain Tensor: no
// gradient. Throws bitgrad::Error for rank < 2, an empty tensor, bits outside 1..8 or a non-finite
// value.
core::Tensor feature_anchor(const core::Tensor& features, int bits);

}  // namespace bitgrad::distill
