// Subcommand registration for the `faceadapt` CLI. Each module's commands live in their own
// tools/cmd_*.cpp so that main() stays thin. Each function adds its subcommands to `app`
// and sets their callbacks; a callback's exit code is returned through `exit_code`.
#pragma once

#include <functional>
#include <stdexcept>

#include <CLI/CLI.hpp>

namespace faceadapt::daemon {
class ProtocolWriter;
}

namespace faceadapt::tools {

// Shared by all commands: the exit code the chosen subcommand wants main() to return.
// 0 ok, 1 runtime failure, 2 invalid input (bad config, bad arguments).
struct CommandResult {
    int exit_code = 0;
};

// A command's invalid input (a missing file, a malformed argument): run_guarded maps it, as
// every std::invalid_argument, to exit code 2. The message names the file or option.
struct BadInput : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Runs a subcommand's body and sets result.exit_code: the body's return value on success;
// 2 for invalid input (std::invalid_argument and its subclasses, config::ConfigError with each
// issue on its own line); 1 for any other std::exception. Every failure is logged once.
void run_guarded(CommandResult& result, const std::function<int()>& body);

// run_guarded for a child of faceadaptd's cycle: with protocol_fd >= 0 the body gets a writer
// for that descriptor (daemon/child_protocol.hpp), and a failure's message is also sent there
// as an "error" message before it is handled as run_guarded does. protocol_fd < 0: nullptr.
void run_guarded_child(CommandResult& result, int protocol_fd,
                       const std::function<int(daemon::ProtocolWriter*)>& body);

void register_config_commands(CLI::App& app, CommandResult& result);   // config check|print, version
void register_ingest_commands(CLI::App& app, CommandResult& result);   // detect
void register_rtsp_serve_command(CLI::App& app, CommandResult& result); // rtsp-serve (cmd_rtsp_serve.cpp)
void register_learner_commands(CLI::App& app, CommandResult& result);  // embed, eval
void register_train_command(CLI::App& app, CommandResult& result);     // train (cmd_train.cpp)
void register_simulate_command(CLI::App& app, CommandResult& result);  // simulate-site (cmd_simulate.cpp)
void register_evaluate_command(CLI::App& app, CommandResult& result);  // evaluate (cmd_evaluate.cpp)
void register_quality_commands(CLI::App& app, CommandResult& result);  // enroll, gallery
void register_publish_commands(CLI::App& app, CommandResult& result);  // keygen, package, publish
void register_daemon_commands(CLI::App& app, CommandResult& result);   // models list|rollback
void register_export_command(CLI::App& app, CommandResult& result);    // export (cmd_export.cpp)
void register_user_commands(CLI::App& app, CommandResult& result);     // user add|remove|passwd|list (cmd_user.cpp)

}  // namespace faceadapt::tools
