// Internal: pieces of the door's model folder shared by DoorAgent and install_package.
#pragma once

#include <functional>
#include <string>

#include "faceadapt/publish/door_agent.hpp"

namespace faceadapt::publish {

// "" when `version` may be installed in a folder in `state`; otherwise why not.
std::string acceptance_problem(const InstallFolderState& state, std::int64_t version, bool allow_rollback);
std::string acceptance_problem(const std::filesystem::path& dir, std::int64_t version, bool allow_rollback);

// Installs a package whose manifest `m` was already verified (signature) from its chunks,
// checking on the way the payload and part SHA-256, chunk sizes, m.check_installable(site),
// the model part (model_check.hpp) and check_gallery; temp folder + fsync + rename, then
// installed.json replaced atomically. throws PackageError on a mismatch, std::system_error /
// std::runtime_error on a local fault (errno text in what()); either way nothing changes and
// the temp folder is removed.
InstalledModel install_verified(const std::filesystem::path& dir, const std::string& envelope, const Manifest& m,
                                std::string_view site, const std::function<std::string(std::size_t)>& chunk);


}  // namespace faceadapt::publish
