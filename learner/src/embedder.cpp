#include "faceadapt/learner/embedder.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <torch/torch.h>

#include "faceadapt/learner/face_resnet.hpp"
#include "faceadapt/learner/model_file.hpp"
#include "faceadapt/learner/weights_import.hpp"

namespace faceadapt::learner {

namespace {

torch::Device parse_device(const std::string& name) {
    try {
        torch::Device d(name);
        if (d.is_cuda() && !torch::cuda::is_available())
            throw std::invalid_argument("Embedder: device '" + name + "' requested but CUDA is not available in this build/machine");
        if (!d.is_cpu() && !d.is_cuda()) throw std::invalid_argument("Embedder: unsupported device '" + name + "'");
        return d;
    } catch (const c10::Error&) {
        throw std::invalid_argument("Embedder: bad device '" + name + "' (expected cpu, cuda or cuda:N)");
    }
}

}  // namespace

struct Embedder::Impl {
    FaceResNet net{nullptr};
    ModelMetadata meta;
    torch::Device device{torch::kCPU};
    int batch = 64;
    bool channels_last = false;
    mutable std::mutex mutex;

    std::vector<Embedding> run(const std::uint8_t* rgb, std::size_t count) {
        std::vector<Embedding> out(count);
        if (count == 0) return out;
        std::lock_guard lock(mutex);
        torch::InferenceMode guard;
        constexpr std::size_t chip_bytes = static_cast<std::size_t>(kChipSize) * kChipSize * 3;
        for (std::size_t start = 0; start < count; start += static_cast<std::size_t>(batch)) {
            const std::size_t n = std::min<std::size_t>(batch, count - start);
            auto chips = torch::from_blob(const_cast<std::uint8_t*>(rgb + start * chip_bytes),
                                          {static_cast<int64_t>(n), kChipSize, kChipSize, 3}, torch::kUInt8);
            auto x = chips_to_input(chips.to(device));
            if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
            const auto e = net->forward(x).to(torch::kCPU, torch::kFloat).contiguous();
            std::memcpy(out[start].data(), e.data_ptr<float>(), n * kEmbeddingSize * sizeof(float));
        }
        return out;
    }
};

Embedder::Embedder(const std::filesystem::path& model_file, const std::string& device, int batch)
    : impl_(std::make_unique<Impl>()) {
    if (batch < 1) throw std::invalid_argument("Embedder: batch must be >= 1, got " + std::to_string(batch));
    impl_->batch = batch;
    impl_->device = parse_device(device);
    if (impl_->device.is_cpu()) torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    if (model_file.empty()) {
        const auto dir = default_weights_dir();
        impl_->net = import_face_api_weights(dir);
        impl_->meta.version = 0;
        impl_->meta.parent_version = -1;
        impl_->meta.provenance = {{"source", "@vladmandic/face-api 1.7.15 face_recognition_model"},
                                  {"weights_dir", dir.string()}};
        impl_->net->to(impl_->device);
    } else {
        auto loaded = load_model(model_file, impl_->device);
        impl_->net = loaded.net;
        impl_->meta = std::move(loaded.meta);
    }
    impl_->net->eval();
    // Channels-last measured faster on CPU (bench_embed: CPU ms per chip, both batch sizes);
    // not measured on CUDA, so left off there.
    impl_->channels_last = impl_->device.is_cpu();
    if (impl_->channels_last) {
        torch::NoGradGuard no_grad;
        for (auto& p : impl_->net->parameters())
            if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
    }
}

Embedder::~Embedder() = default;
Embedder::Embedder(Embedder&&) noexcept = default;
Embedder& Embedder::operator=(Embedder&&) noexcept = default;

#ifdef FACEADAPT_HAVE_OPENCV
std::vector<Embedding> Embedder::embed(const std::vector<cv::Mat>& chips) const {
    constexpr std::size_t chip_bytes = static_cast<std::size_t>(kChipSize) * kChipSize * 3;
    std::vector<std::uint8_t> buffer(chips.size() * chip_bytes);
    for (std::size_t i = 0; i < chips.size(); ++i) {
        const cv::Mat& c = chips[i];
        if (c.rows != kChipSize || c.cols != kChipSize || c.type() != CV_8UC3)
            throw std::invalid_argument("Embedder::embed: chip " + std::to_string(i) +
                                        " is not a 150x150 CV_8UC3 RGB image");
        for (int r = 0; r < kChipSize; ++r)
            std::memcpy(buffer.data() + i * chip_bytes + static_cast<std::size_t>(r) * kChipSize * 3, c.ptr(r),
                        kChipSize * 3);
    }
    return impl_->run(buffer.data(), chips.size());
}
#endif

std::vector<Embedding> Embedder::embed(const std::uint8_t* rgb, std::size_t count) const {
    if (count > 0 && rgb == nullptr) throw std::invalid_argument("Embedder::embed: null buffer");
    return impl_->run(rgb, count);
}

const ModelMetadata& Embedder::metadata() const { return impl_->meta; }
std::string Embedder::device() const { return impl_->device.str(); }
int Embedder::batch() const { return impl_->batch; }

}  // namespace faceadapt::learner
