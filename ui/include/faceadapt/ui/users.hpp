// Users: the console's accounts (name, role, Argon2id password hash) in one JSON file.
//
// WHAT THIS REPRESENTS
//   <state_dir>/console/users.json, mode 0600, written whole (temp + fsync + rename, so a crash
//   leaves the old file or the new one): {"users": [{"name", "role", "hash", "created"}]}.
//   The hash is libsodium's crypto_pwhash_str (Argon2id, interactive limits: ops 2, 64 MiB, ~0.1 s
//   per hash); a password itself is never stored or logged.
//   Roles, each including the one before: viewer (sees everything), operator (enrolls, erases),
//   admin (rolls models back). Accounts are managed by `faceadapt user add|remove|passwd|list`;
//   the console only reads the file (again whenever it changed).
// THREAD SAFETY
//   A UserStore is a value: not synchronised; ConsoleServer guards its copy with a mutex.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace faceadapt::ui {

enum class Role { viewer = 0, operator_ = 1, admin = 2 };

// "viewer" | "operator" | "admin". throws std::invalid_argument naming the text otherwise.
Role parse_role(std::string_view text);
std::string to_string(Role role);

struct User {
    std::string name;
    Role role = Role::viewer;
    std::string hash;     // crypto_pwhash_str output
    std::string created;  // ISO 8601 UTC
};

// The users file of a state folder: <state_dir>/console/users.json.
std::filesystem::path users_file(const std::filesystem::path& state_dir);

// Names: 1..32 of [A-Za-z0-9._-]. Passwords: 8..256 bytes.
bool valid_user_name(std::string_view name);

class UserStore {
public:
    // An empty store bound to `file` (nothing read).
    explicit UserStore(std::filesystem::path file);
    // Reads `file`; a missing file is an empty store.
    // throws std::runtime_error naming the file when it exists but cannot be read or parsed.
    static UserStore load(const std::filesystem::path& file);

    // Adds a user. throws std::invalid_argument (naming the user) for a bad name, a password
    // shorter than 8 bytes or longer than 256, or a name already there.
    void add(const std::string& name, Role role, const std::string& password);
    // false when no such user.
    bool remove(const std::string& name);
    // throws std::invalid_argument for an unknown user or a bad password.
    void set_password(const std::string& name, const std::string& password);
    // The user when `password` matches (crypto_pwhash_str_verify); nullopt otherwise. An unknown
    // name costs the same time as a wrong password (a dummy hash is verified), so timing does
    // not tell which names exist.
    std::optional<User> verify(const std::string& name, const std::string& password) const;
    std::optional<User> find(const std::string& name) const;
    const std::vector<User>& users() const { return users_; }

    // Writes the file (0600, atomically; its folder created 0700 when absent).
    // throws std::system_error / std::runtime_error naming the file.
    void save() const;
    const std::filesystem::path& file() const { return file_; }

private:
    std::filesystem::path file_;
    std::vector<User> users_;
};

// crypto_pwhash_str of `password` with the store's limits. throws std::runtime_error when
// libsodium cannot allocate the memory.
std::string hash_password(const std::string& password);

}  // namespace faceadapt::ui
