// Subcommands of the publish module (placeholder until that module's issue lands: registers nothing).
#include "commands.hpp"

namespace faceadapt::tools {
void register_publish_commands(CLI::App&, CommandResult&) {}
}  // namespace faceadapt::tools
