// Set-up the quality benchmarks share: a dataset of ../shared/datasets that may be absent, the
// source model on the CPU, and the sorted identity folders of a set. Header-only, bench-only.
// Each function prints why it gives up ("SKIP: ...") so that the caller can return 0 at once.
#pragma once

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <vector>

#include "faceadapt/learner/embedder.hpp"

namespace faceadapt::bench {

// true when `dir` exists; otherwise prints "SKIP: <dir> is absent ..." and returns false.
inline bool dataset_present(const std::filesystem::path& dir) {
    if (std::filesystem::exists(dir)) return true;
    std::printf("SKIP: %s is absent (see ../shared/datasets/README.md)\n", dir.c_str());
    return false;
}

// The source model (no model file: the pretrained weights) on the CPU, batches of 32; nullptr
// after printing "SKIP: source model unavailable: <why>" when the weights cannot be loaded.
inline std::unique_ptr<learner::Embedder> source_embedder_or_skip() {
    try {
        return std::make_unique<learner::Embedder>(std::filesystem::path{}, "cpu", 32);
    } catch (const std::exception& e) {
        std::printf("SKIP: source model unavailable: %s\n", e.what());
        return nullptr;
    }
}

// The sub-folders of `dir` (one per identity in the shared sets), in name order.
inline std::vector<std::filesystem::path> sorted_subfolders(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& d : std::filesystem::directory_iterator(dir))
        if (d.is_directory()) out.push_back(d.path());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace faceadapt::bench
