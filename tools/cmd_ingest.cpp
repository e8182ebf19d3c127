// Subcommands of the ingest module (placeholder until that module's issue lands: registers nothing).
#include "commands.hpp"

namespace faceadapt::tools {
void register_ingest_commands(CLI::App&, CommandResult&) {}
}  // namespace faceadapt::tools
