// AuditLog: who did what, when, through the console (logins, enrollments, erasures, rollbacks).
//
// WHAT THIS REPRESENTS
//   <state_dir>/console/audit.jsonl, mode 0600: one JSON object per line,
//   {"time": ISO 8601 UTC, "user", "address", "action", "detail": {...}, "ok": bool}, appended
//   with O_APPEND and fsync'd before append() returns (a line is written with one write(), so
//   lines from several writers never interleave). Strings from outside are made printable and
//   bounded (256 bytes) before they are written. Never rotated here: it grows with operator
//   actions only (a few hundred bytes each).
// THREAD SAFETY
//   Every member may be called from any thread (one mutex).
#pragma once

#include <cstddef>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace faceadapt::ui {

struct AuditEntry {
    std::string user;      // "" for an anonymous attempt (a failed login names the user tried)
    std::string address;   // the client's address
    std::string action;    // "login", "login_failed", "logout", "enroll", "erase", "rollback", ...
    nlohmann::json detail = nlohmann::json::object();
    bool ok = true;
};

// <state_dir>/console/audit.jsonl
std::filesystem::path audit_file(const std::filesystem::path& state_dir);

class AuditLog {
public:
    // The folder is created (0700) when absent. throws std::runtime_error naming it otherwise.
    explicit AuditLog(std::filesystem::path file);
    // Appends one line. throws std::runtime_error naming the file when it cannot be written.
    void append(const AuditEntry& entry);
    // The last `n` complete lines, newest first (reads at most the file's last 4 MiB).
    std::vector<nlohmann::json> tail(std::size_t n) const;
    const std::filesystem::path& file() const { return file_; }

private:
    std::filesystem::path file_;
    mutable std::mutex mutex_;
};

}  // namespace faceadapt::ui
