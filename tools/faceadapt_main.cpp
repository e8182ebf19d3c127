// faceadapt: the operator's command-line tool. Thin: every subcommand lives in tools/cmd_*.cpp.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <opencv2/core/utils/logger.hpp>

#include "commands.hpp"
#include "faceadapt/common/log_format.hpp"

int main(int argc, char** argv) {
    // Timestamps unless stderr is the journal or faceadaptd relays us (common/log_format.hpp).
    spdlog::set_pattern(faceadapt::common::log_pattern(), spdlog::pattern_time_type::utc);
    // OpenCV's own "[ WARN:0@...] global ..." lines are not for an operator: our errors say
    // what went wrong with the file.
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
    CLI::App app{"faceadapt: site-adaptive face recognition for NVRs"};
    app.require_subcommand(1);
    faceadapt::tools::CommandResult result;
    faceadapt::tools::register_config_commands(app, result);
    faceadapt::tools::register_ingest_commands(app, result);
    faceadapt::tools::register_rtsp_serve_command(app, result);
    faceadapt::tools::register_learner_commands(app, result);
    faceadapt::tools::register_train_command(app, result);
    faceadapt::tools::register_simulate_command(app, result);
    faceadapt::tools::register_evaluate_command(app, result);
    faceadapt::tools::register_quality_commands(app, result);
    faceadapt::tools::register_publish_commands(app, result);
    faceadapt::tools::register_daemon_commands(app, result);
    faceadapt::tools::register_export_command(app, result);
    faceadapt::tools::register_user_commands(app, result);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return result.exit_code;
}
