// Internal: pieces of the door's model folder shared by DoorAgent and install_package.
#pragma once

#include <functional>
#include <string>

#include "faceadapt/publish/door_agent.hpp"

namespace faceadapt::publish {

// "" when `version` may be installed in `dir`; otherwise why not.
std::string acceptance_problem(const std::filesystem::path& dir, std::int64_t version, bool allow_rollback);

// Installs a package whose manifest `m` was already verified (signature) from its chunks,
// checking the payload and part SHA-256 (and chunk sizes) on the way; temp folder + fsync + rename,
// then installed.json replaced atomically. throws PackageError on a mismatch (nothing changes).
InstalledModel install_verified(const std::filesystem::path& dir, const std::string& envelope, const Manifest& m,
                                const std::function<std::string(std::size_t)>& chunk);

}  // namespace faceadapt::publish
