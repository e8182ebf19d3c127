#include "faceadapt/learner/face_resnet.hpp"

#include <stdexcept>
#include <string>

namespace faceadapt::learner {

namespace F = torch::nn::functional;

ConvAffineImpl::ConvAffineImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                               bool relu_after)
    : relu(relu_after) {
    conv = register_module(
        "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(true)));
    scale = register_parameter("scale", torch::ones({out}));
    shift = register_parameter("shift", torch::zeros({out}));
}

torch::Tensor ConvAffineImpl::forward(const torch::Tensor& x) {
    auto y = conv->forward(x);
    y = torch::addcmul(shift.view({1, -1, 1, 1}), y, scale.view({1, -1, 1, 1}));
    return relu ? torch::relu(y) : y;
}

ResidualBlockImpl::ResidualBlockImpl(int64_t channels) {
    conv1 = register_module("conv1", ConvAffine(channels, channels, 3, 1, 1, true));
    conv2 = register_module("conv2", ConvAffine(channels, channels, 3, 1, 1, false));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
    return torch::relu(conv2->forward(conv1->forward(x)) + x);
}

ResidualDownBlockImpl::ResidualDownBlockImpl(int64_t in, int64_t out) : in_channels(in), out_channels(out) {
    if (out != in && out != 2 * in)
        throw std::invalid_argument("ResidualDownBlock: out channels must equal or double in channels");
    conv1 = register_module("conv1", ConvAffine(in, out, 3, 2, 0, true));
    conv2 = register_module("conv2", ConvAffine(out, out, 3, 1, 1, false));
}

torch::Tensor ResidualDownBlockImpl::forward(const torch::Tensor& x) {
    auto out = conv2->forward(conv1->forward(x));
    auto skip = F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2));
    if (out_channels != in_channels) {
        // zero channels appended: the skip path becomes [pooled, 0]
        skip = F::pad(skip, F::PadFuncOptions({0, 0, 0, 0, 0, out_channels - in_channels}));
    }
    const int64_t dh = skip.size(2) - out.size(2), dw = skip.size(3) - out.size(3);
    if (dh != 0 || dw != 0) {
        if (dh < 0 || dw < 0 || dh > 1 || dw > 1)
            throw std::runtime_error("ResidualDownBlock: unexpected spatial sizes");
        // one zero row at the bottom and one zero column at the right (face-api's rule pads both)
        out = F::pad(out, F::PadFuncOptions({0, 1, 0, 1}));
    }
    return torch::relu(out + skip);
}

FaceResNetImpl::FaceResNetImpl(const FaceResNetOptions& options) : options_(options) {
    if (options.num_classes < 0) throw std::invalid_argument("FaceResNetOptions.num_classes < 0");
    conv32_down = register_module("conv32_down", ConvAffine(3, 32, 7, 2, 0, true));
    conv32_1 = register_module("conv32_1", ResidualBlock(32));
    conv32_2 = register_module("conv32_2", ResidualBlock(32));
    conv32_3 = register_module("conv32_3", ResidualBlock(32));
    conv64_down = register_module("conv64_down", ResidualDownBlock(32, 64));
    conv64_1 = register_module("conv64_1", ResidualBlock(64));
    conv64_2 = register_module("conv64_2", ResidualBlock(64));
    conv64_3 = register_module("conv64_3", ResidualBlock(64));
    conv128_down = register_module("conv128_down", ResidualDownBlock(64, 128));
    conv128_1 = register_module("conv128_1", ResidualBlock(128));
    conv128_2 = register_module("conv128_2", ResidualBlock(128));
    conv256_down = register_module("conv256_down", ResidualDownBlock(128, 256));
    conv256_1 = register_module("conv256_1", ResidualBlock(256));
    conv256_2 = register_module("conv256_2", ResidualBlock(256));
    conv256_down_out = register_module("conv256_down_out", ResidualDownBlock(256, 256));
    fc = register_module("fc", torch::nn::Linear(torch::nn::LinearOptions(256, kEmbeddingDim).bias(false)));
    auto w = torch::randn({options.num_classes, kEmbeddingDim});
    if (options.num_classes > 0) w = F::normalize(w, F::NormalizeFuncOptions().dim(1));
    classifier = register_parameter("classifier", w);
}

torch::Tensor FaceResNetImpl::forward(torch::Tensor x) {
    if (x.dim() != 4 || x.size(1) != 3)
        throw std::invalid_argument("FaceResNet::forward: expected [N,3,H,W], got " +
                                    c10::str(x.sizes()));
    x = conv32_down->forward(x);
    x = F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2));
    x = conv32_1->forward(x);
    x = conv32_2->forward(x);
    x = conv32_3->forward(x);
    x = conv64_down->forward(x);
    x = conv64_1->forward(x);
    x = conv64_2->forward(x);
    x = conv64_3->forward(x);
    x = conv128_down->forward(x);
    x = conv128_1->forward(x);
    x = conv128_2->forward(x);
    x = conv256_down->forward(x);
    x = conv256_1->forward(x);
    x = conv256_2->forward(x);
    x = conv256_down_out->forward(x);
    x = x.mean({2, 3});
    return fc->forward(x);
}

torch::Tensor FaceResNetImpl::classify(const torch::Tensor& embedding) {
    if (options_.num_classes <= 0)
        throw std::logic_error("FaceResNet::classify: no classifier (call reset_classifier first)");
    auto e = embedding;
    if (is_training() && options_.embedding_dropout > 0.0)
        e = F::dropout(e, F::DropoutFuncOptions().p(options_.embedding_dropout).training(true));
    const auto en = F::normalize(e, F::NormalizeFuncOptions().dim(1));
    const auto wn = F::normalize(classifier, F::NormalizeFuncOptions().dim(1));
    return options_.classifier_scale * torch::matmul(en, wn.t());
}

void FaceResNetImpl::reset_classifier(const torch::Tensor& centroids) {
    if (centroids.dim() != 2 || centroids.size(0) < 1 || centroids.size(1) != kEmbeddingDim)
        throw std::invalid_argument("FaceResNet::reset_classifier: centroids must be [C>=1,128], got " +
                                    c10::str(centroids.sizes()));
    torch::NoGradGuard no_grad;
    auto w = F::normalize(centroids.detach().to(classifier.device(), classifier.scalar_type()),
                          F::NormalizeFuncOptions().dim(1))
                 .clone();
    classifier.set_data(w);
    options_.num_classes = centroids.size(0);
}

std::vector<torch::Tensor> FaceResNetImpl::backbone_parameters() {
    std::vector<torch::Tensor> out;
    for (const auto& p : named_parameters(true))
        if (p.key() != "classifier") out.push_back(p.value());
    return out;
}

std::vector<torch::Tensor> FaceResNetImpl::classifier_parameters() { return {classifier}; }

torch::Tensor chips_to_input(const torch::Tensor& chips) {
    if (chips.dim() != 4 || chips.size(3) != 3 || chips.scalar_type() != torch::kUInt8)
        throw std::invalid_argument("chips_to_input: expected uint8 [N,H,W,3], got " + c10::str(chips.sizes()) +
                                    " " + std::string(c10::toString(chips.scalar_type())));
    const auto mean = torch::tensor({122.782f, 117.001f, 104.298f}, torch::TensorOptions().device(chips.device()));
    auto x = (chips.to(torch::kFloat) - mean) / 256.0f;  // NHWC
    return x.permute({0, 3, 1, 2}).contiguous();
}

FaceResNet clone_face_resnet(const FaceResNet& net) {
    FaceResNet copy(net->options());
    torch::NoGradGuard no_grad;
    auto src = net->named_parameters(true);
    for (auto& p : copy->named_parameters(true)) p.value().set_data(src[p.key()].detach().clone());
    copy->train(net->is_training());
    return copy;
}

}  // namespace faceadapt::learner
