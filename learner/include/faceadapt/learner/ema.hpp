// Mean-teacher (EMA) models, claim 3 of the patent: mean = lambda * mean + (1 - lambda) * student,
// the weight-factor pair (lambda, 1 - lambda) summing to 1.
//
// WHAT THIS REPRESENTS
//   EmaSchedule gives lambda for a step: "fixed" (the configured lambda, e.g. 0.5/0.9/0.99) or
//   "mmt" (MMT's min(1 - 1/(t+1), 0.999), t = global step counted from 0).
//   ema_update() averages EVERY parameter of two modules of the same structure. Buffers (none
//   exist in FaceResNet: dlib's affine layers are plain parameters, there is no BatchNorm and so
//   no running statistics) are copied from the student.
//   mix_toward() interpolates a net's weights toward another's (CoTrainOptions::source_mix).
//   perturb_parameters() adds seeded Gaussian noise scaled by each tensor's std (how the second
//   student is made to differ from the first).
// THREAD SAFETY
//   The functions mutate `mean` / `net`: no concurrent use of those modules.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace faceadapt::learner {

struct EmaSchedule {
    std::string rule = "fixed";  // fixed|mmt
    double lambda = 0.99;        // fixed rule; in [0, 1]
    // throws std::invalid_argument for an unknown rule or lambda outside [0, 1].
    double at(int64_t step) const;
};

// requires: mean and student have the same named parameters with the same shapes.
// ensures:  for each parameter p: p_mean = lambda * p_mean + (1 - lambda) * p_student (no grad).
// throws:   std::invalid_argument naming the parameter that differs.
void ema_update(torch::nn::Module& mean, const torch::nn::Module& student, double lambda);

// requires: 0 <= m <= 1.
// ensures:  for each parameter p of `net` that `start` has by name with the same shape:
//           p = start + m * (p - start) (no grad): the weights interpolated toward `start`
//           (m = 1 leaves them, m = 0 gives start's). Parameters `start` lacks or shapes
//           differently (a classifier over another run's pseudo-identities) are left as they are.
void mix_toward(torch::nn::Module& net, const torch::nn::Module& start, double m);

// ensures: each buffer of `mean` that `student` has by name is a copy of the student's (what
//          ema_update does with buffers; for the fused MeanTeacherAdam path, which averages
//          parameters only). No-op for FaceResNet (no buffers).
void copy_buffers(torch::nn::Module& mean, const torch::nn::Module& student);

// ensures: every parameter p += noise_scale * std(p) * N(0,1), drawn from a generator seeded by
//          `seed` (the same seed gives the same perturbation). Single-element tensors are left as they are.
void perturb_parameters(torch::nn::Module& net, double noise_scale, uint64_t seed);

}  // namespace faceadapt::learner
