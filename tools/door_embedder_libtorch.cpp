// DoorEmbedder on libtorch (faceadapt-door-libtorch, bench only); see door_embedder.hpp.
#include "door_embedder.hpp"

#include <type_traits>
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

static_assert(std::is_same_v<learner::Embedding, publish::Embedding>, "the backend's embedding is the package's");

publish::Embedding DoorEmbedder::embed(const cv::Mat& rgb_chip) const {
    return impl_->embedder.embed(std::vector<cv::Mat>{rgb_chip}).at(0);
}

}  // namespace faceadapt::tools
