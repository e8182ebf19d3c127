// Embedding: a 128-D face embedding as plain floats (torch-free), with the distances used to
// compare them.
// THREAD SAFETY: pure functions.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>

namespace faceadapt::learner {

inline constexpr std::size_t kEmbeddingSize = 128;
using Embedding = std::array<float, kEmbeddingSize>;

// Euclidean distance (dlib's: same person when < 0.6 on raw embeddings).
inline float euclidean_distance(const Embedding& a, const Embedding& b) {
    float s = 0.0f;
    for (std::size_t i = 0; i < kEmbeddingSize; ++i) {
        const float d = a[i] - b[i];
        s += d * d;
    }
    return std::sqrt(s);
}

// a / |a| (a zero vector stays zero).
inline Embedding l2_normalized(const Embedding& a) {
    float s = 0.0f;
    for (float v : a) s += v * v;
    Embedding out = a;
    if (s > 0.0f) {
        const float inv = 1.0f / std::sqrt(s);
        for (float& v : out) v *= inv;
    }
    return out;
}

}  // namespace faceadapt::learner
