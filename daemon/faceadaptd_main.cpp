// faceadaptd: the faceadapt service (systemd Type=notify). Thin: see daemon/daemon.hpp.
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>

#include "faceadapt/common/log_format.hpp"
#include "faceadapt/config/config.hpp"
#include "faceadapt/daemon/daemon.hpp"

int main(int argc, char** argv) {
    // Before any thread exists, so that every thread inherits the mask and run() gets the signals.
    faceadapt::daemon::Daemon::block_signals();
    // Timestamps unless stderr is the journal (which adds its own): common/log_format.hpp.
    spdlog::set_pattern(faceadapt::common::log_pattern(), spdlog::pattern_time_type::utc);
    // The children's lines are relayed under faceadaptd's own level and timestamp.
    ::setenv("FACEADAPT_LOG_FORMAT", "plain", 1);
    CLI::App app{"faceadaptd: cameras, crop store, site adaptation and model publishing"};
    faceadapt::daemon::DaemonOptions options;
    app.add_option("--config,-c", options.config_file, "Site TOML file")->required();
    app.add_option("--trainer", options.trainer, "The faceadapt executable for training cycles");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        faceadapt::daemon::Daemon daemon(options);
        return daemon.run();
    } catch (const faceadapt::config::ConfigError& e) {
        for (const auto& issue : e.issues()) std::cerr << issue.to_string() << '\n';
        return 2;
    } catch (const std::exception& e) {
        spdlog::critical("faceadaptd: {}", e.what());
        return 1;
    }
}
