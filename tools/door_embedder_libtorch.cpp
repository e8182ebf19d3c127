// DoorEmbedder on libtorch (faceadapt-door-libtorch, bench only); see door_embedder.hpp.
#include "door_embedder.hpp"

#include <algorithm>
#include <vector>

#include <ATen/Parallel.h>

#include "faceadapt/learner/embedder.hpp"
#include "faceadapt/publish/package.hpp"

namespace faceadapt::tools {

struct DoorEmbedder::Impl {
    learner::Embedder embedder;
};

std::string_view DoorEmbedder::model_format() { return publish::kModelFormatLibtorch; }

DoorEmbedder::DoorEmbedder(const std::filesystem::path& model_file, int threads) {
    impl_ = std::make_unique<Impl>(Impl{learner::Embedder(model_file, "cpu", 1)});
    at::set_num_threads(threads);  // after the Embedder, which sets every core
}

DoorEmbedder::~DoorEmbedder() = default;

publish::Embedding DoorEmbedder::embed(const cv::Mat& rgb_chip) const {
    const auto e = impl_->embedder.embed(std::vector<cv::Mat>{rgb_chip}).at(0);
    publish::Embedding out;
    std::copy(e.begin(), e.end(), out.begin());
    return out;
}

}  // namespace faceadapt::tools
