// Subcommands of the daemon module (placeholder until that module's issue lands: registers nothing).
#include "commands.hpp"

namespace faceadapt::tools {
void register_daemon_commands(CLI::App&, CommandResult&) {}
}  // namespace faceadapt::tools
