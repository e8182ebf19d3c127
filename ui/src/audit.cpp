#include "faceadapt/ui/audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/text.hpp"
#include "faceadapt/common/time.hpp"
#include "private_folder.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace faceadapt::ui {
namespace {

// Strings inside the detail, made printable and bounded (recursively).
json clean(const json& j) {
    if (j.is_string()) return common::printable(j.get<std::string>());
    if (j.is_array() || j.is_object()) {
        json out = j.is_array() ? json::array() : json::object();
        int kept = 0;
        for (auto it = j.begin(); it != j.end() && kept < 64; ++it, ++kept) {
            if (j.is_array()) out.push_back(clean(*it));
            else out[common::printable(it.key(), 64)] = clean(it.value());
        }
        return out;
    }
    return j;
}

}  // namespace

fs::path audit_file(const fs::path& state_dir) { return state_dir / "console" / "audit.jsonl"; }

AuditLog::AuditLog(fs::path file) : file_(std::move(file)) {
    create_private_folder(file_.parent_path());
}

void AuditLog::append(const AuditEntry& entry) {
    const json line{{"time", common::utc_timestamp()}, {"user", common::printable(entry.user, 64)},
                    {"address", common::printable(entry.address, 64)}, {"action", common::printable(entry.action, 64)},
                    {"detail", clean(entry.detail)}, {"ok", entry.ok}};
    const std::string text = line.dump() + "\n";
    std::lock_guard lock(mutex_);
    common::UniqueFd fd(::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) throw std::runtime_error(file_.string() + ": cannot open the audit log: " + std::strerror(errno));
    const ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n != static_cast<ssize_t>(text.size()) || ::fsync(fd.get()) != 0)
        throw std::runtime_error(file_.string() + ": cannot append to the audit log: " + std::strerror(errno));
}

std::vector<json> AuditLog::tail(std::size_t n) const {
    std::lock_guard lock(mutex_);
    std::ifstream in(file_, std::ios::binary);
    std::vector<json> out;
    if (!in) return out;
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    const std::streamoff start = std::max<std::streamoff>(0, size - (4 << 20));
    in.seekg(start);
    std::string line;
    if (start > 0) std::getline(in, line);  // a partial first line
    std::vector<std::string> lines;
    while (std::getline(in, line))
        if (!line.empty()) lines.push_back(line);
    for (auto it = lines.rbegin(); it != lines.rend() && out.size() < n; ++it) {
        try {
            out.push_back(json::parse(*it));
        } catch (const std::exception&) {
            // a torn line (crash mid-write) is skipped
        }
    }
    return out;
}

}  // namespace faceadapt::ui
