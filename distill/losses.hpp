// losses.hpp: the public entry to bitgrad's distillation losses; includes one header per loss.
// Each loss is a free function: the student side an autograd::Variable, the teacher side a
// core::Tensor (stop-gradient by type), a scalar Variable out. Not here: methods that combine them
// (KD, QKD, VA-QKD, TAKD) and their weights.
#pragma once

#include "distill/channel_attention.hpp"  // channel_attention_loss (HAST / BAG, ALGORITHMS.md §6.1)
#include "distill/contrastive.hpp"        // contrastive_loss (in-batch InfoNCE)
#include "distill/feature.hpp"            // feature_mse_loss (FitNet), attention_transfer_loss
#include "distill/kd.hpp"                 // kd_loss (Hinton, T², batchmean; ALGORITHMS.md §4)
#include "distill/l2_normalize.hpp"       // l2_normalize_rows (F.normalize over dim 1)
