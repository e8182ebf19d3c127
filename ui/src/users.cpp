#include "faceadapt/ui/users.hpp"

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "faceadapt/common/durable_file.hpp"
#include "faceadapt/common/time.hpp"
#include "faceadapt/common/text.hpp"
#include "private_folder.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace faceadapt::ui {
namespace {

void init_sodium() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
}

void check_password(const std::string& user, const std::string& password) {
    if (password.size() < 8 || password.size() > 256)
        throw std::invalid_argument("user " + user + ": the password must be 8 to 256 bytes long");
}

}  // namespace

Role parse_role(std::string_view text) {
    if (text == "viewer") return Role::viewer;
    if (text == "operator") return Role::operator_;
    if (text == "admin") return Role::admin;
    throw std::invalid_argument("role \"" + std::string(text.substr(0, 32)) + "\": must be viewer, operator or admin");
}

std::string to_string(Role role) {
    switch (role) {
        case Role::viewer: return "viewer";
        case Role::operator_: return "operator";
        case Role::admin: return "admin";
    }
    return "viewer";
}

fs::path users_file(const fs::path& state_dir) { return state_dir / "console" / "users.json"; }

bool valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > 32) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-';
    });
}

std::string hash_password(const std::string& password) {
    init_sodium();
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        throw std::runtime_error("hashing a password: out of memory (Argon2id needs 64 MiB)");
    return out;
}

UserStore::UserStore(fs::path file) : file_(std::move(file)) {}

UserStore UserStore::load(const fs::path& file) {
    UserStore store(file);
    std::error_code ec;
    if (!fs::exists(file, ec)) return store;
    json j;
    try {
        j = json::parse(common::read_file(file));
    } catch (const std::exception& e) {
        throw std::runtime_error(file.string() + ": cannot read the console's users: " + e.what());
    }
    if (!j.is_object() || !j.contains("users") || !j["users"].is_array())
        throw std::runtime_error(file.string() + ": not a users file (no \"users\" array)");
    for (const auto& u : j["users"]) {
        User user;
        try {
            user.name = u.at("name").get<std::string>();
            user.role = parse_role(u.at("role").get<std::string>());
            user.hash = u.at("hash").get<std::string>();
            user.created = u.value("created", std::string{});
        } catch (const std::exception& e) {
            throw std::runtime_error(file.string() + ": a user entry is malformed: " + e.what());
        }
        if (!valid_user_name(user.name)) throw std::runtime_error(file.string() + ": a user name is not valid");
        store.users_.push_back(std::move(user));
    }
    return store;
}

void UserStore::add(const std::string& name, Role role, const std::string& password) {
    if (!valid_user_name(name))
        throw std::invalid_argument("user name \"" + common::printable(name, 40) + "\": 1 to 32 of A-Z a-z 0-9 . _ -");
    if (find(name)) throw std::invalid_argument("user " + name + " exists already (use passwd, or remove it first)");
    check_password(name, password);
    users_.push_back(User{name, role, hash_password(password), common::utc_timestamp()});
}

bool UserStore::remove(const std::string& name) {
    return std::erase_if(users_, [&](const User& u) { return u.name == name; }) > 0;
}

void UserStore::set_password(const std::string& name, const std::string& password) {
    auto it = std::find_if(users_.begin(), users_.end(), [&](const User& u) { return u.name == name; });
    if (it == users_.end()) throw std::invalid_argument("user " + common::printable(name, 40) + ": no such user");
    check_password(name, password);
    it->hash = hash_password(password);
}

std::optional<User> UserStore::find(const std::string& name) const {
    auto it = std::find_if(users_.begin(), users_.end(), [&](const User& u) { return u.name == name; });
    if (it == users_.end()) return std::nullopt;
    return *it;
}

std::optional<User> UserStore::verify(const std::string& name, const std::string& password) const {
    init_sodium();
    const auto user = find(name);
    if (password.size() > 256) return std::nullopt;
    if (!user) {
        // The same work as a real check, so that timing does not reveal which names exist.
        static const std::string dummy = hash_password("not-a-real-password");
        [[maybe_unused]] const int same_cost = crypto_pwhash_str_verify(dummy.c_str(), password.data(), password.size());
        return std::nullopt;
    }
    if (crypto_pwhash_str_verify(user->hash.c_str(), password.data(), password.size()) != 0) return std::nullopt;
    return user;
}

void UserStore::save() const {
    create_private_folder(file_.parent_path());
    json users = json::array();
    for (const auto& u : users_)
        users.push_back({{"name", u.name}, {"role", to_string(u.role)}, {"hash", u.hash}, {"created", u.created}});
    common::AtomicWriteOptions options;
    options.mode = 0600;
    common::write_file_atomic(file_, json{{"users", users}}.dump(2) + "\n", options);
}

}  // namespace faceadapt::ui
