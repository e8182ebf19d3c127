// The console's folder (<state_dir>/console): created 0700 when absent (internal to ui/).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <stdexcept>

namespace faceadapt::ui {

// throws std::runtime_error naming the folder when it cannot be created.
inline void create_private_folder(const std::filesystem::path& dir) {
    std::error_code ec;
    if (dir.empty() || std::filesystem::exists(dir, ec)) return;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error(dir.string() + ": cannot create the console folder: " + ec.message());
    ::chmod(dir.c_str(), 0700);
}

}  // namespace faceadapt::ui
