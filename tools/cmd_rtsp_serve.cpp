// Subcommands of rtsp-serve (ingest streams) (placeholder until that module's issue lands: registers nothing).
#include "commands.hpp"

namespace faceadapt::tools {
void register_rtsp_serve_command(CLI::App&, CommandResult&) {}
}  // namespace faceadapt::tools
