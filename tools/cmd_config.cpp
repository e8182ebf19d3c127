// Subcommands: `config check FILE`, `config print FILE`, `version`.
//   check: exit 0 and a one-line summary on stdout; on a bad file every issue on stderr as
//          "file:line:col: key.path: message" and exit 2.
//   print: the effective configuration (defaults filled in) as TOML; passwords never printed.
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <spdlog/version.h>

#include "commands.hpp"
#include "faceadapt/config/config.hpp"

namespace faceadapt::tools {
namespace {

namespace cfg = faceadapt::config;

// Loads `file`; on failure prints every issue to stderr, sets exit code 2, returns nullopt.
std::optional<cfg::Config> load_or_report(const std::string& file, CommandResult& result) {
    try {
        return cfg::load_config(file);
    } catch (const cfg::ConfigError& e) {
        for (const auto& issue : e.issues()) std::cerr << issue.to_string() << '\n';
        std::cerr << file << ": " << e.issues().size() << " error"
                  << (e.issues().size() == 1 ? "" : "s") << '\n';
        result.exit_code = 2;
        return std::nullopt;
    }
}

std::string summary(const cfg::Config& config) {
    std::size_t enabled = 0;
    for (const auto& camera : config.cameras) enabled += camera.enabled ? 1 : 0;
    std::string text = config.source.string() + ": ok: site '" + config.site.id + "', " +
                       std::to_string(config.cameras.size()) + " camera(s) (" +
                       std::to_string(enabled) + " enabled), state_dir " +
                       config.site.state_dir.string() + ", broker " +
                       cfg::mask_url_credentials(config.mqtt.broker);
    return text;
}

}  // namespace

void register_config_commands(CLI::App& app, CommandResult& result) {
    auto* config = app.add_subcommand("config", "Check or print a site configuration file");
    config->require_subcommand(1);

    auto file = std::make_shared<std::string>();
    auto* check = config->add_subcommand("check", "Validate FILE; exit 0 when valid, 2 otherwise");
    check->add_option("FILE", *file, "The site TOML file")->required();
    check->callback([file, &result] {
        if (auto loaded = load_or_report(*file, result)) std::cout << summary(*loaded) << '\n';
    });

    auto* print = config->add_subcommand("print", "Print the effective configuration of FILE "
                                                  "(defaults filled in, passwords masked)");
    print->add_option("FILE", *file, "The site TOML file")->required();
    print->callback([file, &result] {
        if (auto loaded = load_or_report(*file, result)) std::cout << cfg::to_toml(*loaded);
    });

    auto* version = app.add_subcommand("version", "Print the version of faceadapt and its libraries");
    version->callback([] {
        std::cout << "faceadapt " << FACEADAPT_VERSION << '\n'
                  << "toml++ " << cfg::toml_library_version() << '\n'
                  << "CLI11 " << CLI11_VERSION << '\n'
                  << "spdlog " << SPDLOG_VER_MAJOR << '.' << SPDLOG_VER_MINOR << '.'
                  << SPDLOG_VER_PATCH << '\n'
                  << "compiler " << __VERSION__ << ", C++ " << __cplusplus << '\n';
    });
}

}  // namespace faceadapt::tools
