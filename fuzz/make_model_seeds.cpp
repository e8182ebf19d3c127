// Writes the seed corpus of fuzz_model_file under OUT_DIR/fuzz_model_file/: model files with a
// real (one-tensor) torch archive, and one with an unknown architecture. C++17 with libtorch.
#include <iostream>
#include <sstream>

#include <torch/torch.h>

#include "seed_util.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: fuzz_make_model_seeds OUT_DIR\n";
        return 2;
    }
    std::ostringstream weights;
    torch::serialize::OutputArchive archive;
    archive.write("fc.weight", torch::ones({2, 3}));
    archive.save_to(weights);
    using faceadapt::fuzz::model_file;
    faceadapt::fuzz::put_seed(argv[1], "fuzz_model_file", "tiny-archive",
                              model_file(faceadapt::fuzz::kSeedMetadata, weights.str()));
    faceadapt::fuzz::put_seed(argv[1], "fuzz_model_file", "bad-architecture",
                              model_file(R"({"format_version":1,"architecture":"x"})", weights.str()));
    std::cout << "model seeds written under " << argv[1] << "\n";
    return 0;
}
