// feature.cpp: FitNet MSE (autograd::mse against a gradient-free leaf) and attention transfer,
// composed from autograd ops; the teacher side runs through the same ops without building a graph.
#include "distill/feature.hpp"

#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "distill/l2_normalize.hpp"

namespace bitgrad::distill {

namespace {

// F [B, C, H, W] -> a(F) [B, H*W]: the channel mean of F², L2-normalised over the positions.
autograd::Variable spatial_attention(const autograd::Variable& f) {
  const autograd::Variable q = autograd::mean(autograd::pow(f, 2.0f), {1});  // [B, H, W]
  return l2_normalize_rows(autograd::reshape(q, {f.dim(0), f.dim(2) * f.dim(3)}));
}

}  // namespace

autograd::Variable feature_mse_loss(const autograd::Variable& student,
                                    const core::Tensor& teacher) {
  check_lazy(student.rank() >= 1 && student.numel() > 0, [&] {
    return "feature_mse_loss: expected a non-empty student feature [B, ...], got " +
           student.shape().to_string();
  });
  check_lazy(teacher.shape() == student.shape(), [&] {
    return "feature_mse_loss: expected a teacher feature " + student.shape().to_string() +
           " (the student's shape), got " + teacher.shape().to_string();
  });
  return autograd::mse(student, autograd::Variable(teacher, false));
}

autograd::Variable attention_transfer_loss(const autograd::Variable& student,
                                           const core::Tensor& teacher) {
  const core::Shape& s = student.shape();
  const core::Shape& t = teacher.shape();
  check_lazy(s.rank() == 4 && s.numel() > 0, [&] {
    return "attention_transfer_loss: expected a non-empty student feature [B, C, H, W], got " +
           s.to_string();
  });
  check_lazy(t.rank() == 4 && t.numel() > 0 && t[0] == s[0] && t[2] == s[2] && t[3] == s[3], [&] {
    return "attention_transfer_loss: expected a teacher feature [" + std::to_string(s[0]) +
           ", C', " + std::to_string(s[2]) + ", " + std::to_string(s[3]) +
           "] (the student's B, H, W; any C' >= 1), got " + t.to_string();
  });
  const autograd::Variable a_s = spatial_attention(student);
  const autograd::Variable a_t = spatial_attention(autograd::Variable(teacher, false));
  const autograd::Variable total = autograd::sum(autograd::pow(a_s - a_t, 2.0f));
  return autograd::scale(total, 1.0f / static_cast<float>(s[0]));
}

}  // namespace bitgrad::distill
