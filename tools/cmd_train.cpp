// Subcommands of the train command (Learner II) (placeholder until that module's issue lands: registers nothing).
#include "commands.hpp"

namespace faceadapt::tools {
void register_train_command(CLI::App&, CommandResult&) {}
}  // namespace faceadapt::tools
