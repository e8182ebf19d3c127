// Helpers shared by the tests: locations of shared data, free loopback ports, temp dirs.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace faceadapt::test {

// ../shared (datasets, reference embeddings); may not exist on a user's machine.
std::filesystem::path shared_dir();
// The pretrained weights folder filled by scripts/fetch-weights.
std::filesystem::path weights_dir();
// The build tree (executables: <binary_dir>/tools/faceadapt).
std::filesystem::path binary_dir();
std::filesystem::path source_dir();
// The project's command-line executables in the build tree, as strings for run_command/Child.
std::string faceadapt_bin();  // <binary_dir>/tools/faceadapt
std::string door_bin();       // <binary_dir>/tools/faceadapt-door

// A TCP port on 127.0.0.1 that was free when asked, below the kernel's ephemeral range (so no
// outgoing connection takes it meanwhile) and never the same twice in one process. Thread-safe.
// Throws std::runtime_error when none is found.
int free_loopback_port();

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
private:
    std::filesystem::path path_;
};

// Writes a real, valid PNG of width x height 8-bit grey pixels, all zero, streamed through zlib
// so that it costs no more memory than one row: a "decompression bomb" (15000 x 15000 is about
// 220 KB on disk, 225 MB of pixels, more as BGR). throws std::runtime_error on a write error.
void write_zero_png(const std::filesystem::path& file, int width, int height);

// True when the environment sets FACEADAPT_REQUIRE_DATASETS=1 (.ci/run does: CI has ../shared
// and the weights): a missing dataset is then a failure instead of a skip.
bool datasets_required();

// Polls `condition` every `poll` until it holds or `timeout` passes; returns its last value. The
// tests' one way to wait for an observable event (a file, a state, a metric) without a fixed sleep.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds(20));

// Runs a shell command, returns its exit status; output captured into `output` if given.
int run_command(const std::string& command, std::string* output = nullptr);

}  // namespace faceadapt::test

// Skips the current test with a clear message when `path` does not exist; fails it instead
// under FACEADAPT_REQUIRE_DATASETS=1 (faceadapt::test::datasets_required()).
#define FACEADAPT_REQUIRE_PATH(path)                                                   \
    do {                                                                               \
        if (!std::filesystem::exists(path)) {                                          \
            if (faceadapt::test::datasets_required())                                  \
                FAIL() << "needs " << (path) << " (FACEADAPT_REQUIRE_DATASETS=1: absent data is a failure)"; \
            GTEST_SKIP() << "needs " << (path) << " (absent here; see ../shared/datasets/README.md)"; \
        }                                                                              \
    } while (0)
