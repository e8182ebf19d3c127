// FaceResNet: dlib's face-recognition ResNet-29 as a libtorch Module.
//
// WHAT THIS REPRESENTS
//   The network of dlib's dlib_face_recognition_resnet_model_v1 (the face-api port's layout, see
//   ../shared/docs/anchors.md): 150x150 RGB chip in, 128-D embedding out; two chips show the same
//   person when the Euclidean distance of their raw embeddings is below 0.6.
//     stem:   conv32_down (7x7, stride 2, 'valid') + max pool 3x3 / 2 'valid'
//     stages: conv32_1..3; conv64_down, conv64_1..3; conv128_down, conv128_1..2;
//             conv256_down, conv256_1..2, conv256_down_out
//     head:   mean over H,W -> fc [256 -> 128] (no bias)
//   Each conv layer is a ConvAffine: Conv2d (with bias) followed by a trainable per-channel affine
//   (scale, bias) exactly as dlib's `affine` layer, then ReLU except after the second conv of a
//   block. Residual: relu(conv2(conv1(x)) + x). Residual-down: conv1 has stride 2 and 'valid'
//   padding; the skip path is a 2x2 average pool (stride 2, 'valid') with zero channels appended
//   when the width doubles; when the conv path is one pixel smaller than the skip it is padded
//   with one zero row at the bottom and one zero column at the right.
//
//   THERE IS NO BATCHNORM and no other buffer: the module's state is its parameters alone
//   (named_buffers() is empty). An EMA / mean-teacher copy therefore only has to average
//   parameters, and train() vs eval() changes nothing but the embedding dropout of classify().
//
//   The classifier is bias-free and cosine: logits = scale * normalize(e) @ normalize(W)^T with
//   W [C,128] (parameter "classifier"). It is used for co-training only; forward() ignores it.
//
// THREAD SAFETY
//   Like any torch Module: concurrent forward() calls on one instance in eval mode under
//   torch::InferenceMode / NoGradGuard are safe; anything that changes parameters
//   (reset_classifier, load, an optimiser step) needs exclusive access.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace faceadapt::learner {

inline constexpr int kChipSize = 150;          // input chip side, pixels
inline constexpr int kEmbeddingDim = 128;      // output dimension
inline constexpr double kSameIdentityDistance = 0.6;  // dlib's Euclidean threshold

struct FaceResNetOptions {
    // Dropout on the embedding INSIDE classify() (train mode only; MMT: dropout sits between
    // the feature and the classifier, the triplet losses see the undropped feature).
    double embedding_dropout = 0.0;
    double classifier_scale = 20.0;  // the cosine classifier's temperature (multiplier)
    int64_t num_classes = 0;         // rows of the classifier; 0 = no head yet
};

// One conv layer: Conv2d(in, out, k, stride, padding, bias) then per-channel affine
// y = x * scale + shift (parameters "scale" [out], "shift" [out]); optional ReLU.
class ConvAffineImpl : public torch::nn::Module {
public:
    ConvAffineImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool relu);
    torch::Tensor forward(const torch::Tensor& x);
    torch::nn::Conv2d conv{nullptr};
    torch::Tensor scale, shift;
    bool relu;
};
TORCH_MODULE(ConvAffine);

// Residual block, same channels and size: relu(conv2(conv1(x)) + x), 3x3 'same' convs.
class ResidualBlockImpl : public torch::nn::Module {
public:
    explicit ResidualBlockImpl(int64_t channels);
    torch::Tensor forward(const torch::Tensor& x);
    ConvAffine conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(ResidualBlock);

// Residual-down block: conv1 3x3 stride 2 'valid', conv2 3x3 'same'; skip = avgpool 2x2/2,
// zero channels appended when out > in; conv path padded bottom/right when one smaller.
class ResidualDownBlockImpl : public torch::nn::Module {
public:
    ResidualDownBlockImpl(int64_t in, int64_t out);
    torch::Tensor forward(const torch::Tensor& x);
    ConvAffine conv1{nullptr}, conv2{nullptr};
    int64_t in_channels, out_channels;
};
TORCH_MODULE(ResidualDownBlock);

class FaceResNetImpl : public torch::nn::Module {
public:
    explicit FaceResNetImpl(const FaceResNetOptions& options = {});

    // requires: x is float [N,3,150,150], normalised as chips_to_input() does, on this
    //           module's device (contiguous or channels-last).
    // ensures:  returns the raw 128-D embeddings [N,128] (NOT L2-normalised).
    torch::Tensor forward(torch::Tensor x);

    // requires: embedding [N,128]; options().num_classes > 0 (else throws std::logic_error).
    // ensures:  returns logits [N,C] = classifier_scale * normalize(dropout(e)) @ normalize(W)^T;
    //           dropout only in train mode.
    torch::Tensor classify(const torch::Tensor& embedding);

    // requires: centroids [C,128], C >= 1, finite.
    // ensures:  W = rows of centroids L2-normalised (copied to this module's device and dtype);
    //           options().num_classes == C. The parameter tensor keeps its identity (set_data),
    //           but an optimiser's per-parameter state for it is stale: rebuild the optimiser.
    void reset_classifier(const torch::Tensor& centroids);

    // All parameters but the classifier (convs, affines, fc), and the classifier alone.
    std::vector<torch::Tensor> backbone_parameters();
    std::vector<torch::Tensor> classifier_parameters();

    const FaceResNetOptions& options() const { return options_; }
    // Changes the dropout / scale (not num_classes: use reset_classifier).
    void set_embedding_dropout(double p) { options_.embedding_dropout = p; }
    void set_classifier_scale(double s) { options_.classifier_scale = s; }

    ConvAffine conv32_down{nullptr};
    ResidualBlock conv32_1{nullptr}, conv32_2{nullptr}, conv32_3{nullptr};
    ResidualDownBlock conv64_down{nullptr};
    ResidualBlock conv64_1{nullptr}, conv64_2{nullptr}, conv64_3{nullptr};
    ResidualDownBlock conv128_down{nullptr};
    ResidualBlock conv128_1{nullptr}, conv128_2{nullptr};
    ResidualDownBlock conv256_down{nullptr};
    ResidualBlock conv256_1{nullptr}, conv256_2{nullptr};
    ResidualDownBlock conv256_down_out{nullptr};
    torch::nn::Linear fc{nullptr};  // 256 -> 128, no bias (weight = manifest's fc transposed)
    torch::Tensor classifier;       // [num_classes, 128]

private:
    FaceResNetOptions options_;
};
TORCH_MODULE(FaceResNet);

// requires: chips uint8 [N,150,150,3] RGB (any device).
// ensures:  float [N,3,150,150] on the same device = (rgb - [122.782,117.001,104.298]) / 256.
torch::Tensor chips_to_input(const torch::Tensor& chips);

// An independent deep copy of `net` (same options, parameters cloned), on the same device.
// For mean-teacher copies and perturbed second students.
FaceResNet clone_face_resnet(const FaceResNet& net);

}  // namespace faceadapt::learner
