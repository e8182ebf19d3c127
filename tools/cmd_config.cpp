// Subcommands: config check|print, version (placeholder until the foundation issue lands).
#include "commands.hpp"

namespace faceadapt::tools {
void register_config_commands(CLI::App&, CommandResult&) {}
}  // namespace faceadapt::tools
