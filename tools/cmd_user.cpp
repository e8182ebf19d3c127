// `faceadapt user add|remove|passwd|list`: the operator console's accounts (ui/users.hpp).
//   user add NAME --role viewer|operator|admin [--password-stdin] (--config FILE | --state-dir DIR)
//   user passwd NAME [--password-stdin] (...)     user remove NAME (...)     user list (...)
// The password is read from the terminal without echo (asked twice), or as one line from stdin
// with --password-stdin (scripts). Exit 0 on success, 1 for a runtime failure, 2 for bad input.
#include <termios.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/ui/users.hpp"

namespace faceadapt::tools {
namespace {

struct UserArgs {
    std::string config_file, state_dir, name, role = "viewer";
    bool password_stdin = false;
};

std::filesystem::path users_path(const UserArgs& a) {
    if (!a.state_dir.empty()) return ui::users_file(a.state_dir);
    if (a.config_file.empty()) throw std::invalid_argument("give --config FILE or --state-dir DIR");
    return ui::users_file(config::load_config(a.config_file).site.state_dir);
}

std::string read_line_quiet(const std::string& prompt) {
    std::cerr << prompt << std::flush;
    termios old{};
    const bool tty = ::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    std::string line;
    std::getline(std::cin, line);
    if (tty) {
        ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
        std::cerr << '\n';
    }
    return line;
}

std::string ask_password(const UserArgs& a) {
    if (a.password_stdin) {
        std::string line;
        if (!std::getline(std::cin, line)) throw std::invalid_argument("no password on stdin");
        return line;
    }
    if (!::isatty(STDIN_FILENO)) throw std::invalid_argument("stdin is not a terminal: use --password-stdin");
    const std::string first = read_line_quiet("Password for " + a.name + ": ");
    if (read_line_quiet("Again: ") != first) throw std::invalid_argument("the two passwords differ");
    return first;
}

void add_location(CLI::App* cmd, UserArgs& a) {
    cmd->add_option("--config,-c", a.config_file, "Site TOML file (its site.state_dir holds console/users.json)");
    cmd->add_option("--state-dir", a.state_dir, "State folder (instead of --config)");
}

}  // namespace

void register_user_commands(CLI::App& app, CommandResult& result) {
    auto* user = app.add_subcommand("user", "Manage the operator console's users (viewer, operator, admin)");
    user->require_subcommand(1);
    auto args = std::make_shared<UserArgs>();

    auto* add = user->add_subcommand("add", "Add a user (asks for the password)");
    add->add_option("NAME", args->name, "User name (1-32 of A-Z a-z 0-9 . _ -)")->required();
    add->add_option("--role", args->role, "viewer (sees), operator (also enrolls and erases), admin (also rolls back)")
        ->check(CLI::IsMember({"viewer", "operator", "admin"}));
    add->add_flag("--password-stdin", args->password_stdin, "Read the password as one line from stdin");
    add_location(add, *args);
    add->callback([args, &result] {
        run_guarded(result, [&] {
            auto store = ui::UserStore::load(users_path(*args));
            const ui::Role role = ui::parse_role(args->role);
            if (store.find(args->name)) throw std::invalid_argument("user " + args->name + " exists already");
            store.add(args->name, role, ask_password(*args));
            store.save();
            std::cout << "user " << args->name << " (" << args->role << ") added to " << store.file().string() << '\n';
            return 0;
        });
    });

    auto* passwd = user->add_subcommand("passwd", "Set a user's password");
    passwd->add_option("NAME", args->name, "User name")->required();
    passwd->add_flag("--password-stdin", args->password_stdin, "Read the password as one line from stdin");
    add_location(passwd, *args);
    passwd->callback([args, &result] {
        run_guarded(result, [&] {
            auto store = ui::UserStore::load(users_path(*args));
            if (!store.find(args->name)) throw std::invalid_argument("user " + args->name + ": no such user");
            store.set_password(args->name, ask_password(*args));
            store.save();
            std::cout << "password of " << args->name << " changed\n";
            return 0;
        });
    });

    auto* remove = user->add_subcommand("remove", "Remove a user (their sessions end at their next request)");
    remove->add_option("NAME", args->name, "User name")->required();
    add_location(remove, *args);
    remove->callback([args, &result] {
        run_guarded(result, [&] {
            auto store = ui::UserStore::load(users_path(*args));
            if (!store.remove(args->name)) {
                std::cerr << "user " << args->name << ": no such user\n";
                return 1;
            }
            store.save();
            std::cout << "user " << args->name << " removed\n";
            return 0;
        });
    });

    auto* list = user->add_subcommand("list", "List the users and their roles");
    add_location(list, *args);
    list->callback([args, &result] {
        run_guarded(result, [&] {
            const auto store = ui::UserStore::load(users_path(*args));
            for (const auto& u : store.users()) std::cout << u.name << '\t' << ui::to_string(u.role) << '\t' << u.created << '\n';
            return 0;
        });
    });
}

}  // namespace faceadapt::tools
