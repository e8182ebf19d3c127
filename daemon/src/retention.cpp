// Retention of models/: see retention.hpp for what is kept and why.
#include "faceadapt/daemon/retention.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <system_error>

#include <spdlog/spdlog.h>

#include "faceadapt/daemon/model_registry.hpp"

namespace faceadapt::daemon {
namespace fs = std::filesystem;

std::uint64_t folder_bytes(const fs::path& dir) {
    std::uint64_t total = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code fec;
        if (it->is_regular_file(fec)) {
            const auto size = it->file_size(fec);
            if (!fec) total += size;
        }
    }
    return total;
}

namespace {

// Removes `p` (a file or a folder) and counts its bytes; false (logged) when it could not.
bool remove_counted(const fs::path& p, RetentionReport& report) {
    std::error_code ec;
    const std::uint64_t bytes = fs::is_directory(p, ec) ? folder_bytes(p) : fs::file_size(p, ec);
    ec.clear();
    fs::remove_all(p, ec);
    if (ec) {
        spdlog::warn("retention: cannot remove {}: {}", p.string(), ec.message());
        return false;
    }
    report.bytes_freed += bytes == static_cast<std::uintmax_t>(-1) ? 0 : bytes;
    return true;
}

// "<N>.fapkg" -> N, or -1.
int package_version(const fs::path& p) {
    if (p.extension() != ".fapkg") return -1;
    const std::string stem = p.stem().string();
    if (stem.empty() || stem.size() > 9 || !std::all_of(stem.begin(), stem.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) return -1;
    return std::stoi(stem);
}

}  // namespace

RetentionReport apply_retention(const ModelRegistry& registry, const RetentionPolicy& policy,
                                const std::string& active_cycle) {
    RetentionReport report;
    std::error_code ec;
    const fs::path candidates = registry.dir() / "candidates";
    for (auto it = fs::directory_iterator(candidates, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        if (it->path().filename() != active_cycle && remove_counted(it->path(), report)) ++report.candidates_removed;

    std::map<int, fs::path> packages;  // version -> file, ascending
    ec.clear();
    for (auto it = fs::directory_iterator(registry.dir() / "packages", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
        if (it->path().string().ends_with(".tmp")) {
            if (remove_counted(it->path(), report)) ++report.temp_files_removed;
        } else if (const int v = package_version(it->path()); v >= 0) {
            packages[v] = it->path();
        }
    }
    const int current = registry.current_version();
    const int keep = std::max(1, policy.keep_packages);
    int newer = 0;
    for (auto it = packages.rbegin(); it != packages.rend(); ++it, ++newer)
        if (newer >= keep && it->first != current && remove_counted(it->second, report)) ++report.packages_removed;

    if (active_cycle.empty()) {
        // A version folder is renamed out of the listing first (one atomic step), then removed:
        // a crash in between leaves a ".<N>.removing.tmp" folder, removed by the next pass.
        ec.clear();
        for (auto it = fs::directory_iterator(registry.dir() / "versions", ec);
             !ec && it != fs::directory_iterator(); it.increment(ec))
            if (it->path().string().ends_with(".removing.tmp")) remove_counted(it->path(), report);
        const auto versions = registry.list();  // ascending
        const int previous = registry.previous_version();
        const auto keep_from = versions.size() > static_cast<std::size_t>(std::max(2, policy.keep_versions))
                                   ? versions.size() - static_cast<std::size_t>(std::max(2, policy.keep_versions))
                                   : 0;
        for (std::size_t i = 0; i < keep_from; ++i) {
            const int v = versions[i].version;
            if (v == current || v == previous) continue;
            const fs::path folder = registry.dir() / "versions" / std::to_string(v);
            const fs::path doomed = registry.dir() / "versions" / fmt::format(".{}.removing.tmp", v);
            std::error_code rec;
            fs::rename(folder, doomed, rec);
            if (rec) {
                spdlog::warn("retention: cannot remove {}: {}", folder.string(), rec.message());
                continue;
            }
            if (remove_counted(doomed, report)) ++report.versions_removed;
        }
    }

    ec.clear();
    for (auto it = fs::directory_iterator(registry.dir(), ec); !ec && it != fs::directory_iterator(); it.increment(ec))
        if (it->path().string().ends_with(".tmp") && it->is_regular_file() && remove_counted(it->path(), report))
            ++report.temp_files_removed;
    if (report.candidates_removed || report.packages_removed || report.versions_removed || report.temp_files_removed)
        spdlog::info("retention: removed {} candidate folder(s), {} package(s), {} version(s), {} temp file(s): "
                     "{:.1f} MB freed",
                     report.candidates_removed, report.packages_removed, report.versions_removed,
                     report.temp_files_removed, report.bytes_freed / 1e6);
    return report;
}

}  // namespace faceadapt::daemon
