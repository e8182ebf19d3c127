#include "faceadapt/learner/onnx_export.hpp"

#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/weights_import.hpp"

namespace faceadapt::learner {

namespace {

std::vector<float> to_floats(const torch::Tensor& t) {
    const auto c = t.detach().to(torch::kCPU, torch::kDouble).contiguous();
    std::vector<float> out(static_cast<std::size_t>(c.numel()));
    const double* p = c.data_ptr<double>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(p[i]);
    return out;
}

}  // namespace

onnx::FaceResNetWeights folded_weights(FaceResNet& net) {
    torch::NoGradGuard no_grad;
    onnx::FaceResNetWeights w;
    for (const auto& item : net->named_modules("", false)) {
        auto* layer = item.value()->as<ConvAffineImpl>();
        if (layer == nullptr) continue;
        const auto weight = layer->conv->weight.detach().to(torch::kCPU, torch::kDouble);
        const auto scale = layer->scale.detach().to(torch::kCPU, torch::kDouble);
        const auto bias = layer->conv->bias.detach().to(torch::kCPU, torch::kDouble);
        const auto shift = layer->shift.detach().to(torch::kCPU, torch::kDouble);
        onnx::ConvWeights c;
        c.out = weight.size(0);
        c.in = weight.size(1);
        c.kernel = weight.size(2);
        c.weight = to_floats(weight * scale.view({-1, 1, 1, 1}));
        c.bias = to_floats(bias * scale + shift);
        w.convs.emplace(item.key(), std::move(c));
    }
    w.fc = to_floats(net->fc->weight);
    return w;
}

std::string export_onnx(FaceResNet& net, const onnx::ExportOptions& options) {
    return onnx::write_face_resnet_onnx(folded_weights(net), options);
}

std::string export_model_file_onnx(const std::filesystem::path& model_file, onnx::ExportOptions options) {
    FaceResNet net{nullptr};
    if (model_file.empty()) {
        net = load_source_model();
        options.metadata.emplace("faceadapt.source", "@vladmandic/face-api 1.7.15 face_recognition_model");
    } else {
        auto loaded = load_model(model_file);
        net = loaded.net;
        if (options.model_version == 0) options.model_version = loaded.meta.version;
        options.metadata.emplace("faceadapt.parent_version", std::to_string(loaded.meta.parent_version));
    }
    return export_onnx(net, options);
}

}  // namespace faceadapt::learner
