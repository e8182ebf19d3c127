// cluster_and_score: the torch side of eval.hpp (clustering through cluster.hpp).
#include <stdexcept>

#include <torch/torch.h>

#include "faceadapt/learner/cluster.hpp"
#include "faceadapt/learner/eval.hpp"

namespace faceadapt::learner {

ClusteringQuality cluster_and_score(const std::vector<Embedding>& embeddings, const std::vector<int>& truth,
                                    const ClusterOptions& options) {
    if (embeddings.size() != truth.size())
        throw std::invalid_argument("cluster_and_score: embeddings and truth differ in size");
    auto features = torch::empty({static_cast<int64_t>(embeddings.size()), static_cast<int64_t>(kEmbeddingSize)});
    for (std::size_t i = 0; i < embeddings.size(); ++i) {
        const Embedding n = l2_normalized(embeddings[i]);
        std::copy(n.begin(), n.end(), features.data_ptr<float>() + i * kEmbeddingSize);
    }
    const ClusterResult r = cluster_features(features, options);
    std::vector<int> predicted(r.labels.begin(), r.labels.end());
    return clustering_quality(truth, predicted);
}

}  // namespace faceadapt::learner
