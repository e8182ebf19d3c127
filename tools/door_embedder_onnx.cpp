// DoorEmbedder on OpenCV DNN (faceadapt-door); see door_embedder.hpp.
#include "door_embedder.hpp"

#include <type_traits>
#include <vector>

#include <opencv2/core/utility.hpp>

#include "faceadapt/onnx/dnn_embedder.hpp"
#include "faceadapt/publish/package.hpp"

namespace faceadapt::tools {

struct DoorEmbedder::Impl {
    onnx::DnnEmbedder embedder;
};

std::string_view DoorEmbedder::model_format() { return publish::kModelFormatOnnx; }

DoorEmbedder::DoorEmbedder(const std::filesystem::path& model_file, int threads) {
    cv::setNumThreads(threads);
    impl_ = std::make_unique<Impl>(Impl{onnx::DnnEmbedder(model_file)});
}

DoorEmbedder::~DoorEmbedder() = default;

static_assert(std::is_same_v<onnx::DnnEmbedding, publish::Embedding>, "the backend's embedding is the package's");

publish::Embedding DoorEmbedder::embed(const cv::Mat& rgb_chip) const {
    return impl_->embedder.embed(std::vector<cv::Mat>{rgb_chip}).at(0);
}

}  // namespace faceadapt::tools
