// The co-training losses of MMT (Ge et al., ICLR 2020), as free functions on tensors.
//
// WHAT THIS REPRESENTS
//   label_smoothed_ce  MMT's CrossEntropyLabelSmooth: targets (1-e)*onehot + e/C,
//                      loss = mean over rows of -sum(targets * log_softmax(logits)).
//   soft_ce            MMT's SoftEntropy: mean over rows of -sum(softmax(teacher) * log_softmax(logits)),
//                      the teacher detached.
//   softmax_triplet    MMT's SoftTripletLoss(margin=0): batch-hard mining on Euclidean distances
//                      (hardest positive = farthest same label, hardest negative = nearest other
//                      label), loss = mean of -log_softmax([s*d_ap, s*d_an])[1]
//                      = mean softplus(s*(d_ap - d_an)).
//   soft_triplet       MMT's SoftTripletLoss(margin=None): same mining on the student, target =
//                      softmax of the teacher's [s*d_ap, s*d_an] at the student's mined indices
//                      (detached), loss = mean of -sum(target * log_softmax(student pair)).
//   `distance_scale` s multiplies the distances before the softmax (the raw dlib embeddings have
//   norms ~1.4, which leaves the two-way softmax nearly flat at s = 1; the prototype used 10).
//   l2sp_penalty       sum over tensors of ||theta - theta_start||^2 (L2-SP, Li et al. 2018).
//   similarity_distillation  mean squared difference of the cosine-similarity matrices of the
//                      student's and a frozen reference's embeddings of the same batch
//                      (keeps the source model's similarity structure).
// THREAD SAFETY
//   Pure functions of their inputs.
#pragma once

#include <vector>

#include <torch/torch.h>

namespace faceadapt::learner {

// requires: logits [N,C] float, targets [N] int64 in [0,C), 0 <= epsilon < 1.
torch::Tensor label_smoothed_ce(const torch::Tensor& logits, const torch::Tensor& targets, double epsilon);
// requires: logits and teacher_logits [N,C].
torch::Tensor soft_ce(const torch::Tensor& logits, const torch::Tensor& teacher_logits);
// requires: embeddings [N,D], targets [N] int64, every row has at least one other label in the
//           batch (else its negative distance is +inf-like and it contributes 0).
torch::Tensor softmax_triplet(const torch::Tensor& embeddings, const torch::Tensor& targets, double distance_scale);
torch::Tensor soft_triplet(const torch::Tensor& embeddings, const torch::Tensor& teacher_embeddings,
                           const torch::Tensor& targets, double distance_scale);
// Pairwise Euclidean distances sqrt(max(|x|^2 + |y|^2 - 2 x.y, 1e-12)) as MMT computes them.
torch::Tensor euclidean_distances(const torch::Tensor& x);
// requires: params.size() == start.size(), shapes equal pairwise.
torch::Tensor l2sp_penalty(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& start);
// requires: embeddings and reference [N,D]; reference is detached here.
torch::Tensor similarity_distillation(const torch::Tensor& embeddings, const torch::Tensor& reference);
// Issue 15's positives across views: the mean over the pairs (first[p], second[p]) of
// 1 - cos(student[first], teacher[second]), the teacher detached (0 without pairs).
// requires: student and teacher [N,D]; first and second int64 [P] in [0, N).
torch::Tensor cross_view_pull(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& first,
                              const torch::Tensor& second);

}  // namespace faceadapt::learner
