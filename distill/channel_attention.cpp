// channel_attention.cpp: HAST's channel attention (trainer_direct.py, ALGORITHMS.md §6.1) from
// autograd ops; the teacher side runs through the same ops without building a graph.
#include "distill/channel_attention.hpp"

#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "distill/l2_normalize.hpp"

namespace bitgrad::distill {

namespace {

// F [B, C, H, W] -> A(F) [B, C].
autograd::Variable channel_attention(const autograd::Variable& f) {
  return l2_normalize_rows(autograd::mean(autograd::pow(f, 2.0f), {2, 3}));
}

}  // namespace

autograd::Variable channel_attention_loss(const autograd::Variable& student,
                                          const core::Tensor& teacher) {
  const core::Shape& s = student.shape();
  const core::Shape& t = teacher.shape();
  check_lazy(s.rank() == 4 && s.numel() > 0, [&] {
    return "channel_attention_loss: expected a non-empty student feature [B, C, H, W], got " +
           s.to_string();
  });
  check_lazy(t.rank() == 4 && t.numel() > 0 && t[0] == s[0] && t[1] == s[1], [&] {
    return "channel_attention_loss: expected a teacher feature [" + std::to_string(s[0]) + ", " +
           std::to_string(s[1]) + ", H', W'] (the student's B and C), got " + t.to_string();
  });
  const autograd::Variable a_s = channel_attention(student);
  const autograd::Variable a_t = channel_attention(autograd::Variable(teacher, false));
  return autograd::mean(autograd::pow(a_s - a_t, 2.0f));
}

}  // namespace bitgrad::distill
