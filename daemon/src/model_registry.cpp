#include "faceadapt/daemon/model_registry.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <algorithm>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/time.hpp"

namespace fs = std::filesystem;

namespace faceadapt::daemon {
namespace {

int read_int_file(const fs::path& p, int fallback) {
    if (!fs::exists(p)) return fallback;
    try {
        return std::stoi(common::read_file(p));
    } catch (const std::exception&) {
        throw std::runtime_error("model registry: " + p.string() + " does not hold a version number");
    }
}

// flock on models/.lock for the lifetime of the object (closing the fd releases it).
class DirLock {
public:
    explicit DirLock(const fs::path& dir) : fd_(::open((dir / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
        if (!fd_.valid()) throw std::runtime_error("model registry: cannot open " + (dir / ".lock").string());
        while (::flock(fd_.get(), LOCK_EX) != 0 && errno == EINTR) {
        }
    }
private:
    common::UniqueFd fd_;
};

}  // namespace

ModelRegistry::ModelRegistry(fs::path models_dir) : dir_(std::move(models_dir)) {
    std::error_code ec;
    fs::create_directories(dir_ / "versions", ec);
    fs::create_directories(dir_ / "candidates", ec);
    if (!fs::is_directory(dir_ / "versions"))
        throw std::runtime_error("model registry: cannot create " + (dir_ / "versions").string() +
                                 (ec ? ": " + ec.message() : ""));
    // Leftovers of an add() interrupted by a crash: never a valid version. Under the lock, so
    // that an add() running in another process (it holds the lock throughout) is not disturbed.
    DirLock lock(dir_);
    for (const auto& e : fs::directory_iterator(dir_ / "versions"))
        if (e.path().filename().string().ends_with(".partial")) fs::remove_all(e.path(), ec);
}

int ModelRegistry::current_version() const { return read_int_file(dir_ / "current", 0); }
int ModelRegistry::previous_version() const { return read_int_file(dir_ / "previous", 0); }

bool ModelRegistry::contains(int version) const {
    return version > 0 && fs::exists(dir_ / "versions" / std::to_string(version) / "meta.json");
}

ModelVersion ModelRegistry::get(int version) const {
    if (!contains(version))
        throw std::out_of_range(fmt::format("model version {} is not in {}", version, (dir_ / "versions").string()));
    const fs::path vdir = dir_ / "versions" / std::to_string(version);
    ModelVersion v;
    v.version = version;
    v.model_file = vdir / "model";
    try {
        v.meta = nlohmann::json::parse(common::read_file(vdir / "meta.json"));
    } catch (const std::exception& e) {
        throw std::runtime_error("model registry: " + (vdir / "meta.json").string() + ": " + e.what());
    }
    return v;
}

std::vector<ModelVersion> ModelRegistry::list() const {
    std::vector<int> versions;
    for (const auto& e : fs::directory_iterator(dir_ / "versions")) {
        const std::string name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        const int v = std::stoi(name);
        if (contains(v)) versions.push_back(v);
    }
    std::sort(versions.begin(), versions.end());
    std::vector<ModelVersion> out;
    for (int v : versions) out.push_back(get(v));
    return out;
}

fs::path ModelRegistry::candidate_dir(const std::string& name) const {
    const fs::path p = dir_ / "candidates" / name;
    fs::create_directories(p);
    return p;
}

ModelVersion ModelRegistry::add(const fs::path& model_file, const std::string& origin, nlohmann::json meta) {
    if (!fs::is_regular_file(model_file))
        throw std::runtime_error("model registry: candidate model " + model_file.string() + " is not a file");
    DirLock lock(dir_);
    int next = read_int_file(dir_ / "next_version", 1);
    for (const auto& e : fs::directory_iterator(dir_ / "versions")) {
        const std::string name = e.path().filename().string();
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
            next = std::max(next, std::stoi(name) + 1);
    }
    common::write_file_atomic(dir_ / "next_version", std::to_string(next + 1) + "\n");
    const fs::path final_dir = dir_ / "versions" / std::to_string(next);
    const fs::path partial = dir_ / "versions" / (std::to_string(next) + ".partial");
    fs::remove_all(partial);
    fs::create_directories(partial);
    fs::copy_file(model_file, partial / "model", fs::copy_options::overwrite_existing);
    common::fsync_path(partial / "model");
    if (!meta.is_object()) meta = nlohmann::json::object();
    meta["version"] = next;
    meta["origin"] = origin;
    if (!meta.contains("created")) meta["created"] = common::utc_timestamp();
    if (!meta.contains("published")) meta["published"] = false;
    common::write_file_atomic(partial / "meta.json", meta.dump(2) + "\n");
    fs::rename(partial, final_dir);
    common::sync_directory(dir_ / "versions");
    return get(next);
}

void ModelRegistry::set_current(int version) {
    if (version != 0 && !contains(version))
        throw std::out_of_range(fmt::format("model version {} is not in {}", version, (dir_ / "versions").string()));
    DirLock lock(dir_);
    const int old = current_version();
    if (old != version) common::write_file_atomic(dir_ / "previous", std::to_string(old) + "\n");
    common::write_file_atomic(dir_ / "current", std::to_string(version) + "\n");
}

void ModelRegistry::update_meta(int version, const nlohmann::json& patch) {
    ModelVersion v = get(version);
    v.meta.merge_patch(patch);
    common::write_file_atomic(dir_ / "versions" / std::to_string(version) / "meta.json", v.meta.dump(2) + "\n");
}

void ModelRegistry::append_history(nlohmann::json record) {
    if (!record.contains("time")) record["time"] = common::utc_timestamp();
    const std::string line = record.dump() + "\n";
    DirLock lock(dir_);
    const fs::path file = dir_ / "history.jsonl";
    const common::UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (!fd.valid()) throw std::runtime_error("cannot append to " + file.string() + ": " + std::strerror(errno));
    // A crash may have left a torn last line; start on a fresh line then.
    struct stat st{};
    std::string out = line;
    if (::fstat(fd.get(), &st) == 0 && st.st_size > 0) {
        const common::UniqueFd rfd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
        char last = '\n';
        if (rfd.valid()) (void)!::pread(rfd.get(), &last, 1, st.st_size - 1);
        if (last != '\n') out = "\n" + line;
    }
    const ssize_t n = ::write(fd.get(), out.data(), out.size());
    ::fsync(fd.get());
    if (n != static_cast<ssize_t>(out.size()))
        throw std::runtime_error("cannot append to " + file.string() + ": short write");
}

std::vector<nlohmann::json> ModelRegistry::history() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(dir_ / "history.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
            out.push_back(nlohmann::json::parse(line));
        } catch (const std::exception&) {  // torn line from a crash
        }
    }
    return out;
}

}  // namespace faceadapt::daemon
